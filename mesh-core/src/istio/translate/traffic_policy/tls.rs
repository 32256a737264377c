//! `tls`: how the client side of a connection to the upstream is secured.

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use crate::model::{TlsCredential, TlsMode, UpstreamTls};

pub(super) fn tls(
    t: &r::ClientTlsSettings,
    field: &Field,
    report: &mut Reporter<'_>,
) -> UpstreamTls {
    report.unimplemented(&t.insecure_skip_verify, &field.key("insecureSkipVerify"));
    report.unimplemented(&t.ca_crl, &field.key("caCrl"));
    let mode = match t.mode {
        None | Some(r::TlsModeSetting::Disable) => TlsMode::Disable,
        Some(r::TlsModeSetting::Simple) => TlsMode::Simple,
        Some(r::TlsModeSetting::Mutual) => TlsMode::Mutual,
        Some(r::TlsModeSetting::IstioMutual) => TlsMode::IstioMutual,
    };
    let credential_name = t.credential_name.clone().filter(|n| !n.is_empty());
    // istiod's `ValidateDestinationRuleTLS` (pkg/config/validation/agent/validation.go): with
    // SIMPLE or MUTUAL, a credentialName excludes the file fields and stands for them.
    let uses_credential =
        credential_name.is_some() && matches!(mode, TlsMode::Simple | TlsMode::Mutual);
    if uses_credential
        && (t.client_certificate.is_some()
            || t.private_key.is_some()
            || t.ca_certificates.is_some()
            || t.ca_crl.is_some())
    {
        report.error(
            &field.key("credentialName"),
            "cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
        );
    }
    if credential_name.is_some() && !uses_credential {
        report.warn(
            &field.key("credentialName"),
            "ignored: credentialName applies to modes SIMPLE and MUTUAL",
        );
    }
    if mode == TlsMode::Mutual && !uses_credential {
        if t.client_certificate.is_none() {
            report.error(&field.key("clientCertificate"), "required with mode MUTUAL");
        }
        if t.private_key.is_none() {
            report.error(&field.key("privateKey"), "required with mode MUTUAL");
        }
    }
    if mode == TlsMode::IstioMutual
        && (t.client_certificate.is_some()
            || t.private_key.is_some()
            || t.ca_certificates.is_some())
    {
        report.error(
            field,
            "ISTIO_MUTUAL uses the workload's identity; certificate files must not be set",
        );
    }
    UpstreamTls {
        mode,
        sni: t.sni.clone(),
        subject_alt_names: t.subject_alt_names.clone(),
        client_certificate: t.client_certificate.clone(),
        private_key: t.private_key.clone(),
        ca_certificates: t.ca_certificates.clone(),
        // Resolved to its Secret's contents once all resources are read
        // (`translate::credentials`).
        credential: credential_name
            .filter(|_| uses_credential)
            .map(|name| TlsCredential {
                name,
                cert_chain: None,
                private_key: None,
                ca_certificates: None,
            }),
    }
}
