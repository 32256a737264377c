//! rustls server and client configs derived from [`Credentials`].
//!
//! - **The application's provider, else ring.** Configs are built with
//!   [`provider`](super::credentials::provider): the process-default `CryptoProvider` when the
//!   app installed one (rustls' intended way to pick aws-lc-rs and post-quantum key exchange),
//!   otherwise *ring*; mesh never installs a process default itself.
//! - **Client certificates are mandatory** whenever TLS is used: STRICT and the TLS side of
//!   PERMISSIVE both mean *mutual* TLS, as in Istio.
//! - **No session resumption.** A resumed TLS session skips certificate verification. After a
//!   root rotation, or with a client config whose expected identities differ, a resumed session
//!   would carry a verification done under the old rules. So the server keeps no session cache and
//!   issues no tickets, and the client never offers resumption: every connection is verified
//!   against the current roots and policy. A full handshake per connection is cheap next to the
//!   long-lived HTTP/2 connections a mesh uses.
//! - **TLS 1.3 preferred, 1.2 allowed**, ALPN `h2` then `http/1.1`. Servers also accept the
//!   protocol IDs Istio's sidecars offer to in-mesh upstreams ([`SERVER_ALPN_PROTOCOLS`]), so an
//!   Envoy sidecar can call a mesh server.
//! - **Time comes from a [`TimeProvider`]**, so tests can pin "now" and rustls and our credential
//!   checks agree on it.

use std::sync::Arc;

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::time_provider::{DefaultTimeProvider, TimeProvider};
use rustls::{ClientConfig, ServerConfig, SignatureScheme};

use super::credentials::{Credentials, provider};
use super::expected::ExpectedIdentities;
use super::verify::{SpiffeClientVerifier, SpiffeServerVerifier};

/// ALPN protocol IDs offered and accepted, in preference order.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// ALPN protocol IDs a mesh server accepts, in preference order (rustls picks the first the
/// client also offers).
///
/// Besides [`ALPN_PROTOCOLS`], the IDs Istio's sidecars send to in-mesh upstreams:
/// `istio-h2`, `istio-http/1.1`, `istio-http/1.0` (set by istio-proxy's ALPN override filter
/// from the downstream HTTP version) and `istio` (an ISTIO_MUTUAL cluster without that filter,
/// e.g. `["istio-peer-exchange", "istio"]`: the HTTP version is then detected from the first
/// bytes). `istio-peer-exchange` is never selected: it announces Istio's TCP metadata exchange,
/// which mesh does not speak, and Istio always offers `istio` next to it.
///
/// A client offering none of these is refused with `no_application_protocol`, as RFC 7301
/// asks: mesh serves only HTTP, so a client that cannot speak it gets a clear error rather than
/// a connection that fails on its first bytes.
pub const SERVER_ALPN_PROTOCOLS: [&[u8]; 6] = [
    b"h2",
    b"http/1.1",
    b"istio-h2",
    b"istio-http/1.1",
    b"istio-http/1.0",
    b"istio",
];

/// The clock rustls and mesh's checks read. [`system_clock`] in production.
pub type Clock = Arc<dyn TimeProvider>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(DefaultTimeProvider)
}

/// Why rustls configs could not be built from credentials.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// rustls refused the configuration.
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. no usable root).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A workload identity ready for TLS: its credentials and the configs derived from them.
///
/// Immutable; rotation replaces the whole value (see [`super::IdentityWatcher`]).
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    credentials: Arc<Credentials>,
    clock: Clock,
    server: Arc<ServerConfig>,
    client_any: Arc<ClientConfig>,
}

impl TlsIdentity {
    /// Builds configs reading the system clock.
    pub fn new(credentials: Credentials) -> Result<Self, TlsConfigError> {
        Self::with_clock(Arc::new(credentials), system_clock())
    }

    /// Builds configs reading `clock`.
    pub fn with_clock(credentials: Arc<Credentials>, clock: Clock) -> Result<Self, TlsConfigError> {
        let server = Arc::new(server_config(&credentials, &clock)?);
        let client_any = Arc::new(client_config(
            &credentials,
            &clock,
            ExpectedIdentities::any_in_trust_domain(),
        )?);
        Ok(Self {
            credentials,
            clock,
            server,
            client_any,
        })
    }

    /// The credentials.
    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.credentials
    }

    /// The server config: client certificate required and verified against the roots and the
    /// local trust domain.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// A client config presenting the workload certificate and accepting servers whose identity
    /// is in `expected` (or, when empty, any identity of the local trust domain).
    pub fn client_config(
        &self,
        expected: &ExpectedIdentities,
    ) -> Result<Arc<ClientConfig>, TlsConfigError> {
        if expected.ids().is_empty() {
            return Ok(self.client_any.clone());
        }
        client_config(&self.credentials, &self.clock, expected.clone()).map(Arc::new)
    }
}

fn server_config(credentials: &Credentials, clock: &Clock) -> Result<ServerConfig, TlsConfigError> {
    let provider = provider();
    let verifier = SpiffeClientVerifier::new(
        credentials.root_store().clone(),
        provider.clone(),
        credentials.spiffe_id().trust_domain().to_owned(),
    )?;
    let mut config = ServerConfig::builder_with_details(provider, clock.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(FixedCert(credentials.certified_key().clone())));
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = SERVER_ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn client_config(
    credentials: &Credentials,
    clock: &Clock,
    expected: ExpectedIdentities,
) -> Result<ClientConfig, TlsConfigError> {
    let provider = provider();
    let verifier = SpiffeServerVerifier::new(
        credentials.root_store().clone(),
        provider.signature_verification_algorithms,
        credentials.spiffe_id().trust_domain().to_owned(),
        expected,
    );
    let mut config = ClientConfig::builder_with_details(provider, clock.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(FixedCert(credentials.certified_key().clone())));
    config.resumption = Resumption::disabled();
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Always presents the workload certificate, as client and as server.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ResolvesClientCert for FixedCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
