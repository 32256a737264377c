//! Telling TLS from plaintext HTTP by the first bytes of a connection.
//!
//! A PERMISSIVE port serves mutual TLS and plaintext on one socket, as Istio's inbound listener
//! does with Envoy's TLS inspector. A TLS connection opens with a handshake record: content type
//! 0x16, then major version 0x03. Plaintext HTTP/2 opens with the fixed connection preface
//! (RFC 9113 §3.4) and HTTP/1.x with a method token and a space. Only as many bytes as needed
//! are read; they are replayed to whoever reads the connection next (see [`super::Rewind`]).

use std::fmt;

/// What a connection's first bytes say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// A TLS ClientHello record.
    Tls,
    /// The HTTP/2 connection preface.
    Http2,
    /// An HTTP/1.x request line.
    Http1,
    /// None of the above.
    Unknown,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tls => "TLS",
            Self::Http2 => "HTTP/2",
            Self::Http1 => "HTTP/1.x",
            Self::Unknown => "non-HTTP",
        })
    }
}

/// The HTTP/2 client connection preface.
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The most bytes [`classify`] ever needs.
pub(crate) const MAX_SNIFF: usize = H2_PREFACE.len();

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
];

/// Classifies `prefix`, or `None` when more bytes are needed to decide.
pub(crate) fn classify(prefix: &[u8]) -> Option<Protocol> {
    match prefix {
        [] | [0x16] => None,
        [0x16, 0x03, ..] => Some(Protocol::Tls),
        _ if H2_PREFACE.starts_with(prefix) && prefix.len() < H2_PREFACE.len() => None,
        _ if prefix.starts_with(H2_PREFACE) => Some(Protocol::Http2),
        _ if METHODS.iter().any(|m| prefix.starts_with(m)) => Some(Protocol::Http1),
        _ if METHODS.iter().any(|m| m.starts_with(prefix)) => None,
        _ => Some(Protocol::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_each_protocol() {
        assert_eq!(
            classify(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Some(Protocol::Tls)
        );
        assert_eq!(classify(&[0x16, 0x03]), Some(Protocol::Tls));
        assert_eq!(classify(H2_PREFACE), Some(Protocol::Http2));
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"OPTIONS * HTTP/1.1"), Some(Protocol::Http1));
        assert_eq!(classify(b"SSH-2.0-OpenSSH"), Some(Protocol::Unknown));
        assert_eq!(classify(&[0x16, 0x01]), Some(Protocol::Unknown));
        assert_eq!(classify(b"GETX"), Some(Protocol::Unknown));
    }

    #[test]
    fn waits_for_enough_bytes() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(&[0x16]), None);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(classify(b"P"), None);
        assert_eq!(classify(b"DELE"), None);
        assert_eq!(classify(b"GET"), None);
    }
}
