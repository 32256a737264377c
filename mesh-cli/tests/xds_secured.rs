//! `mesh xds serve` secured by the CA folder `mesh certs init` makes: a workload with only a
//! bootstrap token gets its certificate from it; started with neither `--ca-dir` nor
//! `--insecure-plaintext`, it refuses to run.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mesh_core::identity::{Credentials, IdentityFiles, SpiffeId};
use mesh_xds::client::certs::{CertificateProvider, CertificateProviderConfig};
use rustls_pki_types::UnixTime;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reviews.yaml");

#[test]
fn refuses_to_serve_plaintext_unless_asked() {
    let out = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args([
            "xds",
            "serve",
            "--config",
            FIXTURE,
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--ca-dir") && stderr.contains("--insecure-plaintext"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_with_a_token_gets_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let init = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["certs", "init", "--dir"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "default/reviews reviews-token-0123456789\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args([
            "xds",
            "serve",
            "--config",
            FIXTURE,
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--ca-dir")
        .arg(&ca)
        .arg("--token-file")
        .arg(&tokens)
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

    let out = dir.path().join("certs");
    let mut config = CertificateProviderConfig::new(
        addr.clone(),
        ca.join("root-cert.pem"),
        &out,
        SpiffeId::istio("cluster.local", "default", "reviews").unwrap(),
    );
    config.token = Some("reviews-token-0123456789".into());
    let provider = CertificateProvider::start(config).await;
    let mut wrong = CertificateProviderConfig::new(
        addr,
        ca.join("root-cert.pem"),
        dir.path().join("wrong"),
        SpiffeId::istio("cluster.local", "default", "reviews").unwrap(),
    );
    wrong.token = Some("not-the-token-0123456789".into());
    let refused = match &provider {
        Ok(_) => CertificateProvider::start(wrong).await.err(),
        Err(_) => None,
    };
    child.kill().unwrap();
    let _ = child.wait();
    let provider = provider.unwrap();
    let credentials = Credentials::load(&IdentityFiles::in_dir(&out), UnixTime::now()).unwrap();
    assert_eq!(
        credentials.spiffe_id().as_str(),
        "spiffe://cluster.local/ns/default/sa/reviews"
    );
    assert_eq!(provider.files().cert_chain, out.join("cert-chain.pem"));
    assert!(refused.is_some(), "an unknown token gets no certificate");
}
