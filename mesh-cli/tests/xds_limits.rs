//! `mesh xds serve` as a process under requests over its limits: an oversized request and a
//! subscription naming too many resources end their stream with RESOURCE_EXHAUSTED, the
//! server's memory does not grow with them, and it keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;

const CLUSTERS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Server, String) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reviews.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args([
            "xds",
            "serve",
            "--insecure-plaintext",
            "--config",
            fixture,
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("mesh xds serve: listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let server = Server(child);
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server reports its address");
    (server, addr)
}

fn node() -> Node {
    Node {
        id: "sidecar~127.0.0.1~productpage.default~default.svc.cluster.local".into(),
        ..Default::default()
    }
}

/// Opens a stream, sends `request`, and returns the first thing the server answers.
async fn first_answer(
    addr: &str,
    request: DiscoveryRequest,
) -> Result<envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse, tonic::Status> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let call = async {
        let mut responses = client
            .stream_aggregated_resources(futures_util::stream::iter([request]))
            .await?
            .into_inner();
        responses
            .message()
            .await?
            .ok_or_else(|| tonic::Status::unknown("stream ended without an answer"))
    };
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("an answer in time")
}

/// Resident memory of a process, in KiB (Linux).
#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_limits_are_refused_and_cost_nothing() {
    let (server, addr) = start();
    let ok = DiscoveryRequest {
        node: Some(node()),
        type_url: CLUSTERS.into(),
        ..Default::default()
    };
    assert!(
        !first_answer(&addr, ok.clone())
            .await
            .unwrap()
            .resources
            .is_empty(),
        "the server serves"
    );
    let before = rss_kib(server.0.id());

    // istiod's 4 MiB cap (`ISTIO_GPRC_MAXRECVMSGSIZE`, `pilot/pkg/grpc/grpc.go` ServerOptions):
    // three requests of 5 MiB each, refused from the message header.
    for _ in 0..3 {
        let huge = DiscoveryRequest {
            node: Some(node()),
            type_url: ENDPOINTS.into(),
            resource_names: vec!["x".repeat(5 << 20)],
            ..Default::default()
        };
        let status = first_answer(&addr, huge).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
    }
    // Within the size cap, too many names for one stream.
    let many = DiscoveryRequest {
        node: Some(node()),
        type_url: ENDPOINTS.into(),
        resource_names: (0..10_001).map(|i| format!("c{i}")).collect(),
        ..Default::default()
    };
    let status = first_answer(&addr, many).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");

    let after = rss_kib(server.0.id());
    assert!(
        after < before + 32 * 1024,
        "server memory grew from {before} KiB to {after} KiB"
    );
    assert!(
        !first_answer(&addr, ok).await.unwrap().resources.is_empty(),
        "the server still serves"
    );
}
