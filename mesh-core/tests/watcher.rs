//! Rotation: rename-writes and Kubernetes `..data` swaps are picked up; bad rotations are refused.
#![cfg(feature = "certs")]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use mesh_core::identity::{CertificateAuthority, IdentityFiles, IdentityWatcher, IssuedIdentity};
use tokio::time::timeout;

const TTL: Duration = Duration::from_secs(3600);
/// Upper bound on how long a watched change may take to land (inotify + debounce).
const LANDS_WITHIN: Duration = Duration::from_secs(10);

fn leaf_der(watcher: &IdentityWatcher) -> Vec<u8> {
    watcher.current().credentials().cert_chain()[0].to_vec()
}

fn issued_leaf_der(issued: &IssuedIdentity) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(issued.cert_chain_pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn rename_writes_rotate_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let files = ca
        .issue("default", "reviews", TTL)
        .unwrap()
        .write_istio_layout(dir.path())
        .unwrap();
    let watcher = IdentityWatcher::builder(files)
        .debounce(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let mut changes = watcher.subscribe();
    for _ in 0..3 {
        let next = ca.issue("default", "reviews", TTL).unwrap();
        next.write_istio_layout(dir.path()).unwrap();
        timeout(LANDS_WITHIN, changes.changed())
            .await
            .expect("rotation not seen")
            .unwrap();
        assert_eq!(leaf_der(&watcher), issued_leaf_der(&next));
        assert_eq!(
            changes.borrow_and_update().credentials().cert_chain()[0].to_vec(),
            issued_leaf_der(&next)
        );
    }
    assert_eq!(watcher.status().borrow().refused, 0);
}

/// Lays `issued` out like a Kubernetes Secret volume: files are symlinks through `..data`, which
/// points at a timestamped directory; an update swaps `..data` atomically.
fn k8s_publish(dir: &Path, generation: u32, issued: &IssuedIdentity) {
    let target = format!("..gen_{generation}");
    issued.write_istio_layout(dir.join(&target)).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&target, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in [
        IdentityFiles::CERT_CHAIN,
        IdentityFiles::KEY,
        IdentityFiles::ROOTS,
    ] {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
        }
    }
}

#[tokio::test]
async fn kubernetes_data_symlink_swaps_rotate_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    k8s_publish(dir.path(), 0, &ca.issue("default", "reviews", TTL).unwrap());
    let watcher = IdentityWatcher::builder(IdentityFiles::in_dir(dir.path()))
        .debounce(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let mut changes = watcher.subscribe();
    for generation in 1..=3 {
        let next = ca.issue("default", "reviews", TTL).unwrap();
        k8s_publish(dir.path(), generation, &next);
        timeout(LANDS_WITHIN, changes.changed())
            .await
            .expect("symlink swap not seen")
            .unwrap();
        assert_eq!(leaf_der(&watcher), issued_leaf_der(&next));
    }
}

#[tokio::test]
async fn bad_rotation_keeps_the_previous_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let first = ca.issue("default", "reviews", TTL).unwrap();
    let files = first.write_istio_layout(dir.path()).unwrap();
    let watcher = IdentityWatcher::builder(files.clone())
        .debounce(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let mut changes = watcher.subscribe();
    let mut status = watcher.status();

    // A key that belongs to another certificate.
    let other = ca.issue("default", "reviews", TTL).unwrap();
    std::fs::write(&files.key, &other.key_pem).unwrap();
    timeout(LANDS_WITHIN, status.changed())
        .await
        .expect("refusal not reported")
        .unwrap();
    let seen = status.borrow_and_update().clone();
    assert_eq!(seen.refused, 1);
    assert_eq!(seen.accepted, 0);
    assert_eq!(
        seen.last_error.as_deref(),
        Some("private key does not match the leaf certificate's public key")
    );
    assert_eq!(leaf_der(&watcher), issued_leaf_der(&first));
    assert!(!changes.has_changed().unwrap());

    // Garbage is refused too, with its own reason.
    std::fs::write(&files.cert_chain, "garbage").unwrap();
    timeout(LANDS_WITHIN, status.changed())
        .await
        .unwrap()
        .unwrap();
    let seen = status.borrow_and_update().clone();
    assert!(seen.last_error.unwrap().starts_with("certificate chain:"));
    assert_eq!(leaf_der(&watcher), issued_leaf_der(&first));

    // A good rotation then lands.
    other.write_istio_layout(dir.path()).unwrap();
    timeout(LANDS_WITHIN, changes.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leaf_der(&watcher), issued_leaf_der(&other));
}

#[tokio::test]
async fn unusable_initial_identity_fails_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = IdentityWatcher::start(IdentityFiles::in_dir(dir.path()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("initial identity: cannot read"),
        "{err}"
    );
}

#[tokio::test]
async fn task_stops_with_the_last_handle() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let files = ca
        .issue("default", "reviews", TTL)
        .unwrap()
        .write_istio_layout(dir.path())
        .unwrap();
    let watcher = IdentityWatcher::start(files).await.unwrap();
    let clone = watcher.clone();
    let mut changes = watcher.subscribe();
    drop(watcher);
    // One handle left: the task runs (a rotation is still seen).
    ca.issue("default", "reviews", TTL)
        .unwrap()
        .write_istio_layout(dir.path())
        .unwrap();
    timeout(LANDS_WITHIN, changes.changed())
        .await
        .unwrap()
        .unwrap();
    drop(clone);
    // The task ends, dropping its sender: `changed` reports the channel closed.
    assert!(
        timeout(LANDS_WITHIN, changes.changed())
            .await
            .unwrap()
            .is_err()
    );
}
