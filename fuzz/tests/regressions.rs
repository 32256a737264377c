//! Every crash the fuzzer found, replayed: `fuzz/regressions/<target>/*` holds the minimized
//! inputs (`mesh-fuzz <target> --minimize …`), each run through its target on every
//! `cargo test --workspace`. A file here fails this test until the defect it found is fixed,
//! and again if the defect comes back.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use mesh_fuzz::corpus::workspace_root;
use mesh_fuzz::driver;
use mesh_fuzz::targets;

#[test]
fn saved_crashes_no_longer_crash() {
    let dir = workspace_root().join("fuzz/regressions");
    let mut replayed = 0;
    let mut failures = Vec::new();
    for name in targets::NAMES {
        let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        let mut target = targets::by_name(name).unwrap();
        for path in paths {
            let input = std::fs::read(&path).unwrap();
            replayed += 1;
            match driver::run_one(target.as_mut(), &input) {
                Ok(outcome) => eprintln!("{}: {outcome}", path.display()),
                Err(message) => failures.push(format!("{}: {message}", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The directory is not empty: a test that replays nothing proves nothing.
    assert!(replayed > 0, "no saved inputs under {}", dir.display());
}
