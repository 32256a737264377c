//! The reload mechanics with a loader that reads every file's text as its version, so these tests
//! cover watching, debouncing, rename-writes and symlink swaps without depending on the Istio
//! translator (the translator's own reload tests live with the integration tests).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Mesh;
use super::watch::ConfigLoader;
use crate::config::{ConfigError, Diagnostic};
use crate::model::{Snapshot, SnapshotSource};

/// Version = the concatenated contents of the `.yaml` files (following symlinks, skipping
/// `..`-prefixed entries); a file containing `BROKEN` is refused.
fn text_loader() -> ConfigLoader {
    ConfigLoader::from_fn(|paths: &[PathBuf], _| {
        let mut version = String::new();
        for path in paths {
            let mut files: Vec<PathBuf> = if path.is_dir() {
                std::fs::read_dir(path)
                    .map_err(|e| ConfigError::internal(e.to_string()))?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        !p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(".."))
                    })
                    .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                    .collect()
            } else {
                vec![path.clone()]
            };
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| ConfigError::internal(e.to_string()))?;
                if text.contains("BROKEN") {
                    return Err(ConfigError {
                        diagnostics: vec![Diagnostic {
                            file: Some(f),
                            ..Diagnostic::error("spec", "broken")
                        }],
                    });
                }
                version.push_str(text.trim());
            }
        }
        let mut snapshot = Snapshot::empty();
        snapshot.version = version;
        snapshot.source = SnapshotSource::Files {
            paths: paths.to_vec(),
        };
        Ok(snapshot)
    })
}

async fn mesh_on(path: &Path) -> Mesh {
    Mesh::builder()
        .config_path(path)
        .debounce(Duration::from_millis(20))
        .loader(text_loader())
        .build()
        .await
        .expect("initial config loads")
}

/// Waits (bounded) for the next applied snapshot and returns its version.
async fn next_version(rx: &mut tokio::sync::watch::Receiver<std::sync::Arc<Snapshot>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("a new snapshot within 10 s")
        .expect("mesh alive");
    rx.borrow_and_update().version.clone()
}

/// Waits (bounded) until the mesh has recorded `n` rejections.
async fn wait_rejections(mesh: &Mesh, n: u64) {
    let mut rx = mesh.subscribe_status();
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| s.rejected_total >= n),
    )
    .await
    .expect("a rejection within 10 s")
    .expect("mesh alive");
}

#[tokio::test]
async fn valid_broken_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(&file, "one").unwrap();
    let mesh = mesh_on(dir.path()).await;
    let mut rx = mesh.subscribe();
    assert_eq!(mesh.snapshot().version, "one");

    std::fs::write(&file, "BROKEN").unwrap();
    wait_rejections(&mesh, 1).await;
    assert_eq!(
        mesh.snapshot().version,
        "one",
        "the last good config keeps serving"
    );
    let status = mesh.status();
    let rejection = status
        .last_rejection
        .expect("rejection kept for the config dump");
    assert!(rejection.diagnostics[0].to_string().contains("a.yaml"));

    std::fs::write(&file, "two").unwrap();
    assert_eq!(next_version(&mut rx).await, "two");
    assert!(mesh.status().last_rejection.is_none());

    // Broken, then reverted to exactly the serving config: the rejection clears.
    std::fs::write(&file, "BROKEN").unwrap();
    wait_rejections(&mesh, 2).await;
    let mut status = mesh.subscribe_status();
    std::fs::write(&file, "two").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.last_rejection.is_none()),
    )
    .await
    .expect("the rejection clears within 10 s")
    .expect("mesh alive");
    assert_eq!(mesh.snapshot().version, "two");
}

