//! Sampling, span tags, the bounded export queue and the tracing settings, without installing
//! tracing for the process (other tests of this crate run alongside): each test builds its own
//! [`Tracing`] over an in-process exporter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mesh_core::model::{ClusterName, ServiceKey};
use mesh_core::telemetry::{PeerWorkload, Reporter, RequestRecord, ResponseFlag};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{Notify, Semaphore};

use super::config::{Protocol, TraceConfig, TraceConfigError};
use super::export::Tracing;
use super::ids::{SpanId, TraceId};
use super::span::{SpanStart, decide, forced};

/// Collects what it is asked to export; with a gate, each export waits for a permit.
#[derive(Debug, Default)]
struct Collect {
    spans: Arc<Mutex<Vec<(Resource, SpanData)>>>,
    resource: Option<Resource>,
    gate: Option<Arc<Semaphore>>,
    entered: Arc<Notify>,
}

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.entered.notify_one();
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let resource = self.resource.clone().unwrap();
        let mut spans = self.spans.lock().unwrap();
        spans.extend(batch.into_iter().map(|s| (resource.clone(), s)));
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = Some(resource.clone());
    }
}

fn config() -> TraceConfig {
    let mut c = TraceConfig::new("http://127.0.0.1:4317", Protocol::Grpc);
    c.sampling_percent = 100.0;
    c.scheduled_delay = Duration::from_millis(20);
    c.instance_ip = "10.0.0.7".into();
    c
}

fn workload(name: &str) -> PeerWorkload {
    PeerWorkload {
        name: Some(name.into()),
        namespace: Some("shop".into()),
        app: Some(name.into()),
        version: Some("v1".into()),
        canonical_service: Some(name.into()),
        canonical_revision: Some("v1".into()),
        cluster: Some("Kubernetes".into()),
    }
}

fn record(reporter: Reporter) -> RequestRecord {
    let mut r = RequestRecord::new(
        reporter,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
    );
    r.duration = Duration::from_millis(12);
    r.method = "POST".into();
    r.path = "/shop.Payment/Charge".into();
    r.authority = "payment:8080".into();
    r.response_code = Some(200);
    r.grpc_status = Some(0);
    r.request_bytes = 17;
    r.response_bytes = 9;
    r.source = workload("checkout");
    r.destination = workload("payment");
    r.destination_service = Some(ServiceKey {
        host: "payment.shop.svc.cluster.local".into(),
        namespace: "shop".into(),
        port: 8080,
        subset: None,
    });
    r.upstream_cluster = Some(ClusterName::outbound(
        "payment.shop.svc.cluster.local",
        8080,
        None,
    ));
    r.peer_address = Some("127.0.0.1:41000".into());
    r.request_id = Some("6c1f2f8e-0000-4000-8000-000000000001".into());
    r
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| &kv.value)
}

fn ids() -> (TraceId, SpanId, SpanId) {
    (TraceId([7; 16]), SpanId([2; 8]), SpanId([1; 8]))
}

/// Istio's `tracing.sampling` is Envoy's `random_sampling`: each trace mesh starts is sampled
/// with that probability (`ConnectionManagerUtility::mutateTracingRequestHeader`,
/// `source/common/http/conn_manager_utility.cc`). Seeded; 5-sigma tolerance.
#[test]
fn sampling_follows_the_percentage() {
    let mut rng = SmallRng::seed_from_u64(42);
    let n = 100_000;
    for percent in [1.0, 10.0, 50.0] {
        let hits = (0..n)
            .filter(|_| decide(None, false, percent, &mut rng))
            .count();
        let p = percent / 100.0;
        let mean = n as f64 * p;
        let sigma = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (hits as f64 - mean).abs() <= 5.0 * sigma,
            "{percent}%: {hits} of {n}"
        );
    }
    assert!((0..1000).all(|_| !decide(None, false, 0.0, &mut rng)));
    assert!((0..1000).all(|_| decide(None, false, 100.0, &mut rng)));
}

