//! A request's trace context: read from incoming headers (W3C first, then B3), continued with a
//! new span id per hop, and written to outgoing headers in the format(s) it arrived in.
//!
//! Envoy writes the headers of its configured tracer only: the OpenTelemetry tracer
//! `traceparent`/`tracestate` (`source/extensions/tracers/opentelemetry/tracer.cc`,
//! `Span::injectContext`), the Zipkin tracer the `x-b3-*` headers
//! (`source/extensions/tracers/zipkin/zipkin_core_types.cc`, `Span::injectContext`), each
//! reading its own format (`span_context_extractor.cc`). mesh has no single tracer per listener,
//! so it keeps what the caller's tracer speaks: the formats that arrived go on ([`Formats`]);
//! a trace mesh starts goes out in the formats `OTEL_PROPAGATORS` names, W3C by default
//! ([`Formats::for_new_trace`]).

use http::header::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;
use std::ops::Range;

use super::b3;
use super::formats::Formats;
use super::header_bytes;
use super::hpack;
use super::ids::{SpanId, TraceId, hex_pair};
use super::request_id::{MAX_REQUEST_ID_LEN, X_REQUEST_ID_NAME, write_uuid_v4};
use super::w3c;

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
    /// The header formats this context is written in ([`TraceContext::inject`]).
    pub formats: Formats,
}

impl TraceContext {
    /// A new trace: random ids, no parent, no sampling decision; written in the formats of a
    /// trace mesh starts ([`Formats::for_new_trace`]).
    pub fn new_root(rng: &mut impl Rng) -> Self {
        Self {
            trace_id: TraceId::random(rng),
            span_id: SpanId::random(rng),
            parent_span_id: None,
            sampled: None,
            tracestate: None,
            formats: Formats::for_new_trace(),
        }
    }

    /// The caller's context as sent in `headers`: a valid `traceparent` (with its
    /// `tracestate`), else a valid `b3`, else valid `x-b3-*` headers. `None` when there is
    /// none or it is invalid (the caller starts a new trace). The span id is the caller's:
    /// continue with [`TraceContext::child`]. Its [`formats`](Self::formats) are those that
    /// arrived valid, so the trace goes on in them.
    pub fn extract(headers: &HeaderMap) -> Option<Self> {
        let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let b3 = || {
            get(&b3::B3_NAME)
                .and_then(b3::parse_single)
                .or_else(|| b3::parse_multi(headers))
        };
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
                formats: Formats {
                    w3c: true,
                    b3: b3().is_some(),
                },
            });
        }
        let b3 = b3()?;
        Some(Self {
            trace_id: b3.trace_id,
            span_id: b3.span_id,
            parent_span_id: b3.parent_span_id,
            sampled: b3.sampled,
            tracestate: None,
            formats: Formats::B3,
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
            formats: self.formats,
        }
    }

    /// Writes this context into outgoing `headers` in its [`formats`](Self::formats):
    /// `traceparent` (and `tracestate`) for W3C, the B3 multi headers for B3, replacing what
    /// `headers` had of that format (a `b3` single header included, so the two B3 forms cannot
    /// disagree). Headers of a format it is not written in are left as they are, as Envoy's
    /// tracers leave the other tracers' headers.
    ///
    /// The values are formatted on the stack and each header value is a slice of one shared
    /// buffer, carved from a per-thread chunk: no allocation per call.
    pub fn inject(&self, headers: &mut HeaderMap) {
        self.inject_with(headers, None);
    }

    /// [`inject`](Self::inject), and `x-request-id` from `request_id` in the same buffer; the
    /// value written (`None` when `request_id` is `None` or its id is not a valid value).
    pub(crate) fn inject_with(
        &self,
        headers: &mut HeaderMap,
        request_id: Option<RequestIdSource<'_, '_>>,
    ) -> Option<HeaderValue> {
        let mut buf = HeaderBuf::new();
        let traceparent = self.formats.w3c.then(|| {
            let from = buf.len;
            buf.push(b"00-");
            buf.push_hex(&self.trace_id.0);
            buf.push(b"-");
            buf.push_hex(&self.span_id.0);
            buf.push(if self.sampled == Some(true) {
                b"-01"
            } else {
                b"-00"
            });
            from..buf.len
        });
        let b3 = self.formats.b3.then(|| {
            let trace_id = buf.hex(&self.trace_id.0);
            let span_id = buf.hex(&self.span_id.0);
            let parent = self.parent_span_id.map(|p| buf.hex(&p.0));
            (trace_id, span_id, parent)
        });
        // A known id too long for the buffer (one the application set) is copied on its own.
        let known = match &request_id {
            Some(RequestIdSource::Known(id)) => Some(*id),
            _ => None,
        };
        let request_id = request_id.and_then(|id| buf.request_id(id));
        let shared = header_bytes::share(buf.as_ref());
        // Sent as HPACK never-indexed literals: see `hpack`.
        let value = |range: Range<usize>| {
            HeaderValue::from_maybe_shared(shared.slice(range))
                .ok()
                .map(hpack::never_indexed)
        };
        let mut set = |name: HeaderName, value: Option<HeaderValue>| match value {
            Some(v) => {
                headers.insert(name, v);
            }
            None => {
                headers.remove(name);
            }
        };
        if let Some(traceparent) = traceparent {
            set(w3c::TRACEPARENT_NAME, value(traceparent));
            let state = self
                .tracestate
                .as_deref()
                .and_then(|state| HeaderValue::try_from(state).ok());
            set(w3c::TRACESTATE_NAME, state);
        }
        if let Some((trace_id, span_id, parent)) = b3 {
            set(b3::X_B3_TRACEID_NAME, value(trace_id));
            set(b3::X_B3_SPANID_NAME, value(span_id));
            set(b3::X_B3_PARENTSPANID_NAME, parent.and_then(value));
            let sampled = self
                .sampled
                .map(|s| HeaderValue::from_static(if s { "1" } else { "0" }));
            set(b3::X_B3_SAMPLED_NAME, sampled);
            set(b3::X_B3_FLAGS_NAME, None);
            set(b3::B3_NAME, None);
        }
        let request_id = match request_id {
            Some(range) => value(range),
            None => known.and_then(|id| HeaderValue::try_from(id).ok()),
        };
        if let Some(id) = &request_id {
            headers.insert(X_REQUEST_ID_NAME, id.clone());
        }
        request_id
    }
}

