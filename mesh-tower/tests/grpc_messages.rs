//! `istio_request_messages_total` and `istio_response_messages_total` on the server side: gRPC
//! messages counted per direction as Envoy's `grpc_stats` filter counts them (length-prefixed
//! frames, however the DATA frames split them), for gRPC requests only (issue #14).
//! Both reporters through a real tonic stream: `mesh-tonic/tests/grpc_messages.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mesh_core::{Mesh, Workload};
use mesh_tower::telemetry::{Telemetry, prometheus_builder};
use mesh_tower::{ServeOptions, serve};
use tokio::net::{TcpListener, TcpStream};

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8];
    f.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The value of the one series of `name` whose labels include every one of `want`.
fn value(text: &str, name: &str, want: &[&str]) -> Option<String> {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && want.iter().all(|w| l.contains(w)))
        .collect();
    assert!(found.len() <= 1, "{found:?}");
    found
        .first()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
}

#[tokio::test]
async fn server_counts_grpc_messages_per_direction() {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let mesh = Mesh::builder()
        .workload(Workload::new("default", "echo").labels([("app", "echo")]))
        .build()
        .await
        .unwrap();
    let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec:\n  mtls: {mode: DISABLE}\n";
    mesh.apply(mesh_core::istio::load_str("pa.yaml", yaml, mesh.context()).unwrap());

    // Reads the whole request, answers three messages, in two uneven chunks.
    let app = Router::new()
        .route(
            "/echo.Echo/Many",
            routing::post(|req: Request| async move {
                let _ = req.into_body().collect().await.unwrap();
                let mut out = frame(b"one");
                out.extend(frame(b""));
                out.extend(frame(&[9u8; 1000]));
                let (a, b) = out.split_at(7);
                let chunks = vec![
                    Ok::<_, std::convert::Infallible>(Bytes::copy_from_slice(a)),
                    Ok(Bytes::copy_from_slice(b)),
                ];
                http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(Body::from_stream(futures_util::stream::iter(chunks)))
                    .unwrap()
            }),
        )
        .route("/plain", routing::post(|| async { "plain" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        serve(&mesh, listener, app).options(ServeOptions::new().telemetry(Telemetry::new()));
    tokio::spawn(server.into_future());

    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut body = frame(b"a");
    body.extend(frame(b"bb"));
    let grpc = http::Request::post("/echo.Echo/Many")
        .header("host", "echo:9000")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = send.send_request(grpc).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    // Plain HTTP gets no message counters, as in Istio.
    let plain = http::Request::post("/plain")
        .header("host", "echo:9000")
        .body(Full::new(Bytes::from(frame(b"not grpc"))))
        .unwrap();
    let response = send.send_request(plain).await.unwrap();
    response.into_body().collect().await.unwrap();

    // The record is made when the response body ends; give the server a moment (bounded).
    let mut text = String::new();
    for _ in 0..100 {
        text = handle.render();
        if value(
            &text,
            "istio_requests_total",
            &["request_protocol=\"http\""],
        )
        .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // One series per peer pair: Istio labels the message counters by the peers alone (its
    // stats filter adds them before the per-response tags, istio_stats.cc `reportHelper`).
    let grpc = ["reporter=\"destination\""];
    assert_eq!(
        value(&text, "istio_request_messages_total", &grpc).as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        value(&text, "istio_response_messages_total", &grpc).as_deref(),
        Some("3"),
        "{text}"
    );
    // Plain HTTP added nothing to them (the values above), and no per-response label is on them.
    for line in text.lines().filter(|l| l.contains("_messages_total{")) {
        for label in ["request_protocol", "response_code", "grpc_response_status"] {
            assert!(!line.contains(label), "{line}");
        }
    }
}
