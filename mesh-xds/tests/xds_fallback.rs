//! Fallback control planes (gRFC A71) with real `XdsServer`s on 127.0.0.1: a primary that
//! refuses connections sends the client to the fallback; a primary that comes up later takes the
//! client back; a primary lost after a complete config does not send the client to the fallback.
//!
//! The two servers serve different weights (primary: all to v1, fallback: all to v2), so the
//! traffic shows whose config is in use. Backoff is scaled down (50 ms, ×1.6, ≤ 400 ms).

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mesh_core::model::SnapshotSource;
use mesh_core::{Mesh, MeshSettings, Workload};
use mesh_xds::bootstrap::XdsTarget;
use mesh_xds::client::{Backoff, XdsClient, XdsClientConfig, XdsStatus};
use mesh_xds::server::XdsServer;
use support::{Backend, backend, config, traffic, until, write_atomic};
use tokio::sync::oneshot;

const URL: &str = "http://inventory:8080/";
const LIMIT: Duration = Duration::from_secs(10);

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        multiplier: 1.6,
        max: Duration::from_millis(400),
        jitter: 0.2,
    }
}

/// A control plane serving `weights` over v1/v2, until the sender is used or dropped.
struct ControlPlane {
    dir: tempfile::TempDir,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ControlPlane {
    async fn start(
        listener: tokio::net::TcpListener,
        backends: &[&Backend],
        weights: &[u32],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(
            &dir.path().join("inventory.yaml"),
            &config(backends, weights),
        );
        let server = XdsServer::new(vec![dir.path().to_owned()], MeshSettings::default())
            .await
            .unwrap();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        Self { dir, stop, task }
    }

    /// Pushes new weights (the server watches its files).
    fn push(&self, backends: &[&Backend], weights: &[u32]) {
        write_atomic(
            &self.dir.path().join("inventory.yaml"),
            &config(backends, weights),
        );
    }

    async fn shut_down(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap();
    }
}

async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A port nothing listens on (bound, then released).
async fn dead_port() -> SocketAddr {
    let (listener, addr) = bind().await;
    drop(listener);
    addr
}

async fn start_client(primary: SocketAddr, fallback: SocketAddr) -> (Mesh, XdsClient) {
    let workload = Workload::new("default", "frontend");
    let mesh = Mesh::builder()
        .workload(workload.clone())
        .build()
        .await
        .unwrap();
    let config = XdsClientConfig::new(XdsTarget::Tcp(primary.to_string()), &workload)
        .fallback(XdsTarget::Tcp(fallback.to_string()))
        .backoff(fast_backoff());
    let client = XdsClient::start(mesh.clone(), config);
    tokio::time::timeout(LIMIT, client.ready())
        .await
        .expect("client ready");
    (mesh, client)
}

async fn wait_status(client: &XdsClient, what: &str, f: impl FnMut(&XdsStatus) -> bool) {
    let mut status = client.subscribe_status();
    tokio::time::timeout(LIMIT, status.wait_for(f))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", client.status()))
        .unwrap();
}

/// The version (`0`: v1, `1`: v2) that answers `n` requests in a row, asserting they agree.
async fn served_by(mesh: &Mesh, n: usize) -> usize {
    let (t, handle) = traffic(mesh, URL, n);
    handle.await.unwrap();
    assert_eq!(t.ok.load(Ordering::Relaxed), n, "every request answered");
    let v1 = t.by_version[0].load(Ordering::Relaxed);
    assert!(
        v1 == 0 || v1 == n,
        "one version answers all: v1 {v1} of {n}"
    );
    if v1 == n { 0 } else { 1 }
}

fn source(mesh: &Mesh) -> SnapshotSource {
    mesh.snapshot().source.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_primary_sends_the_client_to_the_fallback_and_its_return_takes_it_back() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let primary = dead_port().await;
    let (listener, fallback) = bind().await;
    let fallback_plane = ControlPlane::start(listener, &[&v1, &v2], &[0, 100]).await;

    // (1) The primary refuses connections: ready from the fallback, and the status says so.
    let (mesh, client) = start_client(primary, fallback).await;
    let s = client.status();
    assert!(s.connected && s.on_fallback, "{s:?}");
    assert_eq!(s.server.as_deref(), Some(fallback.to_string().as_str()));
    assert!(s.servers[0].connect_attempts >= 1, "{s:?}");
    assert_eq!((s.servers[0].connections, s.servers[1].connections), (0, 1));
    assert_eq!(
        source(&mesh),
        SnapshotSource::Xds {
            server: fallback.to_string()
        }
    );
    assert_eq!(
        served_by(&mesh, 20).await,
        1,
        "the fallback's config: all to v2"
    );

    // The primary keeps being retried in the background, on the backoff schedule.
    let attempts = client.status().servers[0].connect_attempts;
    wait_status(&client, "primary retries", |s| {
        s.servers[0].connect_attempts >= attempts + 2
    })
    .await;
    assert!(client.status().on_fallback);

    // (2) The primary comes up on its address, with a different config: the client moves to
    // it, applies its config and closes the fallback stream.
    let listener = tokio::net::TcpListener::bind(primary).await.unwrap();
    let primary_plane = ControlPlane::start(listener, &[&v1, &v2], &[100, 0]).await;
    wait_status(&client, "the switch to the primary", |s| {
        s.connected && !s.on_fallback && s.servers[0].connections == 1
    })
    .await;
    // Its resources replace the fallback's as they arrive: traffic moves to v1, with nothing
    // failing across the switch.
    let (t, handle) = traffic(&mesh, URL, 5_000);
    until("traffic on the primary's v1", LIMIT, || {
        t.by_version[0].load(Ordering::Relaxed) >= 20
    })
    .await;
    t.stop.store(true, Ordering::Relaxed);
    handle.await.unwrap();
    assert_eq!(t.failed.load(Ordering::Relaxed), 0, "{:?}", client.status());
    assert_eq!(
        served_by(&mesh, 20).await,
        0,
        "the primary's config: all to v1"
    );
    assert_eq!(
        source(&mesh),
        SnapshotSource::Xds {
            server: primary.to_string()
        }
    );
    let s = client.status();
    assert_eq!(s.server.as_deref(), Some(primary.to_string().as_str()));
    assert!(s.ready && s.last_nack.is_none(), "{s:?}");

    // Without the fallback, the primary's stream carries its pushes: the client is on it.
    fallback_plane.shut_down().await;
    let version = mesh.snapshot().version.clone();
    primary_plane.push(&[&v1, &v2], &[0, 100]);
    let mut snapshots = mesh.subscribe();
    tokio::time::timeout(LIMIT, snapshots.wait_for(|s| s.version != version))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        served_by(&mesh, 20).await,
        1,
        "the primary's push: all to v2"
    );
    let s = client.status();
    assert!(s.connected && !s.on_fallback, "{s:?}");
    assert_eq!(
        (s.servers[0].connections, s.servers[1].connections),
        (1, 1),
        "no reconnect: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_complete_config_losing_the_primary_does_not_fall_back() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let (listener, primary) = bind().await;
    let primary_plane = ControlPlane::start(listener, &[&v1, &v2], &[100, 0]).await;
    let (listener, fallback) = bind().await;
    let _fallback_plane = ControlPlane::start(listener, &[&v1, &v2], &[0, 100]).await;

    let (mesh, client) = start_client(primary, fallback).await;
    let s = client.status();
    assert!(s.connected && !s.on_fallback, "{s:?}");
    assert_eq!(s.server.as_deref(), Some(primary.to_string().as_str()));
    let version = mesh.snapshot().version.clone();

    // (3) The primary goes away after a complete config: the cached config keeps serving and
    // only the primary is retried (gRFC A71: resources are cached, so no fallback).
    primary_plane.shut_down().await;
    wait_status(&client, "the loss", |s| !s.connected).await;
    let attempts = client.status().servers[0].connect_attempts;
    wait_status(&client, "several primary retries", |s| {
        s.servers[0].connect_attempts >= attempts + 4
    })
    .await;
    let s = client.status();
    assert_eq!(
        (s.servers[1].connect_attempts, s.servers[1].connections),
        (0, 0),
        "the fallback was never tried: {s:?}"
    );
    assert!(!s.connected && !s.on_fallback && s.ready, "{s:?}");
    assert_eq!(
        mesh.snapshot().version,
        version,
        "the last good config keeps serving"
    );
    assert_eq!(served_by(&mesh, 20).await, 0, "still the primary's config");
}
