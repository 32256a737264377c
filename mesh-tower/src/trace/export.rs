//! Span export: [`install`] turns tracing on for the process with a [`TraceConfig`], building
//! the OTLP exporter (gRPC or HTTP, from `opentelemetry-otlp`) and the bounded queue in front of
//! it; [`Tracing::tracer_provider`] gives the application an OpenTelemetry tracer provider
//! feeding the same queue, for `tracing-opentelemetry`.
//!
//! Tracing is process-wide, like OpenTelemetry's global provider: every `serve` and
//! `MeshClient` of the process reads it with one atomic load per request. When it is off (never
//! installed, or the guard dropped), the request path does nothing more than that load.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use opentelemetry::KeyValue;
#[cfg(feature = "otlp")]
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};

#[cfg(feature = "otlp")]
use super::config::Protocol;
use super::config::TraceConfig;
use super::queue::{Batching, QueueProcessor, SpanQueue};

static TRACING: ArcSwapOption<Tracing> = ArcSwapOption::const_empty();

/// The installed tracing of the process; see the [`trace`](crate::trace) module docs.
#[derive(Debug)]
pub struct Tracing {
    pub(crate) config: TraceConfig,
    queue: SpanQueue,
    /// One resource per workload (`service.name` = `<canonical service>.<namespace>`), built on
    /// a workload's first sampled span.
    resources: ArcSwap<HashMap<(String, String), Resource>>,
}

/// Why tracing could not be turned on.
#[derive(Debug, thiserror::Error)]
pub enum TraceInstallError {
    /// The OTLP exporter could not be built (bad endpoint).
    #[error("OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The configured endpoint.
        endpoint: String,
        /// The exporter's error.
        reason: String,
    },
    /// [`install`] was asked to export over OTLP by a mesh-tower built without its `otlp`
    /// feature.
    #[error(
        "cannot export spans to {endpoint}: mesh-tower was built without its `otlp` feature \
         (enable it, or hand an exporter to `install_with_exporter`)"
    )]
    NoOtlp {
        /// The configured endpoint.
        endpoint: String,
    },
    /// `install` was called outside a tokio runtime.
    #[error("tracing must be installed from inside a tokio runtime")]
    NoRuntime,
}

/// Keeps tracing on; dropping it turns tracing off (spans already queued are still exported).
#[derive(Debug)]
#[must_use = "tracing stops when the guard is dropped"]
pub struct TraceGuard {
    tracing: Arc<Tracing>,
}

impl TraceGuard {
    /// The installed tracing.
    pub fn tracing(&self) -> &Arc<Tracing> {
        &self.tracing
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        let current = TRACING.load();
        if current
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, &self.tracing))
        {
            TRACING.store(None);
        }
    }
}

/// Turns tracing on for this process, exporting over OTLP as `config` says. Must run inside a
/// tokio runtime (the export task is spawned on it). Replaces tracing installed before.
/// Without the crate's `otlp` feature there is no OTLP exporter: it fails with
/// [`TraceInstallError::NoOtlp`].
#[cfg(feature = "otlp")]
pub fn install(config: TraceConfig) -> Result<TraceGuard, TraceInstallError> {
    let exporter = build_exporter(&config)?;
    install_with_exporter(config, exporter)
}

/// Turns tracing on for this process, exporting over OTLP as `config` says: this build has
/// no OTLP exporter (the crate's `otlp` feature is off), so it fails with
/// [`TraceInstallError::NoOtlp`]. [`install_with_exporter`] takes an exporter of the app's own.
#[cfg(not(feature = "otlp"))]
pub fn install(config: TraceConfig) -> Result<TraceGuard, TraceInstallError> {
    Err(TraceInstallError::NoOtlp {
        endpoint: config.endpoint,
    })
}

/// Reads the OpenTelemetry environment variables ([`TraceConfig::from_env`]) and, when they
/// name an endpoint, installs tracing. What every mesh binary calls at start.
pub fn install_from_env() -> Result<Option<TraceGuard>, Box<dyn std::error::Error + Send + Sync>> {
    match TraceConfig::from_env()? {
        Some(config) => Ok(Some(install(config)?)),
        None => Ok(None),
    }
}

/// [`install`] with any exporter (tests use an in-process one).
pub fn install_with_exporter<E: SpanExporter + 'static>(
    config: TraceConfig,
    exporter: E,
) -> Result<TraceGuard, TraceInstallError> {
    let tracing = Arc::new(Tracing::new(config, exporter)?);
    TRACING.store(Some(tracing.clone()));
    Ok(TraceGuard { tracing })
}

