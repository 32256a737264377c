//! W3C Trace Context: the `traceparent` and `tracestate` headers.
//!
//! `traceparent` is `version-traceid-parentid-flags`, lowercase hex: version `00` (`ff` is
//! invalid; later versions are parsed as `00` and may carry more fields after a `-`), a 32-digit
//! trace id and a 16-digit parent id, neither all zeros, and 8 bits of flags of which bit 0 is
//! "sampled". Anything else is invalid, and the receiver starts a new trace.
//! See <https://www.w3.org/TR/trace-context/>.

use http::HeaderName;

use super::ids::{SpanId, TraceId, nibble};

/// `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// [`TRACEPARENT`] as a header name built at compile time: a lookup by it hashes the name
/// without parsing it first.
pub(super) const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
/// [`TRACESTATE`], likewise.
pub(super) const TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);

/// The fields of a valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace id.
    pub trace_id: TraceId,
    /// The caller's span id.
    pub parent_id: SpanId,
    /// The sampled flag.
    pub sampled: bool,
}

/// Parses a `traceparent` value; `None` when it is not valid by the spec.
pub fn parse_traceparent(v: &str) -> Option<TraceParent> {
    let b = v.as_bytes();
    if b.len() < 55 {
        return None;
    }
    let version = u8_hex(&v[0..2])?;
    if version == 0xff || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    // Version 00 is exactly 55 characters; a later version may append `-…`.
    if (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_id = TraceId::parse(&v[3..35], false)?;
    let parent_id = SpanId::parse(&v[36..52])?;
    let flags = u8_hex(&v[53..55])?;
    Some(TraceParent {
        trace_id,
        parent_id,
        sampled: flags & 1 == 1,
    })
}

/// Formats version `00`.
pub fn format_traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> String {
    format!("00-{trace_id}-{span_id}-{:02x}", u8::from(sampled))
}

/// A `tracestate` value worth passing on: at most 512 characters of printable ASCII and at
/// most 32 list members (the spec's limits); otherwise it is dropped.
pub fn valid_tracestate(v: &str) -> bool {
    v.len() <= 512
        && v.bytes().all(|c| (0x20..0x7f).contains(&c))
        && v.split(',').filter(|m| !m.trim().is_empty()).count() <= 32
        && v.split(',')
            .filter(|m| !m.trim().is_empty())
            .all(|m| m.contains('='))
}

fn u8_hex(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    (b.len() == 2).then_some(())?;
    Some((nibble(b[0])? << 4) | nibble(b[1])?)
}
