//! One demo per config directory.
//!
//! Every run rewrites `services.yaml` with the ports it bound, and every workload watches the
//! directory: a second demo writing into the first one's directory points the first one's
//! clients at the second one's servers (other certificates, so every call fails). A run
//! therefore owns its directory: by default a fresh temporary one, and a directory given with
//! `--config` is locked with a `.shop.lock` file holding the owner's process id, removed when the
//! run ends. A lock whose process is gone (the run was killed) is taken over.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::Error;

/// The lock file's name (not `.yaml`, so the config loader skips it).
pub const LOCK_FILE: &str = ".shop.lock";

/// A held lock on a config directory; released (the file removed) on drop.
#[derive(Debug)]
pub struct ConfigLock {
    path: PathBuf,
}

impl ConfigLock {
    /// Locks `dir` (created if needed) for this process, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let path = dir.join(LOCK_FILE);
        // Two attempts: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::File::create_new(&path) {
                Ok(mut file) => {
                    write!(file, "{}", std::process::id())
                        .map_err(Error::io(format!("write {}", path.display())))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    check_free(dir)?;
                    // The owner is gone: take the lock over.
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io(format!("remove {}", path.display()))(e)),
                    }
                }
                Err(e) => return Err(Error::io(format!("create {}", path.display()))(e)),
            }
        }
        check_free(dir)?;
        Err(Error::ConfigInUse {
            dir: dir.to_owned(),
            pid: None,
        })
    }
}

impl Drop for ConfigLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Fails when a live demo holds `dir`; `Ok` when nobody does (or the holder has exited).
pub fn check_free(dir: &Path) -> Result<(), Error> {
    let path = dir.join(LOCK_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("read {}", path.display()))(e)),
    };
    let pid = text.trim().parse::<u32>().ok();
    match pid {
        Some(pid) if pid == std::process::id() => Ok(()),
        Some(pid) if !alive(pid) => Ok(()),
        _ => Err(Error::ConfigInUse {
            dir: dir.to_owned(),
            pid,
        }),
    }
}

/// Whether process `pid` still runs. Where that cannot be told (no `/proc`), it is assumed to.
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_held_directory_is_refused_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = ConfigLock::acquire(dir.path()).unwrap();
        // This process holds it: a second acquisition by another process is simulated by a
        // lock file naming a live process other than this one (pid 1 always runs).
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        std::fs::write(dir.path().join(LOCK_FILE), "1").unwrap();
        let err = ConfigLock::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("process 1") && text.contains("--config"),
            "{text}"
        );
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // Beyond the kernel's pid_max (at most 2^22): no process has it.
        std::fs::write(dir.path().join(LOCK_FILE), "99999999").unwrap();
        let _lock = ConfigLock::acquire(dir.path()).unwrap();
        let owner = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(owner, std::process::id().to_string());
    }
}