/// The installed tracing, if any: one atomic load, no allocation.
pub(crate) fn installed() -> Option<Arc<Tracing>> {
    let guard = TRACING.load();
    guard.as_ref().map(Arc::clone)
}

impl Tracing {
    /// Tracing exporting to `exporter`; the queue's task runs on the current tokio runtime.
    pub(crate) fn new<E: SpanExporter + 'static>(
        config: TraceConfig,
        exporter: E,
    ) -> Result<Self, TraceInstallError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TraceInstallError::NoRuntime);
        }
        let batching = Batching {
            max_batch: config.max_export_batch_size.max(1),
            delay: config.scheduled_delay,
            timeout: config.export_timeout,
        };
        let queue = SpanQueue::spawn(config.max_queue_size, batching, exporter);
        Ok(Self {
            config,
            queue,
            resources: ArcSwap::from_pointee(HashMap::new()),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &TraceConfig {
        &self.config
    }

    /// Spans dropped because the queue was full (also counted in
    /// `mesh_trace_spans_dropped_total`).
    pub fn dropped_spans(&self) -> u64 {
        self.queue.dropped()
    }

    /// Waits until every span finished before the call has been handed to the exporter.
    pub async fn flush(&self) {
        self.queue.flush().await;
    }

    /// An OpenTelemetry tracer provider for the application's own spans of the workload
    /// `canonical_service` in `namespace`: same resource, sampling and queue as mesh's spans.
    /// Hand `provider.tracer("app")` to `tracing_opentelemetry::layer().with_tracer(..)`; spans
    /// started while mesh runs a handler are children of mesh's server span.
    pub fn tracer_provider(&self, canonical_service: &str, namespace: &str) -> SdkTracerProvider {
        let resource = self.resource(canonical_service, namespace);
        SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                self.config.sampling_percent / 100.0,
            ))))
            .with_resource(resource.clone())
            .with_span_processor(QueueProcessor {
                queue: self.queue.clone(),
                resource,
            })
            .build()
    }

    /// Queues one of mesh's own spans.
    pub(crate) fn push(&self, resource: Resource, span: SpanData) {
        self.queue.push(resource, span);
    }

    /// The resource of a workload's spans.
    pub(crate) fn resource(&self, canonical_service: &str, namespace: &str) -> Resource {
        let key = (canonical_service.to_owned(), namespace.to_owned());
        if let Some(r) = self.resources.load().get(&key) {
            return r.clone();
        }
        let service_name = self
            .config
            .service_name
            .clone()
            .unwrap_or_else(|| format!("{canonical_service}.{namespace}"));
        let resource = Resource::builder_empty()
            .with_service_name(service_name)
            .with_attributes(
                self.config
                    .resource_attributes
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .with_attributes([
                KeyValue::new("telemetry.sdk.name", "mesh"),
                KeyValue::new("telemetry.sdk.language", "rust"),
            ])
            .build();
        self.resources.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(key.clone(), resource.clone());
            map
        });
        resource
    }
}

#[cfg(feature = "otlp")]
fn build_exporter(
    config: &TraceConfig,
) -> Result<opentelemetry_otlp::SpanExporter, TraceInstallError> {
    let fail = |e: opentelemetry_otlp::ExporterBuildError| TraceInstallError::Exporter {
        endpoint: config.endpoint.clone(),
        reason: e.to_string(),
    };
    match config.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .with_timeout(config.export_timeout)
            .build()
            .map_err(fail),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(config.endpoint.clone())
            .with_timeout(config.export_timeout)
            .build()
            .map_err(fail),
    }
}

#[cfg(all(test, not(feature = "otlp")))]
mod without_otlp {
    use super::*;

    /// Built without `otlp`, an OTLP endpoint is refused, naming it and the feature.
    #[tokio::test]
    async fn install_refuses_without_an_otlp_exporter() {
        let config = TraceConfig::new("http://127.0.0.1:4317", super::super::Protocol::Grpc);
        let err = install(config).unwrap_err();
        assert!(matches!(err, TraceInstallError::NoOtlp { .. }), "{err}");
        assert!(err.to_string().contains("http://127.0.0.1:4317"), "{err}");
        assert!(err.to_string().contains("`otlp` feature"), "{err}");
    }
}
