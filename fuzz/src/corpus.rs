//! Seed inputs: the harness's own corpus (`fuzz/corpus/`), the project's test fixtures, and the
//! Istio samples in `../shared/istio-samples` when present (or where `MESH_FUZZ_SAMPLES` points).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Where the Istio samples are, if anywhere: `$MESH_FUZZ_SAMPLES`, else
/// `../shared/istio-samples` beside the clone (or beside its parent, for a git worktree).
pub fn istio_samples_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MESH_FUZZ_SAMPLES") {
        return Some(PathBuf::from(dir));
    }
    let root = workspace_root();
    [
        root.join("../shared/istio-samples"),
        root.join("../../shared/istio-samples"),
    ]
    .into_iter()
    .find(|d| d.is_dir())
}

/// The YAML seed files: `(path, text)`, sorted by path so a seed gives the same run everywhere
/// the same files are.
pub fn yaml_seeds() -> Vec<(PathBuf, String)> {
    let root = workspace_root();
    let mut dirs = vec![
        root.join("fuzz/corpus/yaml"),
        root.join("mesh-core/tests/fixtures"),
        root.join("mesh-xds/tests/fixtures"),
        root.join("mesh-cli/tests/fixtures"),
    ];
    dirs.extend(istio_samples_dir());
    let mut files = Vec::new();
    for dir in dirs {
        yaml_files(&dir, &mut files);
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// The documents of a YAML text, each parsed on its own; documents that do not parse or are
/// empty are left out.
pub fn documents(text: &str) -> Vec<Value> {
    split_documents(text)
        .into_iter()
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|v| !v.is_null())
        .collect()
}

/// Splits on `---` lines, as the loader does.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_include_fixtures_and_parse() {
        let seeds = yaml_seeds();
        assert!(
            seeds
                .iter()
                .any(|(p, _)| p.ends_with("fuzz/corpus/yaml/bookinfo.yaml"))
        );
        assert!(
            seeds
                .iter()
                .any(|(p, _)| p.ends_with("mesh-xds/tests/fixtures/rich.yaml"))
        );
        let docs: usize = seeds.iter().map(|(_, t)| documents(t).len()).sum();
        assert!(docs > 50, "{docs}");
        assert_eq!(documents("a: 1\n---\nb: 2\n---\n").len(), 2);
    }
}