/// Where the `x-request-id` of an outgoing request comes from.
pub(crate) enum RequestIdSource<'a, 'r> {
    /// The inbound request's (or the application's) id, copied.
    Known(&'a str),
    /// A new UUID v4 from this generator.
    New(&'r mut dyn rand::RngCore),
}

/// Room for the longest `traceparent` (55), trace id (32), span id and parent span id (16
/// each) and request id ([`MAX_REQUEST_ID_LEN`]) written together.
const HEADER_BUF: usize = 55 + 32 + 16 + 16 + MAX_REQUEST_ID_LEN;

/// The bytes of a request's trace headers, formatted on the stack, then copied once into the
/// buffer their header values share ([`header_bytes::share`]).
struct HeaderBuf {
    bytes: [u8; HEADER_BUF],
    len: usize,
}

impl AsRef<[u8]> for HeaderBuf {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl HeaderBuf {
    fn new() -> Self {
        Self {
            bytes: [0; HEADER_BUF],
            len: 0,
        }
    }

    /// Appends `b`; the writes above fit [`HEADER_BUF`] (a longer one would be cut).
    fn push(&mut self, b: &[u8]) {
        let end = (self.len + b.len()).min(HEADER_BUF);
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&b[..n]);
        self.len = end;
    }

    fn push_hex(&mut self, bytes: &[u8]) {
        // Two stores per byte: a `push` of each pair was a `memcpy` call per byte.
        for b in bytes {
            if let Some([hi, lo]) = self.bytes.get_mut(self.len..self.len + 2) {
                [*hi, *lo] = hex_pair(*b);
                self.len += 2;
            }
        }
    }

    /// Appends `bytes` as lowercase hex; the range written.
    fn hex(&mut self, bytes: &[u8]) -> Range<usize> {
        let from = self.len;
        self.push_hex(bytes);
        from..self.len
    }

    /// Appends the request id; `None` when a known one does not fit (it is then not written).
    fn request_id(&mut self, id: RequestIdSource<'_, '_>) -> Option<Range<usize>> {
        let from = self.len;
        match id {
            RequestIdSource::Known(id) => {
                if id.len() > HEADER_BUF - self.len {
                    return None;
                }
                self.push(id.as_bytes());
            }
            RequestIdSource::New(rng) => {
                let mut uuid = [0u8; 36];
                write_uuid_v4(rng, &mut uuid);
                self.push(&uuid);
            }
        }
        Some(from..self.len)
    }
}
