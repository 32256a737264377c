//! Building a large config stays fast: 1,000 services × 10 endpoints × 3 subsets.

use std::fmt::Write;
use std::time::{Duration, Instant};

use super::*;

fn big_config() -> String {
    let mut y = String::new();
    for i in 0..1000 {
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

#[test]
fn a_thousand_services_build_quickly() {
    let yaml = big_config();
    let start = Instant::now();
    let s = load(&yaml);
    let took = start.elapsed();
    assert_eq!(s.clusters.len(), 4000);
    assert_eq!(s.route_config(8080).unwrap().virtual_hosts.len(), 1000);
    // Release builds take well under 200 ms; debug builds are allowed ten times that.
    let budget = if cfg!(debug_assertions) {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(200)
    };
    assert!(took < budget, "took {took:?}");
}
