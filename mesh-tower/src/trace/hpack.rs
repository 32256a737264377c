//! How per-call trace values travel through HPACK (RFC 7541).
//!
//! `traceparent`, the B3 ids and `x-request-id` are new on every call. Indexed like other
//! headers, each would be inserted into both ends' dynamic tables only to be evicted unused,
//! pushing out the headers that do repeat (the peer metadata exchange, a few hundred bytes each
//! way) so that those are re-sent and Huffman-coded again, and each insertion costs the decoder a
//! copy of the value. So mesh sends them as "never indexed" literals (§6.2.3; h2 does this for a
//! value marked sensitive), which name their header by table index when the name is in the
//! table. The names are not in the static table, so the first request on each HTTP/2 connection
//! (and one in [`PRIME_EVERY`] after, in case the application's own headers evicted them) sends
//! its values indexable, putting the names in the table ([`index_trace_names`]).

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::b3;
use super::request_id::X_REQUEST_ID_NAME;
use super::w3c;

/// One request in this many on an HTTP/2 connection puts the trace headers' names back into
/// the peer's dynamic table.
pub(crate) const PRIME_EVERY: u32 = 1024;

/// The headers whose values are new on every call.
fn per_call_names() -> [HeaderName; 5] {
    [
        w3c::TRACEPARENT_NAME,
        b3::X_B3_TRACEID_NAME,
        b3::X_B3_SPANID_NAME,
        b3::X_B3_PARENTSPANID_NAME,
        X_REQUEST_ID_NAME,
    ]
}

/// `value`, sent as a never-indexed literal.
pub(super) fn never_indexed(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// Lets HPACK index this request's per-call trace values when `nth` (the 1-based request count
/// of its HTTP/2 connection) is the first or one in [`PRIME_EVERY`]: see the module docs.
pub(crate) fn index_trace_names(headers: &mut HeaderMap, nth: u32) {
    if nth % PRIME_EVERY != 1 {
        return;
    }
    for name in per_call_names() {
        if let Some(value) = headers.get_mut(name) {
            value.set_sensitive(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_priming_requests_are_indexable() {
        let headers = || {
            let mut h = HeaderMap::new();
            for name in per_call_names() {
                h.insert(name, never_indexed(HeaderValue::from_static("v")));
            }
            h
        };
        for (nth, indexable) in [
            (1, true),
            (2, false),
            (PRIME_EVERY, false),
            (PRIME_EVERY + 1, true),
        ] {
            let mut h = headers();
            index_trace_names(&mut h, nth);
            assert!(
                h.values().all(|v| v.is_sensitive() != indexable),
                "request {nth}"
            );
        }
    }
}
