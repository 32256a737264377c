//! The bounded fuzz run CI does on every `cargo test --workspace`: a fixed seed and a few
//! hundred inputs per target (a few seconds each in a debug build). Each test fails on any crash
//! (the message and input are printed) and checks the inputs reached the outcomes that show the
//! target exercised the code past its first check, so a target that stopped working fails too.
//!
//! The long run (a million inputs per target, in release) is described in `fuzz/README.md`.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use mesh_fuzz::driver::{self, Report, RunConfig};
use mesh_fuzz::targets;

fn bounded(name: &str, runs: u64) -> Report {
    let mut target = targets::by_name(name).unwrap();
    let config = RunConfig {
        check_every: 50,
        ..RunConfig::new(runs, 0x6d65_7368)
    };
    let report = driver::run(target.as_mut(), &config);
    eprintln!("{}", report.summary());
    for crash in report.crashes.values() {
        eprintln!(
            "{name} crash: {}\ninput: {:?}",
            crash.message,
            String::from_utf8_lossy(&crash.input)
        );
    }
    assert_eq!(report.crash_count(), 0, "{}", report.summary());
    assert_eq!(report.runs, runs);
    report
}

fn reached(report: &Report, outcome: &str) -> u64 {
    report
        .outcomes
        .iter()
        .filter(|(name, _)| name.starts_with(outcome))
        .map(|(_, n)| *n)
        .sum()
}

#[test]
fn yaml() {
    let r = bounded("yaml", 400);
    assert!(
        reached(&r, "accepted") > 0 && reached(&r, "refused") > 0,
        "{}",
        r.summary()
    );
}

#[test]
fn xds() {
    let r = bounded("xds", 60);
    assert!(reached(&r, "assembled") > 0, "{}", r.summary());
    assert!(
        r.outcomes.contains_key("assembled (some refused)")
            || r.outcomes.contains_key("set refused"),
        "{}",
        r.summary()
    );
}

#[test]
fn pem() {
    let r = bounded("pem", 300);
    for outcome in [
        "files loaded",
        "files refused",
        "peer client accepted",
        "peer client refused",
        "peer server accepted",
        "peer server refused",
    ] {
        assert!(reached(&r, outcome) > 0, "{outcome}: {}", r.summary());
    }
}

#[test]
fn sniff() {
    let r = bounded("sniff", 1000);
    for outcome in ["plaintext served", "plaintext refused", "TLS refused"] {
        assert!(reached(&r, outcome) > 0, "{outcome}: {}", r.summary());
    }
}

#[test]
fn h2() {
    let r = bounded("h2", 300);
    for outcome in ["responses sent", "GOAWAY", "HTTP/1 answered"] {
        assert!(reached(&r, outcome) > 0, "{outcome}: {}", r.summary());
    }
}
