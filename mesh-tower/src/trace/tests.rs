use http::HeaderMap;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::b3::{B3Context, format_single, parse_multi, parse_single};
use super::w3c::{format_traceparent, parse_traceparent, valid_tracestate};
use super::*;

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn w3c_spec_vectors() {
    let tp = parse_traceparent(TP).unwrap();
    assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(tp.parent_id.to_string(), "00f067aa0ba902b7");
    assert!(tp.sampled);
    assert_eq!(format_traceparent(tp.trace_id, tp.parent_id, true), TP);
    let unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    assert!(!unsampled.unwrap().sampled);
    // A future version may append fields.
    assert!(
        parse_traceparent(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like"
        )
        .is_some()
    );
    for invalid in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    ] {
        assert_eq!(parse_traceparent(invalid), None, "{invalid}");
    }
    assert!(valid_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert!(!valid_tracestate("no-equals-sign"));
    assert!(!valid_tracestate(&"a=b,".repeat(40)));
}

#[test]
fn b3_spec_vectors() {
    let c = parse_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
        .unwrap();
    assert_eq!(c.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(c.span_id.to_string(), "e457b5a2e4d86bd1");
    assert_eq!(c.sampled, Some(true));
    assert_eq!(c.parent_span_id.unwrap().to_string(), "05e3ac9a4f6e3b90");
    assert_eq!(
        format_single(&c),
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"
    );
    let short = parse_single("463ac35c9f6413ad-72b5a2e4d86bd1e4-d").unwrap();
    assert_eq!(
        short.trace_id.to_string(),
        "0000000000000000463ac35c9f6413ad"
    );
    assert_eq!(short.sampled, Some(true), "debug implies sampled");
    let no_sampling = parse_single("463ac35c9f6413ad-72b5a2e4d86bd1e4").unwrap();
    assert_eq!(no_sampling.sampled, None);
    for invalid in [
        "0",
        "1",
        "d",
        "463ac35c9f6413ad",
        "463ac35c9f6413ad-72b5a2e4d86bd1e4-x",
        "463ac35c9f6413ad-72b5a2e4d86bd1e4-1-05e3ac9a4f6e3b90-9",
        "463ac35c9f6413a-72b5a2e4d86bd1e4-1",
        "0000000000000000-72b5a2e4d86bd1e4-1",
    ] {
        assert_eq!(parse_single(invalid), None, "{invalid}");
    }
    let multi = parse_multi(&headers(&[
        ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-parentspanid", "0020000000000001"),
        ("x-b3-sampled", "0"),
    ]))
    .unwrap();
    assert_eq!(
        multi,
        B3Context {
            trace_id: TraceId::parse("463ac35c9f6413ad48485a3953bb6124", false).unwrap(),
            span_id: SpanId::parse("a2fb4a1d1a96d312").unwrap(),
            parent_span_id: SpanId::parse("0020000000000001"),
            sampled: Some(false),
        }
    );
    let debug = parse_multi(&headers(&[
        ("x-b3-traceid", "463ac35c9f6413ad"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-flags", "1"),
    ]))
    .unwrap();
    assert_eq!(debug.sampled, Some(true));
    assert_eq!(
        parse_multi(&headers(&[("x-b3-traceid", "463ac35c9f6413ad")])),
        None
    );
}

#[test]
fn extract_prefers_w3c_then_b3_and_rejects_garbage() {
    let h = headers(&[
        ("traceparent", TP),
        ("tracestate", "rojo=00f067aa0ba902b7"),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    ]);
    let c = TraceContext::extract(&h).unwrap();
    assert_eq!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        c.tracestate.as_deref(),
        Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    );
    let h = headers(&[
        ("traceparent", "garbage"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0"),
    ]);
    let c = TraceContext::extract(&h).unwrap();
    assert_eq!(c.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(c.sampled, Some(false));
    assert_eq!(
        TraceContext::extract(&headers(&[("traceparent", "00-x")])),
        None
    );
    assert_eq!(TraceContext::extract(&HeaderMap::new()), None);
}

#[test]
fn inject_writes_both_formats_and_round_trips() {
    let mut r = rng();
    let parent = TraceContext::extract(&headers(&[("traceparent", TP)])).unwrap();
    // Only W3C arrived, so the trace would go on in W3C alone; written in both here.
    let child = TraceContext {
        formats: Formats::BOTH,
        ..parent.child(&mut r)
    };
    assert_eq!(child.trace_id, parent.trace_id);
    assert_ne!(child.span_id, parent.span_id);
    assert_eq!(child.parent_span_id, Some(parent.span_id));
    let mut out = headers(&[("b3", "stale"), ("x-b3-flags", "1")]);
    child.inject(&mut out);
    assert_eq!(
        out["traceparent"],
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", child.span_id).as_str()
    );
    assert_eq!(out["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(out["x-b3-spanid"], child.span_id.to_string().as_str());
    assert_eq!(out["x-b3-parentspanid"], "00f067aa0ba902b7");
    assert_eq!(out["x-b3-sampled"], "1");
    assert!(out.get("b3").is_none());
    assert!(out.get("x-b3-flags").is_none());
    let back = TraceContext::extract(&out).unwrap();
    assert_eq!(back.trace_id, child.trace_id);
    assert_eq!(back.span_id, child.span_id);
    // B3 alone (no traceparent) reads the same context back too.
    out.remove("traceparent");
    let b3 = TraceContext::extract(&out).unwrap();
    assert_eq!(b3.parent_span_id, Some(parent.span_id));
}

#[test]
fn request_ids_are_uuid_v4_and_kept_when_sane() {
    let mut r = rng();
    let id = uuid_v4(&mut r);
    assert_eq!(id.len(), 36);
    let b = id.as_bytes();
    assert_eq!([b[8], b[13], b[18], b[23]], [b'-'; 4]);
    assert_eq!(b[14], b'4');
    assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'));
    assert_ne!(uuid_v4(&mut r), id);
    let mut h = headers(&[("x-request-id", "abc-123")]);
    assert_eq!(ensure_request_id(&mut h, &mut r), "abc-123");
    let mut h = headers(&[("x-request-id", &"x".repeat(200))]);
    let new = ensure_request_id(&mut h, &mut r);
    assert_eq!(new.len(), 36);
    assert_eq!(h["x-request-id"], new.as_str());
    let mut h = HeaderMap::new();
    let new = ensure_request_id(&mut h, &mut r);
    assert_eq!(h["x-request-id"], new.as_str());
}

#[tokio::test]
async fn handler_scope_carries_the_context_to_outbound_calls() {
    let mut incoming = headers(&[("traceparent", TP), ("x-request-id", "req-1")]);
    let ctx = inbound(&mut incoming, &mut rng());
    assert_eq!(ctx.request_id, "req-1");
    assert_eq!(
        ctx.trace.parent_span_id.unwrap().to_string(),
        "00f067aa0ba902b7"
    );
    let server_span = ctx.trace.span_id;
    let (outgoing, call) = scope(ctx.clone(), async {
        assert_eq!(current().as_ref(), Some(&ctx));
        // An await point inside the handler keeps the context.
        tokio::task::yield_now().await;
        let mut h = HeaderMap::new();
        let call = outbound(&mut h, &mut StdRng::seed_from_u64(8));
        (h, call)
    })
    .await;
    assert_eq!(outgoing["x-request-id"], "req-1");
    let sent = TraceContext::extract(&outgoing).unwrap();
    assert_eq!(
        sent.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_ne!(sent.span_id, server_span, "the call is a new span");
    assert_eq!(sent.span_id, call.trace.span_id);
    assert_eq!(
        call.trace.parent_span_id,
        Some(server_span),
        "child of the handler's span"
    );
    // The trace came in W3C only, so it goes on in W3C only: as Envoy's OpenTelemetry tracer
    // writes just `traceparent`/`tracestate` (`source/extensions/tracers/opentelemetry/
    // tracer.cc`, `Span::injectContext`), no B3 headers are added to it.
    assert!(outgoing.get("x-b3-traceid").is_none());
    assert!(outgoing.get("x-b3-parentspanid").is_none());
    // Outside a handler: a new trace and request id.
    assert_eq!(current(), None);
    let mut h = HeaderMap::new();
    let fresh = outbound(&mut h, &mut rng());
    assert_ne!(fresh.trace.trace_id, sent.trace_id);
    assert_eq!(h["x-request-id"], fresh.request_id.as_str());
    // Garbage in: a new trace.
    let mut bad = headers(&[("traceparent", "00-zz"), ("x-b3-traceid", "nope")]);
    let root = inbound(&mut bad, &mut rng());
    assert_eq!(root.trace.parent_span_id, None);
    let _span = root.span();
}

/// Ids and request ids read exactly as per-byte `{:02x}` formatting writes them.
#[test]
fn hex_forms_match_per_byte_formatting() {
    use rand::RngCore;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut r = rng();
    for _ in 0..1_000 {
        let t = TraceId::random(&mut r);
        let s = SpanId::random(&mut r);
        assert_eq!(t.to_string(), hex(&t.0));
        assert_eq!(s.to_string(), hex(&s.0));
    }
    for b in [[0u8; 16], [0xff; 16]] {
        assert_eq!(TraceId(b).to_string(), hex(&b));
    }
    // uuid_v4 draws 16 random bytes, then sets the version and variant bits.
    let mut a = rng();
    let mut b = rng();
    for _ in 0..1_000 {
        let mut bytes = [0u8; 16];
        b.fill_bytes(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let h = hex(&bytes);
        let want = format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        );
        assert_eq!(uuid_v4(&mut a), want);
    }
}

/// The formats that arrived go on, and only they: Envoy's OpenTelemetry tracer reads and writes
/// `traceparent`/`tracestate` (`source/extensions/tracers/opentelemetry/tracer.cc`,
/// `Span::injectContext`), its Zipkin tracer the `x-b3-*` headers
/// (`source/extensions/tracers/zipkin/zipkin_core_types.cc`, `Span::injectContext`, reading the
/// single `b3` form too: `span_context_extractor.cc`). A request carrying both keeps both.
#[tokio::test]
async fn calls_carry_the_formats_that_arrived() {
    const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    let call = |incoming: &[(&'static str, &str)]| {
        let mut incoming = headers(incoming);
        let ctx = inbound(&mut incoming, &mut rng());
        async move {
            scope(ctx.clone(), async {
                // What the application set: replaced in the formats written, kept in the other
                // (as Envoy's tracers leave each other's headers).
                let mut h = headers(&[("b3", "stale"), ("traceparent", "stale")]);
                let call = outbound(&mut h, &mut rng());
                (h, call)
            })
            .await
        }
    };
    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<_> = h
            .keys()
            .map(http::HeaderName::as_str)
            .filter(|n| *n != "x-request-id")
            .collect();
        names.sort_unstable();
        names
    }

    let (h, ctx) = call(&[("traceparent", TP), ("tracestate", "rojo=1")]).await;
    assert_eq!(ctx.trace.formats, Formats::W3C);
    assert_eq!(names(&h), ["b3", "traceparent", "tracestate"]);
    assert_eq!(h["tracestate"], "rojo=1");
    assert_ne!(h["traceparent"], "stale");
    assert_eq!(
        h["b3"], "stale",
        "not mesh's format here: left as the application set it"
    );

    let multi = [
        ("x-b3-traceid", B3_TRACE),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
    ];
    let (h, ctx) = call(&multi).await;
    assert_eq!(ctx.trace.formats, Formats::B3);
    assert_eq!(
        names(&h),
        [
            "traceparent",
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-b3-spanid",
            "x-b3-traceid"
        ]
    );
    assert_eq!(h["traceparent"], "stale");
    assert_eq!(h["x-b3-traceid"], B3_TRACE);
    assert_eq!(h["x-b3-sampled"], "1");

    // The single form arrives; the multi form goes on, as Envoy's Zipkin tracer writes it.
    let (h, _) = call(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]).await;
    assert_eq!(
        names(&h),
        [
            "traceparent",
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-b3-spanid",
            "x-b3-traceid"
        ]
    );

    // Both arrived (a W3C and a Zipkin tracer upstream): both go on, from the W3C ids.
    let both = [
        ("traceparent", TP),
        ("x-b3-traceid", B3_TRACE),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
    ];
    let (h, ctx) = call(&both).await;
    assert_eq!(ctx.trace.formats, Formats::BOTH);
    assert_eq!(h["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        TraceContext::extract(&h).unwrap().span_id,
        ctx.trace.span_id
    );

    // An invalid context is not a format that arrived: mesh starts the trace.
    let (_, ctx) = call(&[("traceparent", "00-zz")]).await;
    assert_eq!(ctx.trace.formats, Formats::for_new_trace());
}

/// A trace mesh starts is written in its formats (which `OTEL_PROPAGATORS` chooses: see
/// `formats.rs` and `tests/client_trace_formats.rs`), with no parent and no sampling decision.
#[test]
fn a_new_trace_is_written_in_its_formats() {
    let mut r = rng();
    let root = TraceContext {
        formats: Formats::BOTH,
        ..TraceContext::new_root(&mut r)
    };
    let mut h = HeaderMap::new();
    root.inject(&mut h);
    assert_eq!(
        h["traceparent"],
        format!("00-{}-{}-00", root.trace_id, root.span_id).as_str()
    );
    assert_eq!(h["x-b3-traceid"], root.trace_id.to_string().as_str());
    assert_eq!(h["x-b3-spanid"], root.span_id.to_string().as_str());
    assert!(h.get("x-b3-parentspanid").is_none(), "a root has no parent");
    assert!(h.get("x-b3-sampled").is_none(), "no decision made");
    let w3c = TraceContext {
        formats: Formats::W3C,
        ..root
    };
    let mut h = HeaderMap::new();
    w3c.inject(&mut h);
    assert_eq!(h.len(), 1, "only traceparent: {h:?}");
}

/// The request id an outgoing call gets is written from the same buffer as its trace headers:
/// a UUID v4 when it starts one; a kept id whatever its length.
#[tokio::test]
async fn outgoing_request_ids() {
    let mut h = HeaderMap::new();
    let trace = outbound_trace(&mut h, &mut rng());
    let id = h["x-request-id"].to_str().unwrap();
    let b = id.as_bytes();
    assert_eq!(id.len(), 36);
    assert_eq!(
        [b[8], b[13], b[18], b[23], b[14]],
        [b'-', b'-', b'-', b'-', b'4']
    );
    // The same draws as `uuid_v4` after the root's ids.
    let mut r = rng();
    let _ = TraceContext::new_root(&mut r);
    assert_eq!(id, uuid_v4(&mut r));
    assert_eq!(TraceContext::extract(&h).unwrap().span_id, trace.span_id);

    let long = "r".repeat(MAX_REQUEST_ID_LEN * 2);
    let parent = RequestContext {
        trace: TraceContext::new_root(&mut rng()),
        request_id: long.clone(),
    };
    let mut h = HeaderMap::new();
    let ctx = scope(parent, async { outbound(&mut h, &mut rng()) }).await;
    assert_eq!(h["x-request-id"], long.as_str());
    assert_eq!(ctx.request_id, long);
}
