//! A Prometheus exporter configured for Istio's metrics.
//!
//! The `metrics` facade has one global recorder per process, and the application may already
//! have installed one (its own Prometheus exporter, OpenTelemetry, statsd…). So mesh never
//! installs a recorder behind the application's back:
//!
//! - no recorder yet: [`install_prometheus`] installs ours and returns the handle the admin
//!   endpoint renders `/metrics` from;
//! - the application has its own: skip it, and give the admin endpoint no handle (`/metrics`
//!   answers 404 and the application exports mesh's metrics with everything else), or build
//!   its exporter from [`prometheus_builder`] to get Istio's buckets.

use mesh_core::telemetry::names::{
    BYTES_BUCKETS, DURATION_BUCKETS_MS, REQUEST_BYTES, REQUEST_DURATION_MILLISECONDS,
    RESPONSE_BYTES,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// A Prometheus builder with Istio's histogram buckets for the standard request metrics.
pub fn prometheus_builder() -> PrometheusBuilder {
    let builder = PrometheusBuilder::new();
    let with = |b: PrometheusBuilder, name: &str, buckets: &[f64]| {
        b.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
    };
    // The bucket lists are constant and non-empty, the only thing `set_buckets_for_metric`
    // checks; fall back to the plain builder rather than panic if that ever changes.
    with(builder, REQUEST_DURATION_MILLISECONDS, &DURATION_BUCKETS_MS)
        .and_then(|b| with(b, REQUEST_BYTES, &BYTES_BUCKETS))
        .and_then(|b| with(b, RESPONSE_BYTES, &BYTES_BUCKETS))
        .unwrap_or_default()
}

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs a Prometheus recorder with Istio's buckets as the process' global `metrics`
/// recorder, and returns the handle that renders it. Fails if a recorder is already installed.
///
/// Also starts the recorder's upkeep on a small thread of its own (as the exporter's own
/// `install` does): histogram samples are kept until upkeep or a scrape folds them into
/// buckets, so without it a process nobody scrapes grows with every request.
pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
    let handle = prometheus_builder().install_recorder()?;
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("mesh-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start metrics upkeep; histograms are folded at each scrape only");
    }
    Ok(handle)
}
