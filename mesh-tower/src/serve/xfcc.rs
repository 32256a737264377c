//! `x-forwarded-client-cert` (XFCC): the application only ever sees the element mesh wrote.
//!
//! mesh applies Envoy's `SANITIZE_SET` (`ConnectionManagerUtility::mutateXfccRequestHeader` in
//! `source/common/http/conn_manager_utility.cc`):
//!
//! - a request on a connection that is **not** mutual TLS has any XFCC removed, so a
//!   plaintext caller cannot make the application believe in a certificate;
//! - on mutual TLS, whatever the peer sent is replaced by one element describing the
//!   verified peer.
//!
//! istiod configures sidecar inbound listeners with `APPEND_FORWARD`
//! (`buildSidecarInboundHTTPOpts`, default from `GetProxyHeaders`), but in an Istio mesh the
//! caller's own outbound sidecar has already sanitized what its app wrote (Envoy's default,
//! `SANITIZE`), so the receiving app sees only elements sidecars wrote. An in-process mesh has
//! no outbound sidecar in front of a hostile caller, so the inbound side sanitizes instead:
//! the end-to-end guarantee is the same, and a forged element never reaches the app.
//!
//! The element is `By=<our URI SAN>;Hash=<hex SHA-256 of the peer's leaf>;Subject="<peer
//! subject, RFC 2253>";URI=<peer URI SAN>` then `;DNS=<name>` per DNS SAN, in Envoy's order.
//! It is computed once per connection.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2abbrev};
use x509_parser::x509::X509Name;

/// The header's name.
pub(super) static XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// The element describing a verified peer whose leaf certificate is `leaf`, as the server
/// whose SPIFFE ID is `by` sees it. `None` when the certificate cannot be parsed (our
/// verifier accepted it, so this does not happen) or the value is not a valid header value.
pub(super) fn element(by: Option<&str>, leaf: &[u8]) -> Option<HeaderValue> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let mut out = String::with_capacity(256);
    if let Some(by) = by {
        out.push_str("By=");
        out.push_str(by);
        out.push(';');
    }
    out.push_str("Hash=");
    for byte in ring::digest::digest(&ring::digest::SHA256, leaf).as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out.push_str(";Subject=\"");
    out.push_str(&rfc2253(cert.subject()));
    out.push('"');
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| san.value.general_names.clone())
        .unwrap_or_default();
    // Envoy writes the first URI SAN, then every DNS SAN.
    if let Some(uri) = names.iter().find_map(|n| match n {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    }) {
        out.push_str(";URI=");
        out.push_str(uri);
    }
    for name in &names {
        if let GeneralName::DNSName(dns) = name {
            out.push_str(";DNS=");
            out.push_str(dns);
        }
    }
    HeaderValue::from_str(&out).ok()
}

/// Applies SANITIZE_SET to a request's headers: without a verified peer (`element` is
/// `None`) every XFCC is removed; with one, ours replaces whatever the peer sent.
pub(super) fn apply(headers: &mut HeaderMap, element: Option<&HeaderValue>) {
    match element {
        None => {
            headers.remove(&XFCC);
        }
        Some(element) => {
            headers.insert(XFCC.clone(), element.clone());
        }
    }
}

/// A distinguished name as RFC 2253 prints it (what Envoy's `X509_NAME_print_ex` with
/// `XN_FLAG_RFC2253` gives): last RDN first, `,` between RDNs, `+` within one.
fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match oid2abbrev(attr.attr_type(), oid_registry()) {
                Ok(abbrev) => out.push_str(abbrev),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            escape(attr.as_str().unwrap_or(""), &mut out);
        }
    }
    out
}

fn escape(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i == last && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_verified_peer_every_xfcc_is_removed() {
        let mut headers = HeaderMap::new();
        headers.append(
            &XFCC,
            HeaderValue::from_static("URI=spiffe://evil/ns/x/sa/admin"),
        );
        headers.append(&XFCC, HeaderValue::from_static("Hash=00"));
        apply(&mut headers, None);
        assert!(headers.get(&XFCC).is_none());
    }

    #[test]
    fn with_a_verified_peer_ours_replaces_what_the_peer_sent() {
        let ours = HeaderValue::from_static("By=a;Hash=01;Subject=\"\";URI=spiffe://b");
        let mut headers = HeaderMap::new();
        apply(&mut headers, Some(&ours));
        assert_eq!(headers.get_all(&XFCC).iter().collect::<Vec<_>>(), [&ours]);

        let mut headers = HeaderMap::new();
        headers.append(&XFCC, HeaderValue::from_static("Hash=00"));
        headers.append(&XFCC, HeaderValue::from_static("Hash=02"));
        apply(&mut headers, Some(&ours));
        assert_eq!(headers.get_all(&XFCC).iter().collect::<Vec<_>>(), [&ours]);
    }

    #[test]
    fn rfc2253_escapes_specials() {
        let mut out = String::new();
        escape("a,b+c\"d", &mut out);
        assert_eq!(out, "a\\,b\\+c\\\"d");
    }
}
