//! `mesh xds serve` as a process: an ADS client on 127.0.0.1 gets the files' config from it.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mesh_core::{Mesh, Workload};
use mesh_xds::bootstrap::XdsTarget;
use mesh_xds::client::{XdsClient, XdsClientConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_files_to_an_ads_client() {
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
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server reports its address");

    let workload = Workload::new("default", "productpage");
    let mesh = Mesh::builder()
        .workload(workload.clone())
        .build()
        .await
        .unwrap();
    let client = XdsClient::start(
        mesh.clone(),
        XdsClientConfig::new(XdsTarget::Tcp(addr), &workload),
    );
    let ready = tokio::time::timeout(Duration::from_secs(10), client.ready()).await;
    child.kill().unwrap();
    let _ = child.wait();
    ready.expect("ready");
    let snapshot = mesh.snapshot();
    assert!(
        snapshot
            .clusters
            .keys()
            .any(|c| c.as_str() == "outbound|9080|v2|reviews.default.svc.cluster.local"),
        "{:?}",
        snapshot.clusters.keys()
    );
    assert!(
        snapshot.routes[&9080]
            .virtual_host("reviews:9080")
            .is_some()
    );
}
