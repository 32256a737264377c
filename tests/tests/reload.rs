//! Hot reload with real Istio YAML: valid → broken → valid, the last good config serving
//! throughout. Waits on the mesh's watch channels, never on sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::model::{RouteAction, Snapshot};
use mesh_core::routing::{self, RequestInfo};
use mesh_core::{ConfigStatus, Mesh};
use tokio::sync::watch;

fn config(v1: u32, v2: u32) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: inventory, namespace: default}}
spec:
  hosts: [inventory.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 7000, name: grpc, protocol: GRPC}}]
  endpoints:
  - {{address: 127.0.0.21, labels: {{app: inventory, version: v1}}}}
  - {{address: 127.0.0.22, labels: {{app: inventory, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: inventory, namespace: default}}
spec:
  host: inventory
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: inventory, namespace: default}}
spec:
  hosts: [inventory]
  http:
  - route:
    - destination: {{host: inventory, subset: v1}}
      weight: {v1}
    - destination: {{host: inventory, subset: v2}}
      weight: {v2}
"#
    )
}

/// The (subset, weight) pairs the route to inventory sends to.
fn split(snapshot: &Snapshot) -> Vec<(String, u32)> {
    let headers = BTreeMap::new();
    let request = RequestInfo {
        method: "POST",
        authority: "inventory:7000",
        path_and_query: "/shop.Inventory/Reserve",
        port: 7000,
        headers: &headers,
    };
    let selected = routing::select(snapshot, &request).expect("route to inventory");
    let RouteAction::Forward(dests) = &selected.route.action else {
        panic!("not a forward")
    };
    dests
        .iter()
        .map(|d| {
            let (_, subset, _) = d.cluster.parse_outbound().expect("istio cluster name");
            (subset.unwrap_or_default().to_owned(), d.weight)
        })
        .collect()
}

async fn next_snapshot(rx: &mut watch::Receiver<Arc<Snapshot>>) -> Arc<Snapshot> {
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("a new snapshot within 10 s")
        .expect("mesh alive");
    rx.borrow_and_update().clone()
}

async fn next_rejection(rx: &mut watch::Receiver<ConfigStatus>, seen: u64) -> ConfigStatus {
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| s.rejected_total > seen),
    )
    .await
    .expect("a rejection within 10 s")
    .expect("mesh alive")
    .clone()
}

fn write(path: &Path, text: &str) {
    // Write-then-rename, as editors and config tools do, so the loader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn valid_broken_valid_keeps_serving_the_last_good_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("inventory.yaml");
    write(&file, &config(95, 5));
    let mesh = Mesh::builder()
        .config_path(dir.path())
        .debounce(Duration::from_millis(20))
        .build()
        .await
        .expect("mesh");
    let mut snapshots = mesh.subscribe();
    let mut status = mesh.subscribe_status();
    assert_eq!(
        split(&mesh.snapshot()),
        vec![("v1".into(), 95), ("v2".into(), 5)]
    );

    write(&file, &config(50, 50));
    let snapshot = next_snapshot(&mut snapshots).await;
    assert_eq!(split(&snapshot), vec![("v1".into(), 50), ("v2".into(), 50)]);

    // Weights are relative (istiod's `applyHTTPRouteDestination`): only a total of 0 across
    // several destinations is invalid.
    write(&file, &config(0, 0));
    let rejected = next_rejection(&mut status, 0).await;
    let rejection = rejected.last_rejection.expect("rejection kept");
    let text: Vec<String> = rejection
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        text.iter().any(|t| t.contains(
            "inventory.yaml: doc 2 VirtualService default/inventory: spec.http[0].route"
        )),
        "{text:#?}"
    );
    assert_eq!(
        split(&mesh.snapshot()),
        vec![("v1".into(), 50), ("v2".into(), 50)],
        "last good config serves"
    );

    write(&file, &config(20, 80));
    let snapshot = next_snapshot(&mut snapshots).await;
    assert_eq!(split(&snapshot), vec![("v1".into(), 20), ("v2".into(), 80)]);
    assert!(mesh.status().last_rejection.is_none());
    assert_eq!(mesh.status().rejected_total, 1);
}

#[tokio::test]
async fn malformed_yaml_is_refused_without_losing_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("inventory.yaml");
    write(&file, &config(95, 5));
    let mesh = Mesh::builder()
        .config_path(&file)
        .debounce(Duration::from_millis(20))
        .build()
        .await
        .expect("mesh");
    let mut status = mesh.subscribe_status();
    write(
        &file,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x\n  spec: [",
    );
    let rejected = next_rejection(&mut status, 0).await;
    let diag = &rejected.last_rejection.expect("rejection").diagnostics[0];
    assert_eq!(diag.file.as_deref(), Some(file.as_path()));
    assert_eq!(diag.document, Some(0));
    assert_eq!(
        split(&mesh.snapshot()),
        vec![("v1".into(), 95), ("v2".into(), 5)]
    );
}

#[cfg(unix)]
#[tokio::test]
async fn kubernetes_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    // A ConfigMap volume: timestamped directories, `..data` pointing at the live one, and the
    // visible file a symlink through `..data`. An update renames a new `..data` over the old.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir(root.join("..2026_11_30_a")).expect("mkdir");
    std::fs::write(root.join("..2026_11_30_a/inventory.yaml"), config(95, 5)).expect("write");
    symlink("..2026_11_30_a", root.join("..data")).expect("symlink");
    symlink("..data/inventory.yaml", root.join("inventory.yaml")).expect("symlink");
    let mesh = Mesh::builder()
        .config_path(root)
        .debounce(Duration::from_millis(20))
        .build()
        .await
        .expect("mesh");
    let mut snapshots = mesh.subscribe();
    assert_eq!(
        split(&mesh.snapshot()),
        vec![("v1".into(), 95), ("v2".into(), 5)]
    );

    std::fs::create_dir(root.join("..2026_11_30_b")).expect("mkdir");
    std::fs::write(root.join("..2026_11_30_b/inventory.yaml"), config(60, 40)).expect("write");
    symlink("..2026_11_30_b", root.join("..data_tmp")).expect("symlink");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("rename");
    std::fs::remove_dir_all(root.join("..2026_11_30_a")).expect("cleanup");
    let snapshot = next_snapshot(&mut snapshots).await;
    assert_eq!(split(&snapshot), vec![("v1".into(), 60), ("v2".into(), 40)]);
}