/// The caller's decision is kept whatever the percentage (Envoy's OpenTelemetry tracer keeps
/// the parent's sampled flag: `Driver::startSpan`,
/// `source/extensions/tracers/opentelemetry/opentelemetry_tracer_impl.cc`); with no decision,
/// `x-client-trace-id` forces a trace (`mutateTracingRequestHeader`'s client sampling, 100% by
/// default).
#[test]
fn caller_decision_wins_and_client_trace_id_forces() {
    let mut rng = SmallRng::seed_from_u64(1);
    assert!(!decide(Some(false), true, 100.0, &mut rng));
    assert!(decide(Some(true), false, 0.0, &mut rng));
    assert!(decide(None, true, 0.0, &mut rng));
    assert!(!decide(None, false, 0.0, &mut rng));
    // What forces: a non-empty `x-client-trace-id`, or `x-envoy-force-trace`.
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    };
    assert!(forced(&headers(&[("x-client-trace-id", "abc")])));
    assert!(forced(&headers(&[("x-envoy-force-trace", "true")])));
    assert!(!forced(&headers(&[("x-client-trace-id", "")])));
    assert!(!forced(&headers(&[("x-request-id", "abc")])));
}

/// The tags of Envoy's `HttpTracerUtility::finalizeDownstreamSpan` /
/// `finalizeUpstreamSpan` (`source/common/tracing/http_tracer_impl.cc`) and Istio's
/// `buildServiceTags` (`pilot/pkg/networking/core/tracing.go`), on a server and a client span;
/// each workload's spans under its own `service.name` (`<canonical service>.<namespace>`).
#[tokio::test]
async fn spans_carry_istio_tags_under_their_workload_resource() {
    let exporter = Collect::default();
    let spans = exporter.spans.clone();
    let tracing = Arc::new(Tracing::new(config(), exporter).unwrap());
    let (trace, server, caller) = ids();

    let mut served = record(Reporter::Destination);
    served.destination_service.as_mut().unwrap().port = 9080;
    SpanStart::new(
        tracing.clone(),
        trace,
        server,
        Some(caller),
        SpanKind::Server,
    )
    .end(&served);
    let mut called = record(Reporter::Source);
    called.response_code = Some(503);
    called.grpc_status = None;
    called.response_flags.push(ResponseFlag::NoHealthyUpstream);
    SpanStart::new(
        tracing.clone(),
        trace,
        SpanId([3; 8]),
        Some(server),
        SpanKind::Client,
    )
    .end(&called);
    tracing.flush().await;

    let spans = spans.lock().unwrap();
    assert_eq!(spans.len(), 2);
    let (resource, s) = &spans[0];
    assert_eq!(
        resource.get(&Key::from_static_str("service.name")),
        Some(Value::from("payment.shop"))
    );
    assert_eq!(s.span_kind, SpanKind::Server);
    assert_eq!(s.span_context.trace_id().to_bytes(), [7; 16]);
    assert_eq!(s.span_context.span_id().to_bytes(), [2; 8]);
    assert_eq!(s.parent_span_id.to_bytes(), [1; 8]);
    assert!(s.span_context.is_sampled());
    assert_eq!(s.name, "payment.shop.svc.cluster.local:9080/*");
    assert_eq!(
        s.end_time.duration_since(s.start_time).unwrap(),
        Duration::from_millis(12)
    );
    let text = |k| attr(s, k).map(|v| v.as_str().into_owned());
    assert_eq!(text("component").as_deref(), Some("proxy"));
    assert_eq!(
        text("node_id").as_deref(),
        Some("sidecar~10.0.0.7~payment.shop~shop.svc.cluster.local")
    );
    assert_eq!(
        text("guid:x-request-id").as_deref(),
        Some("6c1f2f8e-0000-4000-8000-000000000001")
    );
    assert_eq!(text("istio.canonical_service").as_deref(), Some("payment"));
    assert_eq!(text("istio.canonical_revision").as_deref(), Some("v1"));
    assert_eq!(text("istio.namespace").as_deref(), Some("shop"));
    assert_eq!(text("istio.mesh_id").as_deref(), Some("cluster.local"));
    assert_eq!(text("upstream_cluster").as_deref(), Some("inbound|9080||"));
    assert_eq!(text("peer.address").as_deref(), Some("127.0.0.1:41000"));
    assert_eq!(text("response_flags").as_deref(), Some("-"));
    assert_eq!(
        text("http.url").as_deref(),
        Some("http://payment:8080/shop.Payment/Charge")
    );
    assert_eq!(attr(s, "http.status_code"), Some(&Value::I64(200)));
    assert_eq!(attr(s, "request_size"), Some(&Value::I64(17)));
    assert_eq!(attr(s, "error"), None);
    assert_eq!(s.status, Status::Unset);

    let (resource, c) = &spans[1];
    assert_eq!(
        resource.get(&Key::from_static_str("service.name")),
        Some(Value::from("checkout.shop"))
    );
    assert_eq!(c.span_kind, SpanKind::Client);
    assert_eq!(c.parent_span_id.to_bytes(), [2; 8]);
    let text = |k| attr(c, k).map(|v| v.as_str().into_owned());
    assert_eq!(text("istio.canonical_service").as_deref(), Some("checkout"));
    assert_eq!(
        text("upstream_cluster").as_deref(),
        Some("outbound|8080||payment.shop.svc.cluster.local")
    );
    assert_eq!(text("response_flags").as_deref(), Some("UH"));
    assert_eq!(attr(c, "http.status_code"), Some(&Value::I64(503)));
    assert_eq!(text("error").as_deref(), Some("true"));
    assert!(matches!(c.status, Status::Error { .. }));
}

