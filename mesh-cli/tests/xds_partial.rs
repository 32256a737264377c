//! `mesh xds serve` started while one config file is invalid: it starts, names the file it
//! left out, and serves the valid files to an ADS client, as a running server keeps serving
//! through the same bad edit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mesh_core::{Mesh, Workload};
use mesh_xds::bootstrap::XdsTarget;
use mesh_xds::client::{XdsClient, XdsClientConfig};

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_valid_files_and_names_the_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reviews.yaml");
    std::fs::copy(fixture, dir.path().join("reviews.yaml")).unwrap();
    // A VirtualService whose weights total 0 across two destinations (weights are relative;
    // only that total is invalid).
    std::fs::write(
        dir.path().join("ratings.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings, namespace: default}\nspec:\n  hosts: [ratings]\n  http:\n  - route:\n    - destination: {host: ratings, subset: v1}\n      weight: 0\n    - destination: {host: ratings, subset: v2}\n      weight: 0\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args([
            "xds",
            "serve",
            "--insecure-plaintext",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut left_out = None;
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server starts and reports its address");
        if let Some(files) = line.strip_prefix("mesh xds serve: invalid, left out until fixed: ") {
            left_out = Some(files.to_owned());
        }
        if let Some(addr) = line.strip_prefix("mesh xds serve: listening on ") {
            break addr.to_owned();
        }
    };
    let left_out = left_out.expect("the invalid file is named before the server listens");
    assert!(
        left_out.ends_with("ratings.yaml") && !left_out.contains("reviews.yaml"),
        "{left_out}"
    );

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
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .expect("the valid files are served");
    let snapshot = mesh.snapshot();
    assert!(
        snapshot
            .clusters
            .keys()
            .any(|c| c.as_str() == "outbound|9080|v2|reviews.default.svc.cluster.local"),
        "{:?}",
        snapshot.clusters.keys()
    );
}
