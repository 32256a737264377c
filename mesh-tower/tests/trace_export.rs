//! Spans reach an OTLP receiver on 127.0.0.1: a `frontend` client calls `checkout`, whose
//! handler opens its own `tracing` span (through `tracing-opentelemetry`) and calls `payment`.
//! The receiver is a real OTLP endpoint: a tonic server implementing the collector's
//! `TraceService` (OTLP/gRPC), or an axum route decoding `ExportTraceServiceRequest` (OTLP/HTTP).
//!
//! Tracing is process-wide, so the tests of this file take turns (`TURN`). Each runs on a
//! current-thread runtime, so the thread-local `tracing` subscriber sees the handlers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_tower::client::MeshClient;
use mesh_tower::serve;
use mesh_tower::trace::{Protocol, TraceConfig, TraceGuard, install};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tower::ServiceExt;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

static TURN: Mutex<()> = Mutex::const_new(());
const LIMIT: Duration = Duration::from_secs(20);

/// One received span with its resource's `service.name`.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    attrs: Vec<(String, String)>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn flatten(req: ExportTraceServiceRequest) -> Vec<Got> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Got {
                    service: service.clone(),
                    name: s.name,
                    kind: s.kind,
                    trace_id: s.trace_id,
                    span_id: s.span_id,
                    parent: s.parent_span_id,
                    attrs: s
                        .attributes
                        .iter()
                        .map(|kv| {
                            (
                                kv.key.clone(),
                                text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                            )
                        })
                        .collect(),
                });
            }
        }
    }
    out
}

