//! Does the certificate a workload was given say it is that workload?
//!
//! A workload declares who it runs as ([`Workload`]: namespace and service account); its
//! certificate says who it is to peers (`spiffe://<td>/ns/<ns>/sa/<sa>`). In Kubernetes the two
//! cannot differ (istio-agent asks the CA for the pod's own service account, and istiod's CA
//! refuses a CSR for another). Files can: a copied `cert-chain.pem` makes the process present
//! another workload's identity, so peers authorize it as that workload while its own metrics and
//! routing (`sourceLabels`, `source_principal`) say otherwise. [`MeshBuilder::build`] warns about
//! it, and refuses to start when the workload's PeerAuthentication is STRICT anywhere: a workload
//! that requires verified identities of its peers must not misstate its own.
//!
//! [`MeshBuilder::build`]: super::MeshBuilder::build

use std::fmt;

use crate::Workload;
use crate::identity::SpiffeId;
use crate::model::{MtlsMode, PeerAuthnPolicy};

/// A workload whose certificate names another namespace or service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityMismatch {
    /// `namespace/service account` the workload was declared with.
    pub declared: String,
    /// The SPIFFE ID its certificate carries.
    pub certificate: SpiffeId,
}

impl fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (namespace, service_account) = self.declared.split_once('/').unwrap_or(("", ""));
        write!(
            f,
            "the workload is declared as service account {service_account:?} in namespace \
             {namespace:?} but its certificate is {}: peers would authorize it as that \
             identity (issue a certificate for ns/{namespace}/sa/{service_account}, or declare \
             the workload with the certificate's namespace and service account)",
            self.certificate
        )
    }
}

/// The mismatch between `workload` and the certificate's `spiffe_id`, if any.
pub fn identity_mismatch(workload: &Workload, spiffe_id: &SpiffeId) -> Option<IdentityMismatch> {
    let same = spiffe_id.namespace() == Some(workload.namespace.as_str())
        && spiffe_id.service_account() == Some(workload.service_account.as_str());
    (!same).then(|| IdentityMismatch {
        declared: format!("{}/{}", workload.namespace, workload.service_account),
        certificate: spiffe_id.clone(),
    })
}

/// Whether any port of the workload requires mutual TLS.
pub(super) fn strict_anywhere(policy: &PeerAuthnPolicy) -> bool {
    policy.mode == MtlsMode::Strict || policy.port_modes.values().any(|m| *m == MtlsMode::Strict)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn same_namespace_and_service_account_is_no_mismatch() {
        let id = SpiffeId::istio("cluster.local", "shop", "checkout").unwrap();
        assert_eq!(
            identity_mismatch(&Workload::new("shop", "checkout"), &id),
            None
        );
        // The trust domain is the mesh's concern (aliases, migrations), not the workload's.
        let other_td = SpiffeId::istio("example.org", "shop", "checkout").unwrap();
        assert_eq!(
            identity_mismatch(&Workload::new("shop", "checkout"), &other_td),
            None
        );
    }

    #[test]
    fn another_service_account_or_namespace_is_named() {
        let id = SpiffeId::istio("cluster.local", "shop", "payment").unwrap();
        let m = identity_mismatch(&Workload::new("shop", "checkout"), &id).unwrap();
        assert_eq!(m.declared, "shop/checkout");
        let text = m.to_string();
        assert!(
            text.contains("\"checkout\"") && text.contains("sa/payment"),
            "{text}"
        );
        let id = SpiffeId::istio("cluster.local", "other", "checkout").unwrap();
        assert!(identity_mismatch(&Workload::new("shop", "checkout"), &id).is_some());
    }

    /// A workload declared as `shop/checkout` holding `payment`'s certificate, with the given
    /// PeerAuthentication mode for namespace `shop`.
    async fn build_with_payments_certificate(mode: &str) -> Result<crate::Mesh, crate::MeshError> {
        use crate::identity::CertificateAuthority;
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("cluster.local").unwrap();
        let issued = ca
            .issue("shop", "payment", std::time::Duration::from_secs(3600))
            .unwrap();
        let certs = dir.path().join("certs");
        issued.write_istio_layout(&certs).unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        std::fs::write(
            config.join("pa.yaml"),
            format!(
                "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
                 metadata: {{name: default, namespace: shop}}\nspec: {{mtls: {{mode: {mode}}}}}\n"
            ),
        )
        .unwrap();
        crate::Mesh::builder()
            .workload(Workload::new("shop", "checkout"))
            .identity_files(&certs)
            .config_path(&config)
            .watch(false)
            .build()
            .await
    }

    /// PERMISSIVE: the mesh builds (plaintext callers are allowed anyway), and the mismatch is
    /// reported (logged as a warning at build, and readable from the handle).
    #[tokio::test]
    async fn another_workloads_certificate_is_a_warning_under_permissive() {
        let mesh = build_with_payments_certificate("PERMISSIVE").await.unwrap();
        let mismatch = mesh.identity_mismatch().expect("the mismatch is reported");
        assert_eq!(mismatch.declared, "shop/checkout");
        assert_eq!(
            mismatch.certificate.as_str(),
            "spiffe://cluster.local/ns/shop/sa/payment"
        );
    }

    /// STRICT: the workload does not start presenting another workload's identity.
    #[tokio::test]
    async fn another_workloads_certificate_is_refused_under_strict() {
        let err = build_with_payments_certificate("STRICT").await.unwrap_err();
        assert!(
            matches!(err, crate::MeshError::IdentityMismatch(_)),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("sa/payment") && text.contains("\"checkout\"") && text.contains("STRICT"),
            "{text}"
        );
    }
}
