//! The `shop` demo exports its traces: run with the standard OpenTelemetry variables pointing at
//! an OTLP/gRPC receiver in this test (a tonic server implementing the collector's
//! `TraceService` on 127.0.0.1), one order's trace holds loadgen → frontend → checkout →
//! payment, each span the child of the one before, each workload under its own `service.name`.
//! Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

const DEADLINE: Duration = Duration::from_secs(60);

/// A received span: its workload's `service.name`, kind and ids.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                got.push(Got {
                    service: service.clone(),
                    kind: s.kind,
                    trace_id: s.trace_id,
                    span_id: s.span_id,
                    parent: s.parent_span_id,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[test]
fn shop_exports_one_trace_per_order_over_otlp() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = Receiver::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args([
            "--json",
            "--admin",
            "127.0.0.1:0",
            "--duration",
            "3",
            "--rps",
            "10",
        ])
        .arg("--config")
        .arg(dir.path().join("config"))
        .arg("--certs")
        .arg(dir.path().join("certs"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env_remove("OTEL_SDK_DISABLED")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shop did not finish in {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "shop failed: {status}");

    // shop flushes its spans before it exits.
    let got = receiver.0.lock().unwrap().clone();
    let by_id = |id: &[u8]| got.iter().find(|g| g.span_id == id);
    let client = SpanKind::Client as i32;
    let server = SpanKind::Server as i32;
    let paid = got
        .iter()
        .find(|g| g.kind == server && g.service == "payment.shop")
        .unwrap_or_else(|| panic!("no payment server span among {} spans", got.len()));
    // Walk up from the payment server span to the trace's root.
    let mut chain = vec![paid];
    while let Some(parent) = by_id(&chain.last().unwrap().parent) {
        chain.push(parent);
    }
    let walked: Vec<(String, i32)> = chain.iter().map(|g| (g.service.clone(), g.kind)).collect();
    assert_eq!(
        walked,
        vec![
            ("payment.shop".to_owned(), server),
            ("checkout.shop".to_owned(), client),
            ("checkout.shop".to_owned(), server),
            ("frontend.shop".to_owned(), client),
            ("frontend.shop".to_owned(), server),
            ("loadgen.shop".to_owned(), client),
        ],
        "{chain:#?}"
    );
    assert!(
        chain.last().unwrap().parent.is_empty(),
        "the load generator starts the trace"
    );
    assert!(chain.iter().all(|g| g.trace_id == paid.trace_id));
}
