//! TLS towards the control plane: istiod's secured port (15012) or `mesh xds serve --ca-dir`.
//!
//! The control plane must show a certificate chaining to the mesh roots and naming it: istiod's
//! serving certificate carries the DNS name `istiod.istio-system.svc` (what istio-agent checks,
//! its `ISTIOD_SAN`), the one `mesh xds serve` shows carries that name and the SPIFFE ID
//! `spiffe://<td>/ns/istio-system/sa/istiod`; either is accepted. The SNI sent is
//! `istiod.istio-system.svc`, as istio-agent sends it. With a workload certificate the client
//! shows it (mutual TLS, the control plane then knows the workload by it, as istiod does); the
//! files are read again at each connection, so a rotation (by the
//! [`CertificateProvider`](super::certs::CertificateProvider) or an agent) applies to the next
//! stream.
//!
//! A gRPC bootstrap asks for this with `channel_creds` `[{"type": "tls", "config": {…}}]`
//! (gRFC A65; see [`crate::bootstrap`]).

use std::path::PathBuf;
use std::sync::Arc;

use mesh_core::identity::{IdentityFiles, SpiffeId, external_client_config};
use mesh_core::model::{TlsMode, UpstreamTls};

use crate::ISTIOD_DNS_NAME;

/// How a client secures its connection to one control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsTls {
    /// PEM roots the control plane's certificate must chain to.
    pub roots: PathBuf,
    /// The workload's certificate chain and private key (PEM files), shown for mutual TLS;
    /// `None`: no client certificate.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Names the control plane's certificate must carry one of (DNS or URI SAN, exact).
    pub server_names: Vec<String>,
    /// The SNI sent.
    pub sni: String,
}

impl XdsTls {
    /// TLS trusting `roots`, expecting the control plane of `trust_domain` (istiod's DNS name or
    /// its SPIFFE ID), without a client certificate.
    pub fn new(roots: impl Into<PathBuf>, trust_domain: &str) -> Self {
        let mut server_names = vec![ISTIOD_DNS_NAME.to_owned()];
        if let Ok(id) = SpiffeId::istio(trust_domain, "istio-system", "istiod") {
            server_names.push(id.to_string());
        }
        Self {
            roots: roots.into(),
            identity: None,
            server_names,
            sni: ISTIOD_DNS_NAME.to_owned(),
        }
    }

    /// Mutual TLS with the workload identity in `files` (its roots are the control plane's
    /// too), as a workload whose certificate came from the control plane's CA connects.
    pub fn mutual(files: &IdentityFiles, trust_domain: &str) -> Self {
        Self::new(&files.roots, trust_domain).identity(files.cert_chain.clone(), files.key.clone())
    }

    /// Shows this certificate chain and key.
    pub fn identity(mut self, cert_chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((cert_chain.into(), key.into()));
        self
    }

    /// The rustls config for one connection, from the files as they are now.
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let path = |p: &PathBuf| p.display().to_string();
        let upstream = UpstreamTls {
            mode: if self.identity.is_some() {
                TlsMode::Mutual
            } else {
                TlsMode::Simple
            },
            sni: None,
            subject_alt_names: self.server_names.clone(),
            client_certificate: self.identity.as_ref().map(|(c, _)| path(c)),
            private_key: self.identity.as_ref().map(|(_, k)| path(k)),
            ca_certificates: Some(path(&self.roots)),
            credential: None,
        };
        external_client_config(&upstream, &[b"h2"])
            .map(Arc::new)
            .map_err(|e| format!("control-plane TLS: {e}"))
    }
}
