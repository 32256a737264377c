//! A request's trace context: read from incoming headers (W3C first, then B3), continued with a
//! new span id per hop, and written to outgoing headers in both formats so W3C and Zipkin
//! tracers downstream both see it.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;

use super::b3::{self, B3, X_B3_FLAGS, X_B3_PARENTSPANID, X_B3_SAMPLED, X_B3_SPANID, X_B3_TRACEID};
use super::ids::{SpanId, TraceId};
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
    pub fn inject(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        set(
            TRACEPARENT,
            w3c::format_traceparent(self.trace_id, self.span_id, self.sampled == Some(true)),
        );
        set(X_B3_TRACEID, self.trace_id.to_string());
        set(X_B3_SPANID, self.span_id.to_string());
        if let Some(p) = self.parent_span_id {
            set(X_B3_PARENTSPANID, p.to_string());
        }
        if let Some(s) = self.sampled {
            set(X_B3_SAMPLED, if s { "1" } else { "0" }.to_owned());
        }
        if let Some(state) = &self.tracestate {
            set(TRACESTATE, state.clone());
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
