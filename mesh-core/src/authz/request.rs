//! What an authorization policy can read about a request, borrowed from wherever the server keeps
//! it (mesh-core has no HTTP types).

use std::fmt;
use std::net::IpAddr;

/// Request headers as a policy reads them.
///
/// A header may appear several times; `request.headers[name]` matches when any value matches, as
/// in Istio. Names are compared case-insensitively.
pub trait HeaderLookup {
    /// Whether any value of header `name` satisfies `pred` (false when the header is absent).
    fn any_value(&self, name: &str, pred: &mut dyn FnMut(&str) -> bool) -> bool;
}

/// No headers at all (a TCP connection, or a test).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHeaders;

impl HeaderLookup for NoHeaders {
    fn any_value(&self, _name: &str, _pred: &mut dyn FnMut(&str) -> bool) -> bool {
        false
    }
}

/// A list of `(name, value)` pairs, for callers without a header map.
impl HeaderLookup for &[(&str, &str)] {
    fn any_value(&self, name: &str, pred: &mut dyn FnMut(&str) -> bool) -> bool {
        self.iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && pred(v))
    }
}

/// Everything a policy can read about one request. All borrowed: building one allocates nothing.
///
/// Addresses are `Option` because a server may not know them; a rule that reads an unknown one
/// fails closed (see [`evaluate`](super::evaluate)).
#[derive(Clone, Copy)]
pub struct AuthzRequest<'a> {
    /// The peer's verified identity in Istio's form, without `spiffe://`
    /// (`cluster.local/ns/default/sa/sleep`); `None` for plaintext.
    pub source_principal: Option<&'a str>,
    /// The peer's namespace, from its identity ([`namespace_of`]); `None` for plaintext.
    pub source_namespace: Option<&'a str>,
    /// The peer's IP address (the connection's remote address).
    pub source_ip: Option<IpAddr>,
    /// The local IP address the connection arrived on.
    pub destination_ip: Option<IpAddr>,
    /// The local port the connection arrived on.
    pub destination_port: Option<u16>,
    /// The request authority (`Host` or `:authority`) as sent, port included if there was one;
    /// empty when the request had none.
    pub authority: &'a str,
    /// The method (`GET`; gRPC is always `POST`).
    pub method: &'a str,
    /// The normalised path without the query ([`normalize_path`](super::normalize_path)).
    pub path: &'a str,
    /// The TLS server name the client asked for, if any.
    pub sni: Option<&'a str>,
    /// Request headers.
    pub headers: &'a dyn HeaderLookup,
}

impl fmt::Debug for AuthzRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthzRequest")
            .field("source_principal", &self.source_principal)
            .field("source_namespace", &self.source_namespace)
            .field("source_ip", &self.source_ip)
            .field("destination_ip", &self.destination_ip)
            .field("destination_port", &self.destination_port)
            .field("authority", &self.authority)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

impl AuthzRequest<'_> {
    /// The authority without a `:port` suffix (`[::1]:80` → `[::1]`).
    pub fn host(&self) -> &str {
        strip_port(self.authority)
    }
}

/// The namespace in an Istio principal (`td/ns/<namespace>/sa/<account>`), as Istio derives
/// `source.namespace` from the peer certificate.
pub fn namespace_of(principal: &str) -> Option<&str> {
    let mut parts = principal.split('/');
    // Skip the trust domain, then look for the `ns` marker.
    parts.next()?;
    match (parts.next(), parts.next(), parts.next()) {
        (Some("ns"), Some(ns), Some("sa")) if !ns.is_empty() => Some(ns),
        _ => None,
    }
}

/// Removes a trailing `:digits` (and keeps IPv6 literals intact).
pub(crate) fn strip_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        assert_eq!(namespace_of("cluster.local/ns/foo/sa/bar"), Some("foo"));
        assert_eq!(namespace_of("td/ns/foo/sa/bar/extra"), Some("foo"));
        assert_eq!(namespace_of("cluster.local/sa/bar"), None);
        assert_eq!(namespace_of("cluster.local/ns//sa/bar"), None);
        assert_eq!(namespace_of(""), None);
    }

    #[test]
    fn ports() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("h:"), "h");
    }

    #[test]
    fn header_lists() {
        let h: &[(&str, &str)] = &[("X-Env", "dev"), ("x-env", "prod")];
        let h = &h;
        assert!(h.any_value("x-env", &mut |v| v == "prod"));
        assert!(!h.any_value("x-other", &mut |_| true));
        assert!(!NoHeaders.any_value("x-env", &mut |_| true));
    }
}
