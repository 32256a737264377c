//! The ADS client against `mesh xds serve`'s server on 127.0.0.1, with real MeshClient traffic
//! to axum backends: pushes applied mid-traffic, and a server lost under traffic.
//!
//! The 30 s outage is scaled down by an injected backoff (50 ms initial, ×1.6, 400 ms
//! cap, ±20 % jitter): the server stays away until the client has failed at least four
//! reconnects — with the default backoff (1 s, ×1.6) that is about 9 s of outage — while
//! traffic keeps flowing on the last good config.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use mesh_core::{Mesh, MeshSettings, Workload};
use mesh_xds::bootstrap::XdsTarget;
use mesh_xds::client::{Backoff, XdsClient, XdsClientConfig};
use mesh_xds::server::XdsServer;
use support::{backend, config, traffic, until, write_atomic};
use tokio::sync::oneshot;

const URL: &str = "http://inventory:8080/";

fn fast_backoff() -> Backoff {
    // Scaled down from 1 s / 120 s so the test runs in seconds; the shape (×1.6, jitter) is the
    // default's.
    Backoff {
        initial: Duration::from_millis(50),
        multiplier: 1.6,
        max: Duration::from_millis(400),
        jitter: 0.2,
    }
}

async fn start_server(
    dir: &std::path::Path,
    listener: tokio::net::TcpListener,
) -> (XdsServer, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let server = XdsServer::new(vec![dir.to_owned()], MeshSettings::default())
        .await
        .unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let s = server.clone();
    let task = tokio::spawn(async move {
        s.serve(listener, async move {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
    });
    (server, stop_tx, task)
}

async fn client_mesh(addr: std::net::SocketAddr) -> (Mesh, XdsClient) {
    let workload = Workload::new("default", "frontend");
    let mesh = Mesh::builder()
        .workload(workload.clone())
        .build()
        .await
        .unwrap();
    let config =
        XdsClientConfig::new(XdsTarget::Tcp(addr.to_string()), &workload).backoff(fast_backoff());
    let client = XdsClient::start(mesh.clone(), config);
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .expect("client ready");
    (mesh, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_change_pushed_mid_traffic_fails_nothing() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inventory.yaml");
    write_atomic(&file, &config(&[&v1, &v2], &[100, 0]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_server, _stop, _task) = start_server(dir.path(), listener).await;
    let (mesh, client) = client_mesh(addr).await;
    assert!(client.status().connected);
    let first = mesh.snapshot().version.clone();

    let (t, handle) = traffic(&mesh, URL, 20_000);
    until("traffic on v1", Duration::from_secs(10), || {
        t.ok.load(Ordering::Relaxed) >= 200
    })
    .await;
    assert_eq!(
        t.by_version[1].load(Ordering::Relaxed),
        0,
        "weight 0 gets nothing"
    );

    write_atomic(&file, &config(&[&v1, &v2], &[0, 100]));
    let mut changes = mesh.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        changes.wait_for(|s| s.version != first),
    )
    .await
    .unwrap()
    .unwrap();
    let at_switch = t.by_version[1].load(Ordering::Relaxed);
    let ok_at_switch = t.ok.load(Ordering::Relaxed);
    until("traffic after the push", Duration::from_secs(10), || {
        t.ok.load(Ordering::Relaxed) >= ok_at_switch + 200
    })
    .await;
    t.stop.store(true, Ordering::Relaxed);
    handle.await.unwrap();

    assert_eq!(
        t.failed.load(Ordering::Relaxed),
        0,
        "no request failed across the push"
    );
    let v2_after = t.by_version[1].load(Ordering::Relaxed) - at_switch;
    assert!(
        v2_after >= 199,
        "after the push v2 takes the traffic ({v2_after})"
    );
    let status = client.status();
    assert!(
        status
            .resources
            .iter()
            .all(|r| r.state == mesh_xds::client::ResourceState::Acked),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_server_under_traffic_fails_nothing_and_the_client_reconnects() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        &dir.path().join("inventory.yaml"),
        &config(&[&v1, &v2], &[50, 50]),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_server, stop, task) = start_server(dir.path(), listener).await;
    let (mesh, client) = client_mesh(addr).await;
    let version = mesh.snapshot().version.clone();

    let (t, handle) = traffic(&mesh, URL, 50_000);
    until("traffic", Duration::from_secs(10), || {
        t.ok.load(Ordering::Relaxed) >= 100
    })
    .await;

    // Kill the server: every stream ends, the listener closes.
    stop.send(()).unwrap();
    task.await.unwrap();
    let mut status = client.subscribe_status();
    tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    let attempts_at_loss = client.status().connect_attempts;

    // The server stays away while traffic flows and the client retries with backoff.
    let ok_at_loss = t.ok.load(Ordering::Relaxed);
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.connect_attempts >= attempts_at_loss + 4),
    )
    .await
    .unwrap()
    .unwrap();
    until(
        "traffic while the server is gone",
        Duration::from_secs(10),
        || t.ok.load(Ordering::Relaxed) >= ok_at_loss + 300,
    )
    .await;
    assert_eq!(
        mesh.snapshot().version,
        version,
        "the last good config keeps serving"
    );
    assert!(client.is_ready());

    // Back on the same address: the client reconnects and is served again.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (_server, _stop, _task) = start_server(dir.path(), listener).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.connected && s.connections >= 2),
    )
    .await
    .unwrap()
    .unwrap();
    let ok_at_back = t.ok.load(Ordering::Relaxed);
    until(
        "traffic after reconnecting",
        Duration::from_secs(10),
        || t.ok.load(Ordering::Relaxed) >= ok_at_back + 100,
    )
    .await;
    t.stop.store(true, Ordering::Relaxed);
    handle.await.unwrap();

    assert_eq!(
        t.failed.load(Ordering::Relaxed),
        0,
        "no request failed while the control plane was gone"
    );
    let s = client.status();
    // 50 ms ×1.6 up to 400 ms: a few attempts per second, not a tight loop.
    assert!(s.connect_attempts >= attempts_at_loss + 4, "{s:?}");
}
