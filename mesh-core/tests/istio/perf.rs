//! Building a large config stays fast and linear: 1,000 services × 10 endpoints × 3 subsets.

use std::fmt::Write;
use std::time::{Duration, Instant};

use super::*;

/// `n` services, each with 10 endpoints over 3 versions, a DestinationRule with 3 subsets and a
/// 90/10 VirtualService.
fn big_config(n: usize) -> String {
    let mut y = String::new();
    for i in 0..n {
        let mut endpoints = String::new();
        for e in 0..10 {
            let _ = write!(
                endpoints,
                "\n  - {{address: 10.{}.{}.{e}, labels: {{version: v{}}}}}",
                i / 250,
                i % 250,
                e % 3 + 1
            );
        }
        let _ = write!(
            y,
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{i}}}
spec:
  hosts: [svc-{i}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http}}]
  endpoints:{endpoints}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{i}}}
spec:
  host: svc-{i}
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}, {{name: v3, labels: {{version: v3}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{i}}}
spec:
  hosts: [svc-{i}]
  http:
  - route:
    - {{destination: {{host: svc-{i}, subset: v1}}, weight: 90}}
    - {{destination: {{host: svc-{i}, subset: v2}}, weight: 10}}
---
"
        );
    }
    y
}

/// The fastest of three loads (the machine may be shared), and the snapshot.
fn best_of_three(yaml: &str) -> (Duration, Snapshot) {
    let mut best = Duration::MAX;
    let mut snapshot = None;
    for _ in 0..3 {
        let start = Instant::now();
        let s = load(yaml);
        best = best.min(start.elapsed());
        snapshot = Some(s);
    }
    (best, snapshot.expect("three loads ran"))
}

#[test]
fn a_thousand_services_load_in_linear_time() {
    let (small, s) = best_of_three(&big_config(250));
    assert_eq!(s.clusters.len(), 1000);
    let (large, s) = best_of_three(&big_config(1000));
    assert_eq!(s.clusters.len(), 4000);
    assert_eq!(
        s.route_config(8080).map(|rc| rc.virtual_hosts.len()),
        Some(1000)
    );
    assert_eq!(
        s.cluster(&mesh_core::model::ClusterName::new(
            "outbound|8080|v1|svc-7.default.svc.cluster.local"
        ))
        .map(|c| c.endpoints.len()),
        Some(4)
    );
    eprintln!("load of 250 services: {small:?}; of 1000: {large:?}");
    // Four times the input must not take sixteen times as long: no quadratic pass.
    assert!(
        large < small * 8,
        "250 services: {small:?}, 1000 services: {large:?}"
    );
    // In release, parsing takes about 170 ms and building 110 ms on a busy 2-core machine (load
    // average 9); the bound leaves room for worse, and for debug builds.
    let budget = if cfg!(debug_assertions) {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(2)
    };
    assert!(large < budget, "took {large:?}");
}
