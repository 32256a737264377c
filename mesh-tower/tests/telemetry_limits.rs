//! Metric cardinality against peers that invent a workload per request, on a real server:
//! metadata is believed only over mutual TLS, the label sets and the size of `/metrics` stay
//! bounded, and every overflowed request is counted, even when the telemetry was built before
//! the recorder was installed (it once bound the overflow counter to the recorder of the day).
//!
//! The server's tasks run on the test's current-thread runtime, so the thread-local recorder
//! sees them.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh_core::identity::{CertificateAuthority, ExpectedIdentities};
use mesh_core::telemetry::{PEER_METADATA_HEADER, PeerMetadata};
use mesh_core::{Mesh, Workload};
use mesh_tower::telemetry::{LABEL_OVERFLOW_TOTAL, RequestMetrics, Telemetry};
use mesh_tower::tls::TlsConnector;
use mesh_tower::{ServeOptions, serve};
use support::*;
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(30);
/// Label sets the server may keep with peer values.
const CAPACITY: usize = 40;
/// Budget for their exposition.
const MAX_BYTES: usize = 1024 * 1024;
/// Distinct workloads the peers claim, over each transport.
const PEERS: usize = 300;

async fn start(ca: &CertificateAuthority, telemetry: Telemetry) -> std::net::SocketAddr {
    let mesh = Mesh::builder()
        .workload(Workload::new("default", "reviews").labels([("app", "reviews")]))
        .identity(identity(ca, "default", "reviews"))
        .build()
        .await
        .unwrap();
    let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: PERMISSIVE}}\n";
    let snapshot = mesh_core::istio::load_str("test.yaml", yaml, mesh.context()).unwrap();
    mesh.apply(snapshot);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(&mesh, listener, app()).options(ServeOptions::new().telemetry(telemetry));
    tokio::spawn(server.into_future());
    addr
}

/// A request to `/whoami` claiming to come from workload `name` (a long, valid name, so each
/// label set is as large as a peer can make it).
fn claiming(name: &str) -> http::Request<Empty<Bytes>> {
    let caller = Workload::new("default", name).labels([
        ("app", name),
        (
            "version",
            "v1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
    ]);
    http::Request::get("http://reviews.default.svc.cluster.local/whoami")
        .header(
            PEER_METADATA_HEADER,
            PeerMetadata::from_workload(&caller, "Kubernetes").encode(),
        )
        .body(Empty::new())
        .unwrap()
}

async fn send(client: &mut H2, name: &str) {
    client.ready().await.unwrap();
    let response = client.send_request(claiming(name)).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
}

fn total_requests(text: &str) -> (usize, u64) {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .collect();
    let sum = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    (lines.len(), sum)
}

#[tokio::test]
async fn invented_workloads_are_bounded_and_counted() {
    // Built before any recorder exists, as an application builds it at start-up.
    let telemetry = Telemetry::new().metrics(RequestMetrics::with_limits(CAPACITY, MAX_BYTES));
    let recorder = mesh_tower::telemetry::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let ca = ca("cluster.local");
    let addr = start(&ca, telemetry.clone()).await;

    // Plaintext peers: their claims are not believed; every request is one `unknown` source.
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut plain, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..PEERS {
        send(&mut plain, &format!("plain-{i:04}-{}", "p".repeat(50))).await;
    }
    // Mutual TLS: believed, until the limits collapse new names to `unknown`.
    let connector = TlsConnector::new(identity(&ca, "foo", "sleep"));
    let tls = connector
        .connect(
            TcpStream::connect(addr).await.unwrap(),
            sni(),
            &ExpectedIdentities::any_in_trust_domain(),
        )
        .await
        .unwrap();
    let mut mtls = h2_client(tls.stream).await;
    for i in 0..PEERS {
        send(&mut mtls, &format!("mtls-{i:04}-{}", "m".repeat(50))).await;
    }

    let text = tokio::time::timeout(LIMIT, async {
        loop {
            let text = handle.render();
            if total_requests(&text).1 == 2 * PEERS as u64 {
                return text;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every request recorded");

    let metrics = telemetry.request_metrics();
    // No plaintext claim was believed.
    assert!(
        !text.contains("source_workload=\"plain-"),
        "plaintext metadata believed"
    );
    // Some mTLS claims were, up to the limits.
    let believed = text
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{") && l.contains("source_workload=\"mtls-"))
        .count();
    assert!(believed > 0, "mTLS metadata not believed:\n{text}");
    let (series, _) = total_requests(&text);
    // Each label set at most once; one `unknown` set per transport on top of the believed ones.
    assert_eq!(series, metrics.series());
    assert!(series <= CAPACITY + 2, "{series} label sets");
    // The byte budget held (plus the config-bounded sets without peer values), and the
    // estimate is an upper bound of what Prometheus renders.
    // (Without the limits, the 300 believed names alone render to about 15 MB.)
    assert!(
        text.len() <= MAX_BYTES + 256 * 1024,
        "{} bytes of /metrics",
        text.len()
    );
    assert!(
        text.len() <= metrics.estimated_bytes() + 8 * 1024,
        "{} rendered, {} estimated",
        text.len(),
        metrics.estimated_bytes()
    );
    // Every mTLS request past the limits was counted, through the recorder in force now.
    let overflow: u64 = text
        .lines()
        .find(|l| l.starts_with(LABEL_OVERFLOW_TOTAL))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    assert_eq!(overflow, (PEERS - believed) as u64, "{text}");
}