#[tokio::test]
async fn single_file_replaced_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    std::fs::write(&file, "one").unwrap();
    let mesh = mesh_on(&file).await;
    let mut rx = mesh.subscribe();
    for version in ["two", "three"] {
        // What editors do: write a temporary file, rename it over the original.
        let tmp = dir.path().join(".mesh.yaml.swp");
        std::fs::write(&tmp, version).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert_eq!(next_version(&mut rx).await, version);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    // Kubernetes' layout: config/..2026_a/mesh.yaml, config/..data -> ..2026_a,
    // config/mesh.yaml -> ..data/mesh.yaml; an update writes a new timestamped directory and
    // renames a new `..data` symlink over the old one.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..2026_a")).unwrap();
    std::fs::write(root.join("..2026_a/mesh.yaml"), "one").unwrap();
    symlink("..2026_a", root.join("..data")).unwrap();
    symlink("..data/mesh.yaml", root.join("mesh.yaml")).unwrap();
    let mesh = mesh_on(root).await;
    let mut rx = mesh.subscribe();
    assert_eq!(mesh.snapshot().version, "one");

    std::fs::create_dir(root.join("..2026_b")).unwrap();
    std::fs::write(root.join("..2026_b/mesh.yaml"), "two").unwrap();
    symlink("..2026_b", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_a")).unwrap();
    assert_eq!(next_version(&mut rx).await, "two");
}

#[tokio::test]
async fn watcher_stops_with_the_last_handle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "one").unwrap();
    let mesh = mesh_on(dir.path()).await;
    let rx = mesh.subscribe();
    drop(mesh);
    // The sender lives in the shared state: once the last handle is gone, the channel closes.
    let mut rx = rx;
    assert!(
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("closed promptly")
            .is_err()
    );
}

#[tokio::test]
async fn invalid_initial_config_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "BROKEN").unwrap();
    let err = Mesh::builder()
        .config_path(dir.path())
        .loader(text_loader())
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("a.yaml"), "{err}");
}

/// Events every 50 ms against a 100 ms debounce never go quiet; the wait still ends at the
/// maximum delay (10 intervals), not when the writer stops.
#[tokio::test(start_paused = true)]
async fn debounce_ends_at_the_maximum_delay_under_constant_writes() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    let quiet = Duration::from_millis(100);
    let max = quiet * super::watch::MAX_DEBOUNCE_FACTOR;
    let start = tokio::time::Instant::now();
    assert!(super::watch::settle(&mut rx, quiet, max).await);
    assert_eq!(
        start.elapsed(),
        max,
        "the writer runs for 5 s; the wait ends at 1 s"
    );
    writer.abort();
}

/// A single change is reloaded after one quiet interval; a closed channel ends the wait.
#[tokio::test(start_paused = true)]
async fn debounce_waits_one_quiet_interval() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let quiet = Duration::from_millis(100);
    let start = tokio::time::Instant::now();
    assert!(super::watch::settle(&mut rx, quiet, quiet * 10).await);
    assert_eq!(start.elapsed(), quiet);
    drop(tx);
    assert!(!super::watch::settle(&mut rx, quiet, quiet * 10).await);
}

/// End to end: a file rewritten every 5 ms against a 300 ms debounce (a gap that long is
/// unlikely even on a loaded machine) is reloaded at the 3 s maximum delay, while the writes
/// go on.
#[tokio::test]
async fn constantly_rewritten_file_is_still_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(&file, "start").unwrap();
    let mesh = Mesh::builder()
        .config_path(dir.path())
        .debounce(Duration::from_millis(300))
        .loader(text_loader())
        .build()
        .await
        .expect("initial config loads");
    let mut rx = mesh.subscribe();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (file, stop) = (file.clone(), stop.clone());
        std::thread::spawn(move || {
            // At least 10 s of writes, far past the maximum delay.
            for i in 0..2000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return true;
                }
                std::fs::write(&file, format!("v{i}")).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        })
    };
    // Any new snapshot (a read may catch the file truncated) proves a reload happened.
    next_version(&mut rx).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        writer.join().unwrap(),
        "a reload was applied while the file was still being rewritten"
    );
}

/// A bad file at start: the valid files are served and the bad one is reported as a refused
/// config, as a running mesh reports a bad edit; fixing it applies the whole config.
#[tokio::test]
async fn start_with_the_valid_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "one").unwrap();
    std::fs::write(dir.path().join("b.yaml"), "BROKEN").unwrap();
    let mesh = Mesh::builder()
        .config_path(dir.path())
        .debounce(Duration::from_millis(20))
        .loader(text_loader())
        .start_with_valid_files(true)
        .build()
        .await
        .expect("starts with the valid files");
    let mut rx = mesh.subscribe();
    assert_eq!(mesh.snapshot().version, "one");
    let status = mesh.status();
    assert_eq!(status.rejected_total, 1);
    let rejection = status.last_rejection.expect("the bad file is reported");
    assert!(
        rejection.diagnostics[0].to_string().contains("b.yaml"),
        "{}",
        rejection.diagnostics[0]
    );

    std::fs::write(dir.path().join("b.yaml"), "two").unwrap();
    assert_eq!(next_version(&mut rx).await, "onetwo");
    assert!(mesh.status().last_rejection.is_none());
}
