//! Which files a load reads: the given files, and every `*.yaml` / `*.yml` under the given
//! directories (recursively, hidden entries skipped), sorted so loads are deterministic.

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Diagnostic};

fn io_error(path: &Path, e: &std::io::Error) -> ConfigError {
    ConfigError {
        diagnostics: vec![Diagnostic {
            file: Some(path.to_owned()),
            ..Diagnostic::error("", format!("cannot read: {e}"))
        }],
    }
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Directories nested deeper than this are not walked (guards against symlink loops).
const MAX_DEPTH: usize = 32;

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    if depth > MAX_DEPTH {
        return Err(ConfigError {
            diagnostics: vec![Diagnostic {
                file: Some(dir.to_owned()),
                ..Diagnostic::error(
                    "",
                    format!("directories nested deeper than {MAX_DEPTH} levels (a symlink loop?)"),
                )
            }],
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let path = entry.path();
        if is_hidden(&path) {
            continue;
        }
        // Follows symlinks, as Kubernetes ConfigMap mounts are symlinks.
        let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, &e))?;
        if meta.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if meta.is_file() && is_yaml(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// The files `paths` name: files as given (whatever their extension), directories walked.
pub(crate) fn collect<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let meta = std::fs::metadata(p).map_err(|e| io_error(p, &e))?;
        if meta.is_dir() {
            walk(p, 0, &mut out)?;
        } else {
            out.push(p.to_owned());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