/// A long value is cut at Envoy's `max_tag_length` (256 by default; here 16).
#[tokio::test]
async fn long_tags_are_cut_at_max_tag_length() {
    let exporter = Collect::default();
    let spans = exporter.spans.clone();
    let mut c = config();
    c.max_tag_length = 16;
    let tracing = Arc::new(Tracing::new(c, exporter).unwrap());
    let (trace, server, caller) = ids();
    let mut r = record(Reporter::Destination);
    r.path = format!("/{}", "é".repeat(100));
    SpanStart::new(
        tracing.clone(),
        trace,
        server,
        Some(caller),
        SpanKind::Server,
    )
    .end(&r);
    tracing.flush().await;
    let spans = spans.lock().unwrap();
    let url = attr(&spans[0].1, "http.url").unwrap().as_str().into_owned();
    assert!(
        url.len() <= 16 && url.starts_with("http://payment"),
        "{url}"
    );
}

/// The exporter never holds up a request: with the exporter stuck and a queue of one, further
/// spans are dropped at once and counted (`mesh_trace_spans_dropped_total`).
#[tokio::test]
async fn full_queue_drops_spans_and_counts_them() {
    let gate = Arc::new(Semaphore::new(0));
    let exporter = Collect {
        gate: Some(gate.clone()),
        ..Collect::default()
    };
    let entered = exporter.entered.clone();
    let spans = exporter.spans.clone();
    let mut c = config();
    c.max_queue_size = 1;
    c.max_export_batch_size = 1;
    let tracing = Arc::new(Tracing::new(c, exporter).unwrap());
    let (trace, server, caller) = ids();
    let r = record(Reporter::Destination);
    let end = || {
        SpanStart::new(
            tracing.clone(),
            trace,
            server,
            Some(caller),
            SpanKind::Server,
        )
        .end(&r);
    };
    // The first span is taken by the export task, which then waits at the gate.
    end();
    tokio::time::timeout(Duration::from_secs(10), entered.notified())
        .await
        .unwrap();
    // One more fits in the queue; the next nine are dropped without waiting.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        end();
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(tracing.dropped_spans(), 9);
    gate.add_permits(100);
    tracing.flush().await;
    assert_eq!(spans.lock().unwrap().len(), 2);
    assert_eq!(tracing.dropped_spans(), 9);
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// The OpenTelemetry SDK environment variables.
#[test]
fn config_from_the_standard_env_vars() {
    assert_eq!(TraceConfig::from_vars(vars(&[])).unwrap(), None);
    let c = TraceConfig::from_vars(vars(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("OTEL_SERVICE_NAME", "shop"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=dev, team=payments",
        ),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.endpoint, "http://collector:4317");
    assert_eq!(c.protocol, Protocol::Grpc);
    assert_eq!(c.sampling_percent, 25.0);
    assert_eq!(c.service_name.as_deref(), Some("shop"));
    assert_eq!(c.max_queue_size, 64);
    assert_eq!(
        c.resource_attributes,
        vec![
            ("deployment.environment".to_owned(), "dev".to_owned()),
            ("team".to_owned(), "payments".to_owned())
        ]
    );
    // HTTP: the generic endpoint is a base URL; the signal's own is used as is.
    let c = TraceConfig::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]))
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.endpoint.as_str(), c.protocol),
        ("http://c:4318/v1/traces", Protocol::HttpProtobuf)
    );
    assert_eq!(c.sampling_percent, 100.0);
    let c = TraceConfig::from_vars(vars(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.endpoint, "http://c:4318/custom");
    assert_eq!(
        TraceConfig::from_vars(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]))
        .unwrap(),
        None
    );
    let err = TraceConfig::from_vars(vars(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
    ]))
    .unwrap_err();
    assert!(
        matches!(&err, TraceConfigError::Env { name, .. } if name == "OTEL_TRACES_SAMPLER_ARG"),
        "{err}"
    );
    let err = TraceConfig::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]))
        .unwrap_err();
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{err}"
    );
    let err = TraceConfig::from_vars(vars(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("http/json"), "{err}");
}

