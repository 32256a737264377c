//! `MeshClient` writes the trace context in the format(s) the handler's inbound request came
//! with, as Envoy's tracers write only their own (OpenTelemetry: `traceparent`/`tracestate`,
//! `source/extensions/tracers/opentelemetry/tracer.cc` `Span::injectContext`; Zipkin: `x-b3-*`,
//! `source/extensions/tracers/zipkin/zipkin_core_types.cc` `Span::injectContext`); a trace the
//! call starts goes out in the formats `OTEL_PROPAGATORS` names (W3C by default). Real axum backend on
//! 127.0.0.1 reporting the trace headers it received.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod backends;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::any;
use backends::{Backend, mesh, service_yaml};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use mesh_tower::client::MeshClient;
use mesh_tower::trace;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tower::ServiceExt;

const TRACE_HEADERS: [&str; 9] = [
    "b3",
    "traceparent",
    "tracestate",
    "x-b3-flags",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-spanid",
    "x-b3-traceid",
    "x-request-id",
];

/// Answers with the trace headers it received, `name=value` per line, sorted.
async fn echo(headers: HeaderMap) -> String {
    let mut seen: Vec<String> = TRACE_HEADERS
        .iter()
        .filter_map(|n| {
            let v = headers.get(*n)?.to_str().ok()?;
            Some(format!("{n}={v}"))
        })
        .collect();
    seen.sort();
    seen.join("\n")
}

async fn client() -> MeshClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = Backend {
        addr: listener.local_addr().unwrap(),
        version: "v1".into(),
        hits: Default::default(),
        fail_next: Default::default(),
        authorities: Default::default(),
        delay_ms: Default::default(),
    };
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(any(echo)))
            .await
            .unwrap()
    });
    MeshClient::new(mesh(&service_yaml("traced", &[&backend], "")))
}

/// The trace headers the backend saw for one call; the caller sets a `b3` of its own.
async fn call(client: &MeshClient) -> Vec<(String, String)> {
    let request = Request::get("http://traced:8080/")
        .header("b3", "stale")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let (n, v) = l.split_once('=').unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect()
}

/// The call made while handling an inbound request with `incoming` trace headers.
async fn call_in_handler(client: &MeshClient, incoming: &[(&'static str, &str)]) -> Vec<String> {
    let mut headers = HeaderMap::new();
    for (n, v) in incoming {
        headers.insert(*n, v.parse().unwrap());
    }
    let ctx = trace::inbound(&mut headers, &mut SmallRng::seed_from_u64(1));
    let seen = trace::scope(ctx, call(client)).await;
    seen.into_iter().map(|(n, _)| n).collect()
}

#[tokio::test]
async fn calls_go_on_in_the_formats_that_arrived() {
    let client = client().await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // The caller's own `b3` is not mesh's format here: left as it is, as Envoy's
    // OpenTelemetry tracer leaves it.
    assert_eq!(
        call_in_handler(&client, &[("traceparent", tp), ("tracestate", "k=v")]).await,
        ["b3", "traceparent", "tracestate", "x-request-id"]
    );
    let b3 = [
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "0"),
    ];
    assert_eq!(
        call_in_handler(&client, &b3).await,
        [
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-b3-spanid",
            "x-b3-traceid",
            "x-request-id"
        ]
    );
}

/// A call outside any handler starts a trace. It goes out in the formats `OTEL_PROPAGATORS`
/// names, W3C by default (the OpenTelemetry SDK environment specification's default
/// `tracecontext`; unset here), or in those the application sets: with B3 added, the ids are
/// the same in both. No parent, no sampling decision yet, a new request id. (The only test of
/// this binary that starts traces, so the process-wide setting changes under no other test.)
#[tokio::test]
async fn a_trace_mesh_starts_goes_out_in_the_configured_formats() {
    assert_eq!(std::env::var("OTEL_PROPAGATORS").ok(), None);
    let client = client().await;
    let names = |seen: &[(String, String)]| -> Vec<String> {
        seen.iter().map(|(n, _)| n.clone()).collect()
    };
    // The caller's own `b3` is not in mesh's format: left as it is.
    let seen = call(&client).await;
    assert_eq!(names(&seen), ["b3", "traceparent", "x-request-id"]);
    assert_eq!(trace::Formats::for_new_trace(), trace::Formats::W3C);

    trace::set_new_trace_formats(trace::Formats::BOTH);
    // In B3 the caller's `b3` is replaced.
    let seen = call(&client).await;
    assert_eq!(
        names(&seen),
        ["traceparent", "x-b3-spanid", "x-b3-traceid", "x-request-id"]
    );
    let value = |name: &str| seen.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let traceparent = value("traceparent");
    assert_eq!(&traceparent[3..35], value("x-b3-traceid"));
    assert_eq!(&traceparent[36..52], value("x-b3-spanid"));
    assert_eq!(value("x-request-id").len(), 36);

    trace::set_new_trace_formats(trace::Formats::NONE);
    assert_eq!(names(&call(&client).await), ["b3", "x-request-id"]);
}
