//! Config benches: building a snapshot from Istio YAML, and looking up a request's route.
//!
//! Targets (issue 2): build 1,000 services × 10 endpoints × 3 subsets under 200 ms; route lookup
//! with 1,000 hosts loaded under 200 ns, with no lock (one atomic load of the snapshot).
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::routing::{self, RequestInfo};
use mesh_core::{BuildContext, Mesh, istio};

fn build(c: &mut Criterion) {
    let yaml = mesh_benches::fleet_yaml(1_000, 10, 3);
    let ctx = BuildContext::default();
    let mut group = c.benchmark_group("config");
    group.sample_size(10);
    group.bench_function("build_1000_services_x10_endpoints_x3_subsets", |b| {
        b.iter(|| istio::load_str("fleet.yaml", black_box(&yaml), &ctx).expect("valid"))
    });
    group.finish();
}

fn lookup(c: &mut Criterion) {
    let yaml = mesh_benches::fleet_yaml(1_000, 10, 3);
    let ctx = BuildContext::default();
    let snapshot = istio::load_str("fleet.yaml", &yaml, &ctx).expect("valid");
    let mesh = Mesh::from_snapshot(ctx, snapshot);
    let mut headers = BTreeMap::new();
    headers.insert("end-user".to_owned(), "alice".to_owned());
    let mut group = c.benchmark_group("route_lookup");
    group.bench_function("1000_hosts", |b| {
        let mut i = 0usize;
        let authorities: Vec<String> = (0..1_000).map(|s| format!("svc-{s}:8080")).collect();
        b.iter(|| {
            i = (i + 1) % authorities.len();
            let snapshot = mesh.snapshot();
            let request = RequestInfo {
                method: "GET",
                authority: &authorities[i],
                path_and_query: "/api/items?page=2",
                port: 8080,
                headers: &headers,
            };
            let selected = routing::select(&snapshot, &request).expect("route");
            black_box(selected.index);
        })
    });
    group.finish();
}

criterion_group!(benches, build, lookup);
criterion_main!(benches);
