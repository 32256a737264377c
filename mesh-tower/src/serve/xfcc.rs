//! `x-forwarded-client-cert` (XFCC) as Istio's sidecar inbound listener writes it.
//!
//! istiod configures every sidecar inbound HTTP connection manager with
//! `forward_client_cert_details: APPEND_FORWARD` and `set_current_client_cert_details:
//! {subject, uri, dns}` (`buildSidecarInboundHTTPOpts` in
//! `pilot/pkg/networking/core/listener_inbound.go`, default from `GetProxyHeaders` in
//! `pilot/pkg/networking/util/proxy_headers.go`; gateways use `SANITIZE_SET`). Envoy applies
//! that in
//! `ConnectionManagerUtility::mutateXfccRequestHeader`
//! (`source/common/http/conn_manager_utility.cc`):
//!
//! - a request on a connection that is **not** mutual TLS has any XFCC removed, so a
//!   plaintext caller cannot make the application believe in a certificate;
//! - on mutual TLS, the element describing the verified peer is appended (after a comma) to
//!   what the peer sent. The **last** element is therefore always the one mesh wrote.
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

/// Applies APPEND_FORWARD to a request's headers: without a verified peer (`element` is
/// `None`) every XFCC is removed; with one, ours is appended to what the peer sent.
pub(super) fn apply(headers: &mut HeaderMap, element: Option<&HeaderValue>) {
    let Some(element) = element else {
        headers.remove(&XFCC);
        return;
    };
    let mut joined: Vec<u8> = Vec::new();
    for value in headers.get_all(&XFCC) {
        joined.extend_from_slice(value.as_bytes());
        joined.push(b',');
    }
    if joined.is_empty() {
        headers.insert(XFCC.clone(), element.clone());
        return;
    }
    joined.extend_from_slice(element.as_bytes());
    match HeaderValue::from_bytes(&joined) {
        Ok(value) => {
            headers.insert(XFCC.clone(), value);
        }
        // Cannot happen (each part was a valid value); fail safe: only ours.
        Err(_) => {
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
    fn with_a_verified_peer_ours_is_appended_last() {
        let ours = HeaderValue::from_static("By=a;Hash=01;Subject=\"\";URI=spiffe://b");
        let mut headers = HeaderMap::new();
        apply(&mut headers, Some(&ours));
        assert_eq!(headers.get_all(&XFCC).iter().collect::<Vec<_>>(), [&ours]);

        let mut headers = HeaderMap::new();
        headers.append(&XFCC, HeaderValue::from_static("Hash=00"));
        headers.append(&XFCC, HeaderValue::from_static("Hash=02"));
        apply(&mut headers, Some(&ours));
        let all: Vec<_> = headers.get_all(&XFCC).iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0],
            "Hash=00,Hash=02,By=a;Hash=01;Subject=\"\";URI=spiffe://b"
        );
    }

    #[test]
    fn rfc2253_escapes_specials() {
        let mut out = String::new();
        escape("a,b+c\"d", &mut out);
        assert_eq!(out, "a\\,b\\+c\\\"d");
    }
}
