//! Istio's bookinfo samples, copied under tests/fixtures/bookinfo.

use std::path::Path;

use mesh_core::istio;

use super::*;

#[test]
fn every_sample_loads_alone() {
    let dir = Path::new(FIXTURES).join("bookinfo");
    let files = istio::collect_files(&[&dir]).unwrap();
    assert_eq!(files.len(), 17, "{files:?}");
    for file in &files {
        let s = istio::load_paths(&[file], &ctx())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(s.warnings.iter().all(|w| !w.is_error()));
        assert_eq!(
            s.source,
            mesh_core::model::SnapshotSource::Files {
                paths: vec![file.clone()]
            }
        );
    }
}

#[test]
fn the_whole_folder_is_refused_for_its_duplicates() {
    let dir = Path::new(FIXTURES).join("bookinfo");
    let e = istio::load_paths(&[&dir], &ctx()).unwrap_err();
    let reviews: Vec<String> = e
        .errors()
        .filter(|d| {
            d.resource
                .as_ref()
                .is_some_and(|r| r.kind == "DestinationRule" && r.name == "reviews")
        })
        .map(ToString::to_string)
        .collect();
    let file = |f: &str| dir.join(f).display().to_string();
    assert_eq!(
        reviews,
        [
            format!(
                "{}: doc 1 DestinationRule default/reviews: metadata.name: defined twice: first at {}: doc 1",
                file("destination-rule-all.yaml"),
                file("destination-rule-all-mtls.yaml")
            ),
            format!(
                "{}: doc 0 DestinationRule default/reviews: metadata.name: defined twice: first at {}: doc 1",
                file("destination-rule-reviews.yaml"),
                file("destination-rule-all-mtls.yaml")
            ),
        ]
    );
}

#[test]
fn with_services_the_samples_route() {
    let s = load_bookinfo(&[
        "destination-rule-all-mtls.yaml",
        "virtual-service-all-v1.yaml",
    ]);
    assert!(s.warnings.is_empty(), "{:?}", warnings(&s));
    for service in ["productpage", "reviews", "ratings", "details"] {
        let r = routes(&s, 9080, service);
        assert_eq!(
            weights(&r[0]),
            vec![(
                format!("outbound|9080|v1|{service}.default.svc.cluster.local"),
                100
            )]
        );
    }
    assert_eq!(s.routes.len(), 1);
}
