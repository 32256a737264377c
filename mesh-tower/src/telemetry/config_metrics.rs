//! mesh's own config gauges, refreshed from the [`Mesh`] handle. The admin endpoint refreshes
//! them on every `/metrics` scrape; an application exporting metrics its own way calls
//! [`record_config_metrics`] before it renders. (`mesh_config_reloads_total{result}` is counted by
//! `Mesh` itself as configs are applied or refused.)

use std::time::UNIX_EPOCH;

use mesh_core::Mesh;

/// Gauge: Unix time the serving config was applied.
pub const CONFIG_APPLIED_TIMESTAMP: &str = "mesh_config_last_applied_timestamp_seconds";
/// Gauge: 1 while the last config offered was refused (the previous one keeps serving).
pub const CONFIG_REJECTED: &str = "mesh_config_last_rejected";
/// Gauge: configs applied since start.
pub const CONFIG_APPLIED: &str = "mesh_config_applied";
/// Gauge: configs refused since start.
pub const CONFIG_REJECTED_COUNT: &str = "mesh_config_rejected";
/// Gauge: clusters in the serving config.
pub const CONFIG_CLUSTERS: &str = "mesh_config_clusters";
/// Gauge: warnings in the serving config.
pub const CONFIG_WARNINGS: &str = "mesh_config_warnings";

/// Gauge `{component, tag}`, always 1: which build serves (Istio's `istio_build`, which its
/// proxies export as `istio_build{component="proxy",tag="<istio version>"}`; istio/proxy
/// `istio_stats.cc` `recordVersion`). mesh reports `component="proxy"` and its own version.
pub const ISTIO_BUILD: &str = "istio_build";

/// Sets `istio_build{component="proxy",tag="<mesh version>"}` to 1.
pub fn record_build_metric() {
    metrics::gauge!(ISTIO_BUILD, "component" => "proxy", "tag" => env!("CARGO_PKG_VERSION"))
        .set(1.0);
}

/// Sets the `mesh_config_*` gauges from the mesh's current status and snapshot, and
/// [`ISTIO_BUILD`].
pub fn record_config_metrics(mesh: &Mesh) {
    record_build_metric();
    let status = mesh.status();
    let snapshot = mesh.snapshot();
    let applied_at = status
        .applied_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    metrics::gauge!(CONFIG_APPLIED_TIMESTAMP).set(applied_at);
    metrics::gauge!(CONFIG_REJECTED).set(if status.last_rejection.is_some() {
        1.0
    } else {
        0.0
    });
    metrics::gauge!(CONFIG_APPLIED).set(status.applied_total as f64);
    metrics::gauge!(CONFIG_REJECTED_COUNT).set(status.rejected_total as f64);
    metrics::gauge!(CONFIG_CLUSTERS).set(snapshot.clusters.len() as f64);
    metrics::gauge!(CONFIG_WARNINGS).set(snapshot.warnings.len() as f64);
}
