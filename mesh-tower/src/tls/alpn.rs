//! The application protocol a connection speaks.
//!
//! Besides the standard `h2` and `http/1.1`, a mesh server accepts the protocol IDs Istio's
//! sidecars offer to in-mesh upstreams (see
//! [`SERVER_ALPN_PROTOCOLS`](mesh_core::identity::SERVER_ALPN_PROTOCOLS)): `istio-h2`,
//! `istio-http/1.1` and `istio-http/1.0` name an HTTP version; `istio` does not, so the version
//! is then detected from the connection's first bytes.

/// The HTTP version negotiated by ALPN (TLS) or detected from the first bytes (plaintext).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.1 (ALPN `http/1.1`).
    Http1,
    /// HTTP/2 (ALPN `h2`).
    Http2,
}

impl HttpVersion {
    /// From a negotiated ALPN protocol ID; `None` for anything that names no HTTP version
    /// (including Istio's bare `istio`).
    pub fn from_alpn(id: &[u8]) -> Option<Self> {
        match id {
            b"h2" | b"istio-h2" => Some(Self::Http2),
            b"http/1.1" | b"istio-http/1.1" | b"istio-http/1.0" => Some(Self::Http1),
            _ => None,
        }
    }
}

impl HttpVersion {
    /// The ALPN protocol ID.
    pub fn alpn_id(self) -> &'static [u8] {
        match self {
            Self::Http1 => b"http/1.1",
            Self::Http2 => b"h2",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_istio_ids_name_their_http_version() {
        let cases: [(&[u8], Option<HttpVersion>); 8] = [
            (b"h2", Some(HttpVersion::Http2)),
            (b"http/1.1", Some(HttpVersion::Http1)),
            (b"istio-h2", Some(HttpVersion::Http2)),
            (b"istio-http/1.1", Some(HttpVersion::Http1)),
            (b"istio-http/1.0", Some(HttpVersion::Http1)),
            (b"istio", None),
            (b"istio-peer-exchange", None),
            (b"spdy/3", None),
        ];
        for (id, want) in cases {
            assert_eq!(
                HttpVersion::from_alpn(id),
                want,
                "{}",
                String::from_utf8_lossy(id)
            );
        }
    }

    #[test]
    fn every_id_a_server_accepts_is_known_here() {
        for id in mesh_core::identity::SERVER_ALPN_PROTOCOLS {
            assert!(
                HttpVersion::from_alpn(id).is_some() || id == b"istio",
                "{}",
                String::from_utf8_lossy(id)
            );
        }
    }
}
