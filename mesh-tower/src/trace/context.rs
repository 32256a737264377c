//! A request's trace context: read from incoming headers (W3C first, then B3), continued with a
//! new span id per hop, and written to outgoing headers in both formats so W3C and Zipkin
//! tracers downstream both see it.

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;

use super::b3::{self, B3, X_B3_FLAGS, X_B3_PARENTSPANID, X_B3_SAMPLED, X_B3_SPANID, X_B3_TRACEID};
use super::ids::{SpanId, TraceId};
use super::request_id::X_REQUEST_ID;
use super::w3c::{self, TRACEPARENT, TRACESTATE};

/// The trace a request belongs to and its own span in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// Trace id.
    pub trace_id: TraceId,
    /// This hop's span id.
    pub span_id: SpanId,
    /// The caller's span id (none for a trace's first span).
    pub parent_span_id: Option<SpanId>,
    /// The sampling decision, if one was made upstream.
    pub sampled: Option<bool>,
    /// W3C `tracestate`, passed on unchanged.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// A new trace: random ids, no parent, no sampling decision.
    pub fn new_root(rng: &mut impl Rng) -> Self {
        Self {
            trace_id: TraceId::random(rng),
            span_id: SpanId::random(rng),
            parent_span_id: None,
            sampled: None,
            tracestate: None,
        }
    }

    /// The caller's context as sent in `headers`: a valid `traceparent` (with its
    /// `tracestate`), else a valid `b3`, else valid `x-b3-*` headers. `None` when there is
    /// none or it is invalid (the caller starts a new trace). The span id is the caller's:
    /// continue with [`TraceContext::child`].
    pub fn extract(headers: &HeaderMap) -> Option<Self> {
        let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(tp) = get(&w3c::TRACEPARENT_NAME).and_then(w3c::parse_traceparent) {
            let state = headers
                .get_all(&w3c::TRACESTATE_NAME)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            return Some(Self {
                trace_id: tp.trace_id,
                span_id: tp.parent_id,
                parent_span_id: None,
                sampled: Some(tp.sampled),
                tracestate: (!state.is_empty() && w3c::valid_tracestate(&state)).then_some(state),
            });
        }
        let b3 = get(&b3::B3_NAME)
            .and_then(b3::parse_single)
            .or_else(|| b3::parse_multi(headers))?;
        Some(Self {
            trace_id: b3.trace_id,
            span_id: b3.span_id,
            parent_span_id: b3.parent_span_id,
            sampled: b3.sampled,
            tracestate: None,
        })
    }

    /// The context of the next hop: same trace, a new span id, this span as its parent.
    pub fn child(&self, rng: &mut impl Rng) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: SpanId::random(rng),
            parent_span_id: Some(self.span_id),
            sampled: self.sampled,
            tracestate: self.tracestate.clone(),
        }
    }

    /// Writes this context into outgoing `headers`: `traceparent` (and `tracestate`), and the
    /// B3 multi headers. Any `b3` single header is removed so the two forms cannot disagree.
    ///
    /// The ids are formatted once into one buffer and each header value is a slice of it, so
    /// the headers share one allocation instead of taking one (or two) each.
    pub fn inject(&self, headers: &mut HeaderMap) {
        self.inject_with(headers, None);
    }

    /// [`inject`](Self::inject), and `request_id` as `x-request-id` (if a valid header
    /// value) from the same buffer.
    pub(crate) fn inject_with(&self, headers: &mut HeaderMap, request_id: Option<&str>) {
        // traceparent (55), trace id (32), span id (16), parent span id (16), request id.
        let mut buf = BytesMut::with_capacity(55 + 32 + 16 + 16 + request_id.map_or(0, str::len));
        let sampled = u8::from(self.sampled == Some(true));
        let (trace_id, span_id) = (self.trace_id, self.span_id);
        let traceparent = push(
            &mut buf,
            format_args!("00-{trace_id}-{span_id}-{sampled:02x}"),
        );
        let trace_id = push(&mut buf, format_args!("{trace_id}"));
        let span_id = push(&mut buf, format_args!("{span_id}"));
        let parent = self
            .parent_span_id
            .and_then(|p| push(&mut buf, format_args!("{p}")));
        let request_id = request_id.and_then(|id| push(&mut buf, format_args!("{id}")));
        let buf = buf.freeze();
        let mut set = |name: &'static str, range: Option<std::ops::Range<usize>>| {
            if let Some(v) = range.and_then(|r| HeaderValue::from_maybe_shared(buf.slice(r)).ok()) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        set(TRACEPARENT, traceparent);
        set(X_B3_TRACEID, trace_id);
        set(X_B3_SPANID, span_id);
        set(X_B3_PARENTSPANID, parent);
        set(X_REQUEST_ID, request_id);
        if let Some(s) = self.sampled {
            headers.insert(
                HeaderName::from_static(X_B3_SAMPLED),
                HeaderValue::from_static(if s { "1" } else { "0" }),
            );
        }
        if let Some(v) = self
            .tracestate
            .as_deref()
            .and_then(|state| HeaderValue::try_from(state).ok())
        {
            headers.insert(HeaderName::from_static(TRACESTATE), v);
        } else {
            headers.remove(TRACESTATE);
        }
        if self.parent_span_id.is_none() {
            headers.remove(X_B3_PARENTSPANID);
        }
        if self.sampled.is_none() {
            headers.remove(X_B3_SAMPLED);
        }
        headers.remove(X_B3_FLAGS);
        headers.remove(B3);
    }
}

/// Appends `args` to `buf`; the range they took.
fn push(buf: &mut BytesMut, args: std::fmt::Arguments<'_>) -> Option<std::ops::Range<usize>> {
    use std::fmt::Write as _;
    let from = buf.len();
    buf.write_fmt(args).ok().map(|()| from..buf.len())
}