fn text(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The OTLP/gRPC collector endpoint.
struct GrpcReceiver(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn grpc_receiver() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(GrpcReceiver(tx)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (addr, rx)
}

/// The OTLP/HTTP collector endpoint: `POST /v1/traces` with a protobuf body.
async fn http_receiver() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: http::HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                assert_eq!(
                    headers.get("content-type").unwrap(),
                    "application/x-protobuf"
                );
                let _ = tx.send(ExportTraceServiceRequest::decode(body).unwrap());
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse {
                        partial_success: None,
                    }
                    .encode_to_vec(),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

fn workload(name: &str) -> Workload {
    Workload::new("shop", name).labels([("app", name), ("version", "v1")])
}

/// `name`'s mesh, knowing `payment` and `checkout` at these addresses (plaintext).
fn mesh(name: &str, upstreams: &[(&str, SocketAddr)]) -> Mesh {
    let ctx = BuildContext {
        workload: workload(name),
        ..BuildContext::default()
    };
    let yaml: String = upstreams
        .iter()
        .map(|(host, addr)| {
            format!(
                "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {host}, namespace: shop}}
spec:
  hosts: [{host}.shop.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}, labels: {{app: {host}, version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {host}, namespace: shop}}
spec:
  host: {host}.shop.svc.cluster.local
  trafficPolicy: {{tls: {{mode: DISABLE}}}}
---
",
                addr.port()
            )
        })
        .collect();
    let snapshot = istio::load_str("test.yaml", &yaml, &ctx).unwrap_or_else(|e| panic!("{e}"));
    Mesh::from_snapshot(ctx, snapshot)
}

async fn call(client: &MeshClient, url: &str, headers: &[(&str, &str)]) -> StatusCode {
    let mut builder = Request::get(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = client
        .clone()
        .oneshot(builder.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

/// The shop in miniature: `payment` and `checkout` served by mesh, and `frontend`'s client.
async fn shop() -> (MeshClient, SocketAddr) {
    let payment_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let payment_addr = payment_listener.local_addr().unwrap();
    let payment = mesh("payment", &[]);
    let app = Router::new().route("/charge", get(|| async { "paid" }));
    tokio::spawn(serve(&payment, payment_listener, app).into_future());

    let checkout_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let checkout_addr = checkout_listener.local_addr().unwrap();
    let checkout = mesh("checkout", &[("payment", payment_addr)]);
    let to_payment = MeshClient::new(checkout.clone());
    let app = Router::new().route(
        "/checkout",
        get(move || {
            let to_payment = to_payment.clone();
            // The application's own span: a child of mesh's server span, and the parent of
            // the call it makes.
            async move {
                let status = call(
                    &to_payment,
                    "http://payment.shop.svc.cluster.local:8080/charge",
                    &[],
                )
                .await;
                (status, "ordered")
            }
            .instrument(tracing::info_span!("charge-card"))
        }),
    );
    tokio::spawn(serve(&checkout, checkout_listener, app).into_future());

    let frontend = MeshClient::new(mesh("frontend", &[("checkout", checkout_addr)]));
    (frontend, checkout_addr)
}

/// A plain HTTP/1.1 request straight to a server (a caller outside the mesh).
async fn raw_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: checkout\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// Receives until `done` holds of what arrived (flushing mesh's queue meanwhile).
async fn receive(
    guard: &TraceGuard,
    rx: &mut mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
    done: impl Fn(&[Got]) -> bool,
) -> Vec<Got> {
    let mut got = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while !done(&got) {
            guard.tracing().flush().await;
            while let Ok(req) = rx.try_recv() {
                got.extend(flatten(req));
            }
            if !done(&got)
                && let Ok(Some(req)) =
                    tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
            {
                got.extend(flatten(req));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("spans never arrived; got {got:#?}"));
    got
}

fn find<'a>(got: &'a [Got], what: &str, f: impl Fn(&Got) -> bool) -> &'a Got {
    got.iter()
        .find(|g| f(g))
        .unwrap_or_else(|| panic!("no {what} span in {got:#?}"))
}

const CLIENT: i32 = SpanKind::Client as i32;
const SERVER: i32 = SpanKind::Server as i32;

/// frontend → checkout → (the app's `charge-card` span) → payment: one trace, every span the
/// child of the one before, each under its workload's `service.name`, over OTLP/gRPC.
#[tokio::test]
async fn one_trace_across_three_services_over_otlp_grpc() {
    let _turn = TURN.lock().await;
    let (addr, mut rx) = grpc_receiver().await;
    let mut config = TraceConfig::new(format!("http://{addr}"), Protocol::Grpc);
    config.sampling_percent = 100.0;
    config.scheduled_delay = Duration::from_millis(50);
    let guard = install(config).unwrap();
    let provider = guard.tracing().tracer_provider("checkout", "shop");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("checkout")));
    let _subscriber = tracing::subscriber::set_default(subscriber);

    let (frontend, checkout) = shop().await;
    // A caller that decided not to sample: honoured all along the chain.
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let response = raw_get(checkout, "/checkout", &[("traceparent", unsampled)]).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let status = call(
        &frontend,
        "http://checkout.shop.svc.cluster.local:8080/checkout",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let got = receive(&guard, &mut rx, |got| {
        got.iter()
            .any(|g| g.kind == SERVER && g.service == "payment.shop")
            && got
                .iter()
                .any(|g| g.kind == CLIENT && g.service == "checkout.shop")
            && got
                .iter()
                .any(|g| g.kind == CLIENT && g.service == "frontend.shop")
            && got
                .iter()
                .any(|g| g.kind == SERVER && g.service == "checkout.shop")
            && got.iter().any(|g| g.name == "charge-card")
    })
    .await;

    let root = find(&got, "frontend client", |g| {
        g.kind == CLIENT && g.service == "frontend.shop"
    });
    assert!(
        root.parent.is_empty(),
        "the frontend's call starts the trace"
    );
    assert_eq!(root.attr("istio.canonical_service"), Some("frontend"));
    assert_eq!(root.attr("component"), Some("proxy"));
    assert_eq!(
        root.attr("upstream_cluster"),
        Some("outbound|8080||checkout.shop.svc.cluster.local")
    );
    assert_eq!(root.attr("http.status_code"), Some("200"));
    assert_eq!(root.name, "checkout.shop.svc.cluster.local:8080/*");
    let served = find(&got, "checkout server", |g| {
        g.kind == SERVER && g.service == "checkout.shop"
    });
    assert_eq!(served.parent, root.span_id);
    assert_eq!(served.attr("istio.canonical_service"), Some("checkout"));
    assert_eq!(served.attr("istio.namespace"), Some("shop"));
    assert!(
        served
            .attr("peer.address")
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(
        served.attr("guid:x-request-id"),
        root.attr("guid:x-request-id")
    );
    // The app's span is under the server span (through mesh's `mesh.request` span, the
    // `tracing` span mesh runs the handler in).
    let app = find(&got, "charge-card", |g| g.name == "charge-card");
    let mut ancestor = app;
    while ancestor.span_id != served.span_id {
        ancestor = find(&got, "ancestor of charge-card", |g| {
            g.span_id == ancestor.parent
        });
    }
    let called = find(&got, "checkout client", |g| {
        g.kind == CLIENT && g.service == "checkout.shop"
    });
    assert_eq!(
        called.parent, app.span_id,
        "the call is a child of the app's span"
    );
    let paid = find(&got, "payment server", |g| {
        g.kind == SERVER && g.service == "payment.shop"
    });
    assert_eq!(paid.parent, called.span_id);
    assert_eq!(paid.attr("istio.canonical_service"), Some("payment"));
    for g in [served, app, called, paid] {
        assert_eq!(g.trace_id, root.trace_id, "one trace");
    }
    let unsampled_trace = hex("0af7651916cd43dd8448eb211c80319c");
    assert!(
        got.iter().all(|g| g.trace_id != unsampled_trace),
        "an unsampled caller's trace is not exported: {got:#?}"
    );
    assert_eq!(guard.tracing().dropped_spans(), 0);
}

/// OTLP/HTTP: spans arrive as protobuf at `/v1/traces`. With sampling at 0%, only the request
/// carrying `x-client-trace-id` is traced (Envoy's forced client trace).
#[tokio::test]
async fn otlp_http_and_x_client_trace_id_forcing() {
    let _turn = TURN.lock().await;
    let (addr, mut rx) = http_receiver().await;
    let mut config = TraceConfig::new(format!("http://{addr}/v1/traces"), Protocol::HttpProtobuf);
    config.sampling_percent = 0.0;
    config.scheduled_delay = Duration::from_millis(50);
    let guard = install(config).unwrap();

    let (frontend, _) = shop().await;
    for _ in 0..3 {
        let status = call(
            &frontend,
            "http://checkout.shop.svc.cluster.local:8080/checkout",
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let status = call(
        &frontend,
        "http://checkout.shop.svc.cluster.local:8080/checkout",
        &[("x-client-trace-id", "forced-1")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let got = receive(&guard, &mut rx, |got| {
        got.iter()
            .any(|g| g.kind == SERVER && g.service == "payment.shop")
    })
    .await;
    let root = find(&got, "frontend client", |g| {
        g.kind == CLIENT && g.service == "frontend.shop"
    });
    let traces: std::collections::BTreeSet<_> = got.iter().map(|g| g.trace_id.clone()).collect();
    assert_eq!(
        traces.len(),
        1,
        "only the forced request is traced: {got:#?}"
    );
    let served = find(&got, "checkout server", |g| {
        g.kind == SERVER && g.service == "checkout.shop"
    });
    assert_eq!(served.parent, root.span_id);
    let called = find(&got, "checkout client", |g| {
        g.kind == CLIENT && g.service == "checkout.shop"
    });
    assert_eq!(
        called.parent, served.span_id,
        "no app span here: the server span is the parent"
    );
    let paid = find(&got, "payment server", |g| {
        g.kind == SERVER && g.service == "payment.shop"
    });
    assert_eq!(paid.parent, called.span_id);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
