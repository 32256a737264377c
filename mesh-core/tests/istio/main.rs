//! Tests of `mesh_core::istio`: Istio YAML in, snapshot (or diagnostics) out.

mod analyze;
mod bookinfo;
mod clusters;
mod errors;
mod fidelity;
mod kube;
mod perf;
mod routes;
mod security;
mod sidecar;
mod traffic_fidelity;
mod validation;

use std::path::Path;

use mesh_core::model::{Route, RouteAction, Snapshot};
use mesh_core::{BuildContext, Workload, istio};

/// The fixtures folder.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The productpage workload in `default`.
pub fn ctx() -> BuildContext {
    ctx_for(
        Workload::new("default", "bookinfo-productpage")
            .labels([("app", "productpage"), ("version", "v1")]),
    )
}

/// A context for `workload`.
pub fn ctx_for(workload: Workload) -> BuildContext {
    BuildContext {
        workload,
        ..BuildContext::default()
    }
}

/// Loads YAML that must be accepted.
pub fn load(yaml: &str) -> Snapshot {
    load_with(yaml, &ctx())
}

/// Loads YAML that must be accepted, for `ctx`.
pub fn load_with(yaml: &str, ctx: &BuildContext) -> Snapshot {
    match istio::load_str("test.yaml", yaml, ctx) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// The bookinfo services plus the named bookinfo sample files.
pub fn load_bookinfo(files: &[&str]) -> Snapshot {
    let mut paths = vec![Path::new(FIXTURES).join("bookinfo-services.yaml")];
    paths.extend(
        files
            .iter()
            .map(|f| Path::new(FIXTURES).join("bookinfo").join(f)),
    );
    match istio::load_paths(&paths, &ctx()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// The errors of YAML that must be refused, as displayed.
pub fn errors(yaml: &str) -> Vec<String> {
    match istio::load_str("test.yaml", yaml, &ctx()) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.errors().map(ToString::to_string).collect(),
    }
}

/// The warnings of an accepted load, as displayed.
pub fn warnings(s: &Snapshot) -> Vec<String> {
    s.warnings.iter().map(ToString::to_string).collect()
}

/// The routes serving `authority` on `port`.
pub fn routes<'a>(s: &'a Snapshot, port: u16, authority: &str) -> &'a [Route] {
    let rc = s
        .route_config(port)
        .unwrap_or_else(|| panic!("no route config for {port}"));
    &rc.virtual_host(authority)
        .unwrap_or_else(|| panic!("no virtual host for {authority}"))
        .routes
}

/// (cluster, weight) of a forwarding route.
pub fn weights(route: &Route) -> Vec<(String, u32)> {
    match &route.action {
        RouteAction::Forward(w) => w
            .iter()
            .map(|w| (w.cluster.to_string(), w.weight))
            .collect(),
        other => panic!("not a forward: {other:?}"),
    }
}

/// The reviews service.
pub const REVIEWS: &str = "reviews.default.svc.cluster.local";

/// A ServiceEntry for `reviews` with v1..v3 endpoints, then `extra`.
pub fn with_reviews(extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http}}]
  endpoints:
  - {{address: 10.0.1.1, labels: {{version: v1}}}}
  - {{address: 10.0.1.2, labels: {{version: v2}}}}
  - {{address: 10.0.1.3, labels: {{version: v3}}}}
---
{extra}"
    )
}
