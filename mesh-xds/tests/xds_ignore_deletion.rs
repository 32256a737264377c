//! gRFC A53 `ignore_resource_deletion` end to end against `mesh xds serve`'s server: the control
//! plane restarts with a config that lacks every cluster the workloads use. A client whose
//! server lists the feature keeps its listeners and clusters and its requests keep succeeding;
//! a client without it drops them (and warns that every cluster it used is gone).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mesh_core::{Mesh, MeshSettings, Workload};
use mesh_xds::bootstrap::XdsTarget;
use mesh_xds::client::{Backoff, XdsClient, XdsClientConfig};
use mesh_xds::server::XdsServer;
use support::{backend, config, traffic, until};
use tokio::sync::oneshot;

const INVENTORY: &str = "outbound|8080|v1|inventory.default.svc.cluster.local";
const OTHER: &str = "outbound|9000||other.default.svc.cluster.local";

/// A config with only the service `other`: what a control plane restarted with the wrong
/// files serves.
fn other_only() -> String {
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: other, namespace: default}\nspec:\n  hosts: [other.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - {number: 9000, name: http, protocol: HTTP}\n  endpoints:\n  - {address: 127.0.0.1}\n".to_owned()
}

async fn serve(
    dir: &std::path::Path,
    addr: SocketAddr,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let server = XdsServer::new(vec![dir.to_owned()], MeshSettings::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(listener, async move {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
    });
    (stop_tx, task)
}

async fn client(addr: SocketAddr, ignore_deletion: bool) -> (Mesh, XdsClient) {
    let workload = Workload::new("default", "frontend");
    let mesh = Mesh::builder()
        .workload(workload.clone())
        .build()
        .await
        .unwrap();
    let config = XdsClientConfig::new(XdsTarget::Tcp(addr.to_string()), &workload)
        .backoff(Backoff {
            initial: Duration::from_millis(50),
            multiplier: 1.6,
            max: Duration::from_millis(400),
            jitter: 0.2,
        })
        .ignore_resource_deletion(ignore_deletion);
    let client = XdsClient::start(mesh.clone(), config);
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .expect("client ready");
    (mesh, client)
}

fn has_cluster(mesh: &Mesh, name: &str) -> bool {
    mesh.snapshot().clusters.keys().any(|c| c.as_str() == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_the_clusters_is_ignored_only_with_the_feature() {
    let v1 = backend("v1").await;
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(first.path().join("inventory.yaml"), config(&[&v1], &[100])).unwrap();
    std::fs::write(second.path().join("other.yaml"), other_only()).unwrap();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (stop, first_server) = serve(first.path(), addr).await;
    let (kept, _kept_client) = client(addr, true).await;
    let (dropped, _dropped_client) = client(addr, false).await;
    assert!(has_cluster(&kept, INVENTORY) && has_cluster(&dropped, INVENTORY));

    // The control plane restarts on the same address with files that lack `inventory`.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), first_server)
        .await
        .expect("the first server stops")
        .unwrap();
    let _second = serve(second.path(), addr).await;
    // `other` arriving means the response without `inventory` has been handled.
    let limit = Duration::from_secs(20);
    until("the new config reaches both clients", limit, || {
        has_cluster(&kept, OTHER) && has_cluster(&dropped, OTHER)
    })
    .await;

    // gRFC A53: with `ignore_resource_deletion`, LDS/CDS deletions are ignored and the cached
    // resources kept until updated.
    assert!(
        has_cluster(&kept, INVENTORY),
        "{:?}",
        kept.snapshot().clusters.keys()
    );
    assert!(
        kept.snapshot().routes[&8080]
            .virtual_host("inventory:8080")
            .is_some(),
        "the listener and its routes are kept"
    );
    let (t, handle) = traffic(&kept, "http://inventory:8080/", 20);
    handle.await.unwrap();
    assert_eq!(
        (
            t.ok.load(Ordering::Relaxed),
            t.failed.load(Ordering::Relaxed)
        ),
        (20, 0)
    );
    // Without it, the deletion applies.
    assert!(!has_cluster(&dropped, INVENTORY));
}
