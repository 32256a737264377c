//! `x-request-id`: one id per request, kept across every hop, as Envoy does, so logs of all
//! services involved can be joined. Generated as a random UUID v4 when absent.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use rand::{Rng, RngCore};

/// `x-request-id`.
pub const X_REQUEST_ID: &str = "x-request-id";

/// [`X_REQUEST_ID`] as a header name built at compile time (no parse per lookup).
pub(crate) const X_REQUEST_ID_NAME: HeaderName = HeaderName::from_static(X_REQUEST_ID);

/// Longest incoming request id kept; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A random UUID v4 (RFC 9562), lowercase hyphenated.
pub fn uuid_v4(rng: &mut impl Rng) -> String {
    let mut id = [0u8; 36];
    write_uuid_v4(rng, &mut id);
    id.iter().copied().map(char::from).collect()
}

/// Writes a random UUID v4 into `out` (`8-4-4-4-12` lowercase hex digits), with no allocation:
/// an outgoing call's id goes straight into its header buffer.
pub(crate) fn write_uuid_v4(rng: &mut dyn RngCore, out: &mut [u8; 36]) {
    // `fill_bytes`, not `random::<[u8; 16]>()`: that draws each byte on its own.
    let mut b = [0; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut at = 0;
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[at] = b'-';
            at += 1;
        }
        if let Some([hi, lo]) = out.get_mut(at..at + 2) {
            [*hi, *lo] = super::ids::hex_pair(*x);
        }
        at += 2;
    }
}

/// The request's id: the incoming `x-request-id` if it is short printable ASCII, else a new
/// UUID v4 written into `headers` (so the application sees the same id).
pub fn ensure_request_id(headers: &mut HeaderMap, rng: &mut impl Rng) -> String {
    if let Some(id) = incoming_request_id(headers) {
        return id.to_owned();
    }
    let id = uuid_v4(rng);
    if let Ok(v) = HeaderValue::try_from(id.as_str()) {
        headers.insert(X_REQUEST_ID_NAME, v);
    }
    id
}

/// The `x-request-id` of `headers` when it is one to keep: short printable ASCII.
pub(crate) fn incoming_request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(&X_REQUEST_ID_NAME)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id.bytes().all(|c| c.is_ascii_graphic())
        })
}
