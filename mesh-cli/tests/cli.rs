//! The `mesh` binary as a user runs it: `check` on real Istio samples, `explain` on routes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .output()
        .expect("run mesh")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn bookinfo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mesh-core/tests/fixtures/bookinfo")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_bookinfo_sample_checks_on_its_own() {
    let mut checked = 0;
    for entry in std::fs::read_dir(bookinfo_dir()).expect("bookinfo fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = mesh(&["check", path.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "{}: {}", path.display(), stdout(&out));
        checked += 1;
    }
    assert!(
        checked >= 17,
        "expected the 17 bookinfo samples, found {checked}"
    );
}

#[test]
fn bookinfo_folder_together_is_refused_naming_the_duplicates() {
    let out = mesh(&["check", bookinfo_dir().to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("DestinationRule default/reviews"), "{text}");
    assert!(
        text.contains("destination-rule-all.yaml")
            && text.contains("destination-rule-reviews.yaml"),
        "{text}"
    );
}

#[test]
fn check_reports_file_document_resource_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    let yaml = std::fs::read_to_string(fixture("reviews.yaml"))
        .expect("fixture")
        .replace("weight: 10", "weight: -10");
    std::fs::write(&file, yaml).expect("write");
    let out = mesh(&["check", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    // file:line:column of the field, documents counted from 1.
    assert!(
        text.contains(
            "bad.yaml:65:7: doc 3 VirtualService default/reviews: spec.http[1].route[1].weight:"
        ),
        "{text}"
    );
    assert!(text.contains("weight -10 < 0"), "{text}");
}

fn explain(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let config = fixture("reviews.yaml");
    let mut all = vec![
        "explain",
        "--json",
        "--config",
        config.to_str().expect("utf-8 path"),
    ];
    all.extend_from_slice(args);
    let out = mesh(&all);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON: {e}: {}", stdout(&out)));
    (out.status.code(), json)
}

#[test]
fn explain_follows_the_header_route() {
    let (code, json) = explain(&["-H", "end-user: jason", "http://reviews:9080/reviews/1"]);
    assert_eq!(code, Some(0));
    let dest = &json["action"]["forward"];
    assert_eq!(dest.as_array().map(Vec::len), Some(1), "{json:#}");
    assert_eq!(
        dest[0]["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        dest[0]["settings"]["connection_pool"]["max_requests"], 50,
        "subset policy merged"
    );
    assert_eq!(
        dest[0]["settings"]["lb"]["policy"], "ROUND_ROBIN",
        "rule policy inherited"
    );
    let endpoints = dest[0]["settings"]["endpoints"]
        .as_array()
        .expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["labels"]["version"], "v2");
    assert_eq!(json["timeout"], "2s");
    assert_eq!(json["route"]["origin"]["name"], "default/reviews");
    assert_eq!(json["route"]["origin"]["index"], 0);
}

#[test]
fn explain_shows_the_weighted_split_and_retries() {
    let (code, json) = explain(&["http://reviews:9080/"]);
    assert_eq!(code, Some(0));
    let dest = json["action"]["forward"]
        .as_array()
        .expect("destinations")
        .clone();
    let pairs: Vec<(String, u64)> = dest
        .iter()
        .map(|d| {
            (
                d["cluster"].as_str().unwrap_or_default().to_owned(),
                d["weight"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            (
                "outbound|9080|v1|reviews.default.svc.cluster.local".to_owned(),
                90
            ),
            (
                "outbound|9080|v3|reviews.default.svc.cluster.local".to_owned(),
                10
            )
        ]
    );
    assert_eq!(json["retries"]["attempts"], 3);
    assert_eq!(json["retries"]["per_try_timeout"], "0.5s");
    assert_eq!(json["retries"]["retry_on"]["server_error"], true);
    assert_eq!(json["retries"]["retry_on"]["reset"], true);
}

#[test]
fn explain_without_a_route_exits_1_with_a_reason() {
    let (code, json) = explain(&["http://ratings:9080/"]);
    assert_eq!(code, Some(1));
    assert_eq!(json["response_flags"], "NR");
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("ratings")),
        "{json:#}"
    );
}

#[test]
fn explain_from_another_namespace_needs_the_full_name() {
    let (code, _) = explain(&["--namespace", "shop", "http://reviews:9080/"]);
    assert_eq!(
        code,
        Some(1),
        "short names resolve only in the caller's namespace"
    );
    let (code, json) = explain(&[
        "--namespace",
        "shop",
        "http://reviews.default.svc.cluster.local:9080/",
    ]);
    assert_eq!(code, Some(0), "{json:#}");
}

/// The case: bookinfo's own Kubernetes Services make `virtual-service-all-v1.yaml`
/// route (it reported 0 clusters and 0 routes when Services were skipped).
#[test]
fn check_reads_kubernetes_services() {
    let dir = bookinfo_dir();
    let out = mesh(&[
        "check",
        dir.join("bookinfo.yaml").to_str().expect("utf-8 path"),
        dir.join("virtual-service-all-v1.yaml")
            .to_str()
            .expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("ok: 4 cluster(s), 4 route(s)"), "{text}");
}

/// The summary names the rule and the split; `--source-labels` makes a `sourceLabels` match
/// apply to the caller.
#[test]
fn explain_summarizes_and_takes_the_callers_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("reviews.yaml");
    let yaml = std::fs::read_to_string(fixture("reviews.yaml"))
        .expect("fixture")
        .replace(
            "  - match:\n    - headers:",
            "  - match:\n    - sourceLabels: {app: productpage}\n    - headers:",
        );
    std::fs::write(&file, yaml).expect("write");
    let path = file.to_str().expect("utf-8 path");
    let out = mesh(&["explain", "--config", path, "http://reviews:9080/"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("matched: VirtualService default/reviews http[1]"),
        "{text}"
    );
    assert!(
        text.contains(" 90.0% outbound|9080|v1|reviews.default.svc.cluster.local"),
        "{text}"
    );
    let out = mesh(&[
        "explain",
        "--config",
        path,
        "--source-labels",
        "app=productpage,version=v1",
        "http://reviews:9080/",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("matched: VirtualService default/reviews http[0]"),
        "{text}"
    );
    assert!(text.contains("(app=productpage,version=v1)"), "{text}");
}
