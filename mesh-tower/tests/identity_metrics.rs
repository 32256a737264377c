//! Identity metrics as an operator's Prometheus sees them: expiry gauges for the leaf and every
//! root, and a counter of refused rotations. One test per binary: it installs the global recorder.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use mesh_core::identity::{IdentityFiles, IdentityWatcher};
use metrics_exporter_prometheus::PrometheusBuilder;
use support::*;
use tokio::time::timeout;

#[tokio::test]
async fn expiry_gauges_and_rotation_error_counter() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();

    let root = ca("cluster.local");
    let other_root = ca("other.org");
    let mut issued = root.issue("default", "reviews", HOUR).unwrap();
    issued.roots_pem = format!("{}{}", root.roots_pem(), other_root.roots_pem());
    let dir = tempfile::tempdir().unwrap();
    issued.write_istio_layout(dir.path()).unwrap();
    let watcher = IdentityWatcher::builder(IdentityFiles::in_dir(dir.path()))
        .debounce(Duration::from_millis(10))
        .start()
        .await
        .unwrap();
    let creds = watcher.current().credentials().clone();

    let text = handle.render();
    let leaf = format!(
        "mesh_certificate_expiry_timestamp_seconds{{kind=\"leaf\",subject=\"spiffe://cluster.local/ns/default/sa/reviews\"}} {}",
        creds.leaf_not_after().unix_seconds()
    );
    assert!(text.contains(&leaf), "{leaf} not in\n{text}");
    for (root, subject) in creds.roots().iter().zip(["O=cluster.local", "O=other.org"]) {
        let line = format!(
            "mesh_certificate_expiry_timestamp_seconds{{kind=\"root\",subject=\"{subject}\"}} {}",
            root.not_after.unix_seconds()
        );
        assert!(text.contains(&line), "{line} not in\n{text}");
    }

    // A refused rotation is counted; the identity in force does not change.
    let mut status = watcher.status();
    std::fs::write(dir.path().join(IdentityFiles::ROOTS), "").unwrap();
    timeout(Duration::from_secs(10), status.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.borrow().last_error.as_deref(),
        Some("root bundle holds no certificate")
    );
    assert!(
        handle
            .render()
            .contains("mesh_identity_rotation_errors_total 1"),
        "{}",
        handle.render()
    );
    assert_eq!(
        watcher.current().credentials().leaf_not_after(),
        creds.leaf_not_after()
    );
}
