//! Zipkin's B3 propagation, as Envoy and Istio send it: the multi-header form
//! (`x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags`) and the
//! single `b3` header (`{traceid}-{spanid}[-{sampling}[-{parentspanid}]]`, or a bare sampling
//! state). Trace ids are 16 or 32 lowercase hex digits, span ids 16.
//! See <https://github.com/openzipkin/b3-propagation>.

use http::{HeaderMap, HeaderName};

use super::ids::{SpanId, TraceId};

/// `x-b3-traceid`.
pub const X_B3_TRACEID: &str = "x-b3-traceid";
/// `x-b3-spanid`.
pub const X_B3_SPANID: &str = "x-b3-spanid";
/// `x-b3-parentspanid`.
pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";
/// `x-b3-sampled`.
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
/// `x-b3-flags` (`1`: debug, which implies sampled).
pub const X_B3_FLAGS: &str = "x-b3-flags";
/// The single-header form.
pub const B3: &str = "b3";

/// The header names built at compile time: a lookup by one hashes it without parsing it first.
pub(super) const B3_NAME: HeaderName = HeaderName::from_static(B3);
pub(super) const X_B3_TRACEID_NAME: HeaderName = HeaderName::from_static(X_B3_TRACEID);
pub(super) const X_B3_SPANID_NAME: HeaderName = HeaderName::from_static(X_B3_SPANID);
pub(super) const X_B3_PARENTSPANID_NAME: HeaderName = HeaderName::from_static(X_B3_PARENTSPANID);
pub(super) const X_B3_SAMPLED_NAME: HeaderName = HeaderName::from_static(X_B3_SAMPLED);
pub(super) const X_B3_FLAGS_NAME: HeaderName = HeaderName::from_static(X_B3_FLAGS);

/// A valid B3 context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct B3Context {
    /// Trace id (64-bit ids left-padded).
    pub trace_id: TraceId,
    /// The caller's span id.
    pub span_id: SpanId,
    /// The caller's parent span id.
    pub parent_span_id: Option<SpanId>,
    /// The sampling decision, if made.
    pub sampled: Option<bool>,
}

fn sampling(v: &str) -> Result<Option<bool>, ()> {
    match v {
        "1" | "d" | "true" => Ok(Some(true)),
        "0" | "false" => Ok(Some(false)),
        _ => Err(()),
    }
}

/// Parses a single `b3` header. A bare sampling state (`0`, `1`, `d`) carries no ids and gives
/// `None`, as does anything invalid.
pub fn parse_single(v: &str) -> Option<B3Context> {
    let mut parts = v.split('-');
    let trace_id = TraceId::parse(parts.next()?, true)?;
    let span_id = SpanId::parse(parts.next()?)?;
    let sampled = match parts.next() {
        Some(s) => sampling(s).ok()?,
        None => None,
    };
    let parent_span_id = match parts.next() {
        Some(p) => Some(SpanId::parse(p)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(B3Context {
        trace_id,
        span_id,
        parent_span_id,
        sampled,
    })
}

/// Parses the multi-header form; `None` when the trace or span id is missing or invalid.
pub fn parse_multi(headers: &HeaderMap) -> Option<B3Context> {
    let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let trace_id = TraceId::parse(get(&X_B3_TRACEID_NAME)?, true)?;
    let span_id = SpanId::parse(get(&X_B3_SPANID_NAME)?)?;
    let parent_span_id = match get(&X_B3_PARENTSPANID_NAME) {
        Some(p) => Some(SpanId::parse(p)?),
        None => None,
    };
    let debug = get(&X_B3_FLAGS_NAME) == Some("1");
    let sampled = match get(&X_B3_SAMPLED_NAME) {
        Some(s) => sampling(s).ok()?,
        None => None,
    };
    Some(B3Context {
        trace_id,
        span_id,
        parent_span_id,
        sampled: if debug { Some(true) } else { sampled },
    })
}

/// Formats the single-header form.
pub fn format_single(c: &B3Context) -> String {
    let mut s = format!("{}-{}", c.trace_id, c.span_id);
    if let Some(sampled) = c.sampled {
        s.push_str(if sampled { "-1" } else { "-0" });
        if let Some(p) = c.parent_span_id {
            s.push('-');
            s.push_str(&p.to_string());
        }
    }
    s
}
