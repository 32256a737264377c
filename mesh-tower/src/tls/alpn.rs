//! The application protocol a connection speaks.

/// The HTTP version negotiated by ALPN (TLS) or detected from the first bytes (plaintext).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.1 (ALPN `http/1.1`).
    Http1,
    /// HTTP/2 (ALPN `h2`).
    Http2,
}

impl HttpVersion {
    /// From a negotiated ALPN protocol ID; `None` for anything else.
    pub fn from_alpn(id: &[u8]) -> Option<Self> {
        match id {
            b"h2" => Some(Self::Http2),
            b"http/1.1" => Some(Self::Http1),
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