/// Istio's MeshConfig: `extensionProviders[].opentelemetry` (service, port, `http` for
/// OTLP/HTTP) chosen by `defaultProviders.tracing`, and `defaultConfig.tracing.sampling`.
#[test]
fn config_from_istio_mesh_config() {
    let grpc = "
defaultConfig:
  tracing:
    sampling: 10
defaultProviders:
  tracing: [otel]
extensionProviders:
- name: prometheus
  prometheus: {}
- name: otel
  opentelemetry:
    service: opentelemetry-collector.observability.svc.cluster.local
    port: 4317
    maxTagLength: 99
";
    let c = TraceConfig::from_mesh_config(grpc).unwrap().unwrap();
    assert_eq!(c.protocol, Protocol::Grpc);
    assert_eq!(
        c.endpoint,
        "http://opentelemetry-collector.observability.svc.cluster.local:4317"
    );
    assert_eq!(c.sampling_percent, 10.0);
    assert_eq!(c.max_tag_length, 99);

    let http = "
extensionProviders:
- name: otel-http
  opentelemetry:
    service: tempo.observability
    port: 4318
    http:
      path: /otlp/v1/traces
      timeout: 2s
";
    let c = TraceConfig::from_mesh_config(http).unwrap().unwrap();
    assert_eq!(c.protocol, Protocol::HttpProtobuf);
    assert_eq!(c.endpoint, "http://tempo.observability:4318/otlp/v1/traces");
    assert_eq!(c.export_timeout, Duration::from_secs(2));
    assert_eq!(c.sampling_percent, 1.0, "Istio's default sampling");

    // Istio's environment resource detector reads OTEL_RESOURCE_ATTRIBUTES.
    let detected = "
extensionProviders:
- name: otel
  opentelemetry:
    service: c
    port: 4317
    resourceDetectors:
      environment: {}
";
    let c = TraceConfig::from_mesh_config_with(
        detected,
        vars(&[("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=east")]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        c.resource_attributes,
        vec![("k8s.cluster.name".to_owned(), "east".to_owned())]
    );
    let err = TraceConfig::from_mesh_config(
        "extensionProviders:\n- name: o\n  opentelemetry: {service: c, port: 4317, resourceDetectors: {dynatrace: {}}}\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("resourceDetectors.dynatrace"),
        "{err}"
    );

    assert_eq!(
        TraceConfig::from_mesh_config("defaultConfig: {}").unwrap(),
        None
    );
    let err = TraceConfig::from_mesh_config(
        "defaultProviders: {tracing: [zipkin]}\nextensionProviders:\n- name: zipkin\n  zipkin: {service: z, port: 9411}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("extensionProviders[0]"), "{err}");
    let err = TraceConfig::from_mesh_config(
        "extensionProviders:\n- name: o\n  opentelemetry: {service: c, port: 4317, dynatrace_sampler: {tenant: x}}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("dynatraceSampler"), "{err}");
    let err = TraceConfig::from_mesh_config(
        "defaultConfig: {tracing: {sampling: 120}}\nextensionProviders:\n- name: o\n  opentelemetry: {service: c, port: 4317}\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("defaultConfig.tracing.sampling"),
        "{err}"
    );
}
