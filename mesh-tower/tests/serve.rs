//! `mesh_tower::serve` on 127.0.0.1 with identities minted at test time: TLS by
//! PeerAuthentication mode, authorization, the inbound telemetry, limits and graceful shutdown.
//!
//! Every test runs on a current-thread runtime, so the server's tasks run on the test's thread
//! and a thread-local metrics recorder or tracing subscriber sees them.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::routing;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use mesh_core::identity::{CertificateAuthority, ExpectedIdentities, PeerIdentity};
use mesh_core::telemetry::{PEER_METADATA_HEADER, PeerMetadata};
use mesh_core::{Mesh, Workload};
use mesh_tower::telemetry::{AccessLogMode, Telemetry};
use mesh_tower::tls::TlsConnector;
use mesh_tower::{ServeOptions, serve};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

const LIMIT: Duration = Duration::from_secs(10);
/// The size of `/big`'s response: more than loopback socket buffers hold.
const BIG: usize = 32 * 1024 * 1024;
const SLEEP: &str = "spiffe://cluster.local/ns/foo/sa/sleep";
const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";

fn peer_authn(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec:
  mtls: {{mode: {mode}}}
"
    )
}

const DENY_ADMIN: &str = "---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin]}}]
";

fn workload() -> Workload {
    Workload::new("default", "reviews").labels([("app", "reviews"), ("version", "v1")])
}

/// The mesh of `reviews`, with an identity from `ca` (or none) and `yaml` applied.
async fn mesh(ca: Option<&CertificateAuthority>, yaml: &str) -> Mesh {
    let mut builder = Mesh::builder().workload(workload());
    if let Some(ca) = ca {
        builder = builder.identity(identity(ca, "default", "reviews"));
    }
    let mesh = builder.build().await.unwrap();
    let snapshot = mesh_core::istio::load_str("test.yaml", yaml, mesh.context()).unwrap();
    mesh.apply(snapshot);
    mesh
}

/// The test application.
#[derive(Clone)]
struct AppState {
    handled: Arc<AtomicUsize>,
    /// `/stream` sends its first chunk, then waits for a permit here before the last.
    gate: Arc<Semaphore>,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            handled: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/whoami",
            routing::get(|State(s): State<AppState>, req: Request| async move {
                s.handled.fetch_add(1, Ordering::SeqCst);
                let peer = req.extensions().get::<PeerIdentity>();
                let trace = mesh_tower::trace::current().map(|c| c.trace.trace_id.to_string());
                format!(
                    "{} {}",
                    peer.map_or("plaintext".to_owned(), |p| p.to_string()),
                    trace.unwrap_or_default()
                )
            }),
        )
        .route(
            "/admin",
            routing::get(|State(s): State<AppState>| async move {
                s.handled.fetch_add(1, Ordering::SeqCst);
                "admin"
            }),
        )
        .route(
            "/any",
            routing::any(|State(s): State<AppState>| async move {
                s.handled.fetch_add(1, Ordering::SeqCst);
                "any"
            }),
        )
        .route(
            "/xfcc",
            routing::get(|State(s): State<AppState>, req: Request| async move {
                s.handled.fetch_add(1, Ordering::SeqCst);
                let values: Vec<_> = req
                    .headers()
                    .get_all("x-forwarded-client-cert")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect();
                values.join("|")
            }),
        )
        .route(
            "/big",
            routing::get(|State(s): State<AppState>| async move {
                s.handled.fetch_add(1, Ordering::SeqCst);
                vec![b'x'; BIG]
            }),
        )
        .route(
            "/stream",
            routing::get(|State(s): State<AppState>| async move {
                s.handled.fetch_add(1, Ordering::SeqCst);
                let gate = s.gate.clone();
                let chunks = futures_util::stream::unfold(0, move |step| {
                    let gate = gate.clone();
                    async move {
                        match step {
                            0 => Some((Ok::<_, Infallible>(Bytes::from_static(b"start;")), 1)),
                            1 => {
                                gate.acquire().await.unwrap().forget();
                                Some((Ok(Bytes::from_static(b"end")), 2))
                            }
                            _ => None,
                        }
                    }
                });
                Body::from_stream(chunks)
            }),
        )
        .with_state(state)
}

struct Server {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    /// Fires when the server has seen the shutdown signal (stopped accepting).
    stopping: Option<oneshot::Receiver<()>>,
    done: JoinHandle<std::io::Result<()>>,
}

async fn start(mesh: &Mesh, options: ServeOptions) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::default();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (ack, stopping) = oneshot::channel();
    let server = serve(mesh, listener, app(state.clone()))
        .options(options)
        .with_graceful_shutdown(async move {
            let _ = stop_rx.await;
            let _ = ack.send(());
        });
    Server {
        addr,
        state,
        stop: Some(stop),
        stopping: Some(stopping),
        done: tokio::spawn(server.into_future()),
    }
}

impl Server {
    fn handled(&self) -> usize {
        self.state.handled.load(Ordering::SeqCst)
    }
}

/// A plaintext HTTP/1.1 GET with extra headers: status, headers and body.
async fn h1_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, http::HeaderMap, String), hyper::Error> {
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let mut request = http::Request::get(path).header("host", "reviews:9080");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = send
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// An HTTP/2 client over mutual TLS as `foo/sleep`.
async fn mtls_client(ca: &CertificateAuthority, addr: SocketAddr) -> Result<H2, String> {
    let connector = TlsConnector::new(identity(ca, "foo", "sleep"));
    let tls = connector
        .connect(
            TcpStream::connect(addr).await.unwrap(),
            sni(),
            &ExpectedIdentities::any_in_trust_domain(),
        )
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(tls.peer.to_string(), REVIEWS);
    Ok(h2_client(tls.stream).await)
}

#[tokio::test]
async fn strict_serves_mutual_tls_and_refuses_plaintext() {
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &peer_authn("STRICT")).await;
    let server = start(&mesh, ServeOptions::new()).await;

    let mut client = mtls_client(&ca, server.addr).await.unwrap();
    let (status, body) = get(&mut client, "/whoami").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with(&format!("{SLEEP} ")), "{body}");

    assert!(h1_get(server.addr, "/whoami", &[]).await.is_err());
    assert_eq!(server.handled(), 1);
}

#[tokio::test]
async fn permissive_serves_mutual_tls_and_plaintext_on_one_port() {
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &peer_authn("PERMISSIVE")).await;
    let server = start(&mesh, ServeOptions::new()).await;

    let mut client = mtls_client(&ca, server.addr).await.unwrap();
    let (_, body) = get(&mut client, "/whoami").await.unwrap();
    assert!(body.starts_with(&format!("{SLEEP} ")), "{body}");

    let (status, _, body) = h1_get(server.addr, "/whoami", &[]).await.unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("plaintext "), "{body}");

    // Plaintext HTTP/2 with prior knowledge too.
    let mut h2 = h2_client(TcpStream::connect(server.addr).await.unwrap()).await;
    let (_, body) = get(&mut h2, "/whoami").await.unwrap();
    assert!(body.starts_with("plaintext "), "{body}");
}

#[tokio::test]
async fn disable_serves_plaintext_only() {
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &peer_authn("DISABLE")).await;
    let server = start(&mesh, ServeOptions::new()).await;

    let (status, _, body) = h1_get(server.addr, "/whoami", &[]).await.unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("plaintext "), "{body}");
    // A TLS ClientHello is not detected: it is read as (bad) HTTP and the handshake fails.
    assert!(mtls_client(&ca, server.addr).await.is_err());
}

#[tokio::test]
async fn port_level_mode_applies_to_the_listener_port() {
    let ca = ca("cluster.local");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  mtls: {{mode: PERMISSIVE}}
  portLevelMtls:
    {port}: {{mode: STRICT}}
"
    );
    let mesh = mesh(Some(&ca), &yaml).await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(&mesh, listener, app(AppState::default())).into_future());
    assert!(h1_get(addr, "/whoami", &[]).await.is_err());
    assert!(mtls_client(&ca, addr).await.is_ok());
}

#[tokio::test]
async fn strict_without_an_identity_fails_closed() {
    let mesh = mesh(None, &peer_authn("STRICT")).await;
    let server = start(&mesh, ServeOptions::new()).await;
    assert!(h1_get(server.addr, "/whoami", &[]).await.is_err());
    assert_eq!(server.handled(), 0);

    // PERMISSIVE without an identity serves plaintext.
    let mesh = self::mesh(None, &peer_authn("PERMISSIVE")).await;
    let server = start(&mesh, ServeOptions::new()).await;
    assert_eq!(h1_get(server.addr, "/whoami", &[]).await.unwrap().0, 200);
}

#[tokio::test]
async fn identity_files_serve_mutual_tls() {
    let ca = ca("cluster.local");
    let dir = tempfile::tempdir().unwrap();
    ca.issue("default", "reviews", HOUR)
        .unwrap()
        .write_istio_layout(dir.path())
        .unwrap();
    let mesh = Mesh::builder()
        .workload(workload())
        .identity_files(dir.path())
        .build()
        .await
        .unwrap();
    let snapshot =
        mesh_core::istio::load_str("t.yaml", &peer_authn("STRICT"), mesh.context()).unwrap();
    mesh.apply(snapshot);
    let server = start(&mesh, ServeOptions::new()).await;
    let mut client = mtls_client(&ca, server.addr).await.unwrap();
    assert_eq!(get(&mut client, "/whoami").await.unwrap().0, 200);

    // Missing files: the mesh does not start.
    let empty = tempfile::tempdir().unwrap();
    let err = Mesh::builder()
        .identity_files(empty.path())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, mesh_core::MeshError::Identity(_)), "{err}");
}

#[tokio::test]
async fn denied_requests_never_reach_the_handler() {
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &format!("{}{DENY_ADMIN}", peer_authn("STRICT"))).await;
    let server = start(&mesh, ServeOptions::new()).await;
    let mut client = mtls_client(&ca, server.addr).await.unwrap();
    assert_eq!(
        get(&mut client, "/admin").await.unwrap(),
        (403, "RBAC: access denied".into())
    );
    // A path that normalises to /admin is judged as /admin.
    assert_eq!(get(&mut client, "/x/../admin").await.unwrap().0, 403);
    assert_eq!(get(&mut client, "/whoami").await.unwrap().0, 200);
    assert_eq!(server.handled(), 1);
}

/// Captures access log events as field maps.
#[derive(Clone, Default)]
struct AccessLog(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AccessLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != mesh_tower::telemetry::ACCESS_LOG_TARGET {
            return;
        }
        struct Visit<'a>(&'a mut BTreeMap<String, String>);
        impl tracing::field::Visit for Visit<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.insert(f.name().to_owned(), format!("{v:?}"));
            }
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.insert(f.name().to_owned(), v.to_owned());
            }
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Visit(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
}

/// `name{labels} value` lines of a Prometheus text rendering for `name`.
fn series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, String)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let labels = labels
                .split("\",")
                .map(|kv| {
                    let (k, v) = kv.split_once("=\"").unwrap();
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            Some((labels, value.to_owned()))
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn destination_metrics_access_log_and_metadata_exchange() {
    let recorder = mesh_tower::telemetry::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let log = AccessLog::default();
    let _log = tracing::subscriber::set_default(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        log.clone(),
    ));

    let ca = ca("cluster.local");
    let mesh = mesh(
        Some(&ca),
        &format!("{}{DENY_ADMIN}", peer_authn("PERMISSIVE")),
    )
    .await;
    let telemetry = Telemetry::new().access_log(AccessLogMode::All);
    let server = start(&mesh, ServeOptions::new().telemetry(telemetry)).await;
    let port = server.addr.port().to_string();

    // Plaintext, from `productpage` (metadata exchange), continuing the caller's trace.
    let caller =
        Workload::new("default", "productpage").labels([("app", "productpage"), ("version", "v1")]);
    let metadata = PeerMetadata::from_workload(&caller, "Kubernetes").encode();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let (status, headers, body) = h1_get(
        server.addr,
        "/whoami?secret=1",
        &[
            (PEER_METADATA_HEADER, &metadata),
            ("traceparent", &traceparent),
            ("x-request-id", "req-1"),
            ("user-agent", "curl/8.5.0"),
            ("x-forwarded-for", "10.1.2.3"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    // The handler ran inside the caller's trace.
    assert_eq!(body, format!("plaintext {trace_id}"));
    // Our metadata on the response: the caller learns who answered.
    let ours = PeerMetadata::decode(headers[PEER_METADATA_HEADER].as_bytes()).unwrap();
    assert_eq!(ours.workload().name.as_deref(), Some("reviews"));

    // Mutual TLS, and a denied request.
    let mut client = mtls_client(&ca, server.addr).await.unwrap();
    assert_eq!(get(&mut client, "/whoami").await.unwrap().0, 200);
    assert_eq!(get(&mut client, "/admin").await.unwrap().0, 403);
    drop(client);

    // Records are written when the response body ends; the client has read every body, so the
    // server finished them. Let the server task run to the end of its current work.
    let text = tokio::time::timeout(LIMIT, async {
        loop {
            let text = handle.render();
            if series(&text, "istio_requests_total").len() == 3 {
                return text;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("three series");

    let common = [
        ("reporter", "destination"),
        ("destination_workload", "reviews"),
        ("destination_workload_namespace", "default"),
        ("destination_app", "reviews"),
        ("destination_version", "v1"),
        ("destination_canonical_service", "reviews"),
        ("destination_canonical_revision", "v1"),
        ("destination_cluster", "Kubernetes"),
        ("destination_service", "reviews.default.svc.cluster.local"),
        ("destination_service_name", "reviews"),
        ("destination_service_namespace", "default"),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("grpc_response_status", ""),
    ];
    let unknown_source = [
        ("source_workload", "unknown"),
        ("source_workload_namespace", "unknown"),
        ("source_app", "unknown"),
        ("source_version", "unknown"),
        ("source_canonical_service", "unknown"),
        // Istio's default revision for a peer without metadata (istio_stats.cc: `latest_`).
        ("source_canonical_revision", "latest"),
        ("source_cluster", "unknown"),
    ];
    // Metadata from a plaintext peer is not believed (Istio exchanges it over mTLS only).
    let mut plaintext = labels(&common);
    plaintext.extend(labels(&unknown_source));
    plaintext.extend(labels(&[
        ("source_principal", "unknown"),
        ("destination_principal", "unknown"),
        ("connection_security_policy", "none"),
        ("response_code", "200"),
    ]));
    let mut mtls = labels(&common);
    mtls.extend(labels(&unknown_source));
    mtls.extend(labels(&[
        // A caller without metadata but with a certificate: its namespace from the SAN
        // (istio_stats.cc `getNamespace`, issue #14).
        ("source_workload_namespace", "foo"),
        ("source_principal", SLEEP),
        ("destination_principal", REVIEWS),
        ("connection_security_policy", "mutual_tls"),
        ("response_code", "200"),
    ]));
    let mut denied = mtls.clone();
    denied.insert("response_code".into(), "403".into());

    let got = series(&text, "istio_requests_total");
    for want in [&plaintext, &mtls, &denied] {
        let found: Vec<_> = got
            .iter()
            .filter(|(l, _)| {
                want.iter()
                    .all(|(k, v)| l.get(k).map(String::as_str) == Some(v.as_str()))
            })
            .collect();
        assert_eq!(found.len(), 1, "{want:?} in\n{text}");
        assert_eq!(found[0].1, "1", "{want:?}");
    }
    // Response bytes of the denied request: the RBAC body.
    let denied_bytes: Vec<_> = series(&text, "istio_response_bytes_sum")
        .into_iter()
        .filter(|(l, _)| l.get("response_code").map(String::as_str) == Some("403"))
        .collect();
    assert_eq!(denied_bytes.len(), 1);
    assert_eq!(denied_bytes[0].1, "19"); // "RBAC: access denied"

    // The access log: one event per request, in order.
    let events = log.0.lock().unwrap().clone();
    assert_eq!(events.len(), 3, "{events:?}");
    let field = |i: usize, k: &str| events[i].get(k).cloned().unwrap_or_default();
    assert_eq!(field(0, "reporter"), "destination");
    assert_eq!(field(0, "method"), "GET");
    assert_eq!(field(0, "path"), "/whoami"); // no query string
    assert_eq!(field(0, "status"), "200");
    assert_eq!(field(0, "connection_security_policy"), "none");
    assert_eq!(field(0, "request_id"), "req-1");
    assert_eq!(field(0, "trace_id"), trace_id);
    assert_eq!(field(0, "authority"), "reviews:9080");
    assert!(field(0, "peer_address").starts_with("127.0.0.1:"));
    assert_eq!(field(0, "source_principal"), "");
    assert_eq!(field(1, "connection_security_policy"), "mutual_tls");
    assert_eq!(field(1, "source_principal"), SLEEP);
    assert_eq!(field(1, "destination_principal"), REVIEWS);
    assert_eq!(field(1, "status"), "200");
    assert_eq!(field(2, "path"), "/admin");
    assert_eq!(field(2, "status"), "403");
    assert_eq!(field(2, "bytes_sent"), "19");
    assert_eq!(field(2, "source_principal"), SLEEP);
    assert_eq!(field(1, "request_id").len(), 36); // generated UUID
    // The message is the line of Istio's default text format (istio
    // pilot/pkg/model/telemetry_logging.go `EnvoyTextLogFormat`), every field in its place.
    assert_eq!(field(0, "user_agent"), "curl/8.5.0");
    let line = field(0, "message");
    let peer = field(0, "peer_address");
    let want = format!(
        "\"GET /whoami HTTP/1.1\" 200 - via_upstream - \"-\" 0 {} ",
        field(0, "bytes_sent")
    );
    assert!(
        line.starts_with('[') && line.contains(&want),
        "{line}\n{want}"
    );
    let want = format!(
        " - \"10.1.2.3\" \"curl/8.5.0\" \"req-1\" \"reviews:9080\" \"-\" inbound|{port}|| - 127.0.0.1:{port} {peer} - default"
    );
    assert!(line.ends_with(&want), "{line}\n{want}");
    let denied = field(2, "message");
    assert!(
        denied.contains("\"GET /admin HTTP/2\" 403 - rbac_access_denied - \"-\" 0 19 "),
        "{denied}"
    );
    assert_eq!(field(2, "response_code_details"), "rbac_access_denied");
}

#[tokio::test]
async fn graceful_shutdown_completes_fifty_streaming_responses() {
    const STREAMS: usize = 50;
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &peer_authn("STRICT")).await;
    let mut server = start(&mesh, ServeOptions::new().drain_timeout(LIMIT)).await;
    let mut client = mtls_client(&ca, server.addr).await.unwrap();

    // Fifty streams, each having received its first chunk.
    let mut bodies = Vec::new();
    for _ in 0..STREAMS {
        client.ready().await.unwrap();
        let request = http::Request::get("http://reviews/stream")
            .body(Empty::new())
            .unwrap();
        let response = client.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "start;");
        bodies.push(body);
    }
    assert_eq!(server.handled(), STREAMS);

    // Shut down: the server stops accepting...
    server.stop.take().unwrap().send(()).unwrap();
    server.stopping.take().unwrap().await.unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
    assert!(!server.done.is_finished());

    // ...and every stream still completes.
    server.state.gate.add_permits(STREAMS);
    for mut body in bodies {
        let rest = tokio::time::timeout(LIMIT, async {
            let mut rest = Vec::new();
            while let Some(frame) = body.frame().await {
                rest.extend_from_slice(&frame.unwrap().into_data().unwrap());
            }
            rest
        })
        .await
        .unwrap();
        assert_eq!(rest, b"end");
    }
    tokio::time::timeout(LIMIT, server.done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn drain_deadline_closes_what_is_left() {
    let mesh = mesh(None, &peer_authn("PERMISSIVE")).await;
    let mut server = start(
        &mesh,
        ServeOptions::new().drain_timeout(Duration::from_millis(100)),
    )
    .await;
    let mut client = h2_client(TcpStream::connect(server.addr).await.unwrap()).await;
    client.ready().await.unwrap();
    let request = http::Request::get("http://reviews/stream")
        .body(Empty::new())
        .unwrap();
    let mut body = client.send_request(request).await.unwrap().into_body();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "start;"
    );
    server.stop.take().unwrap().send(()).unwrap();
    // The gate never opens: the server closes the stream at the deadline.
    tokio::time::timeout(LIMIT, server.done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let end = tokio::time::timeout(LIMIT, body.frame()).await.unwrap();
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
}

#[tokio::test]
async fn at_the_connection_cap_busy_connections_hold_and_idle_ones_make_room() {
    let mesh = mesh(None, &peer_authn("PERMISSIVE")).await;
    let server = start(&mesh, ServeOptions::new().max_connections(1)).await;

    // The first connection is busy: a streaming response is in flight.
    let mut first = h2_client(TcpStream::connect(server.addr).await.unwrap()).await;
    first.ready().await.unwrap();
    let request = http::Request::get("http://reviews/stream")
        .body(Empty::new())
        .unwrap();
    let mut body = first.send_request(request).await.unwrap().into_body();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "start;"
    );

    // The second waits in the accept queue: a connection with a request in flight is never
    // closed to make room.
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(server.addr).await.unwrap());
    let (mut second, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::get("/whoami")
        .header("host", "reviews")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut pending = Box::pin(second.send_request(request));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut pending)
            .await
            .is_err(),
        "a second connection was served over the limit"
    );
    assert_eq!(server.handled(), 1);

    // The first's request ends and it goes idle: it is closed to let the second in, before
    // any idle timeout.
    server.state.gate.add_permits(1);
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "end"
    );
    drop(body);
    let response = tokio::time::timeout(LIMIT, pending).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::timeout(LIMIT, async {
        while !first.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn http2_limits_are_advertised() {
    let defaults = ServeOptions::new();
    assert_eq!(defaults.get_max_pending_accept_reset_streams(), 20);
    assert_eq!(defaults.get_max_local_error_reset_streams(), 1024);
    assert_eq!(defaults.get_max_concurrent_streams(), 100);
    assert_eq!(defaults.get_max_header_list_size(), 60 * 1024);

    let mesh = mesh(None, &peer_authn("PERMISSIVE")).await;
    let server = start(
        &mesh,
        ServeOptions::new()
            .max_concurrent_streams(7)
            .max_header_list_size(16 * 1024),
    )
    .await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let request = http::Request::get("http://reviews/whoami")
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = tokio::select! {
        r = response => r.unwrap(),
        r = &mut conn => panic!("connection ended: {r:?}"),
    };
    assert_eq!(response.status(), 200);
    assert_eq!(conn.max_concurrent_send_streams(), 7);

    // A header block over the advertised limit is refused, not handed to the app.
    let big = "x".repeat(20 * 1024);
    let request = http::Request::get("http://reviews/whoami")
        .header("x-big", big)
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let outcome = tokio::select! {
        r = response => r.map(|r| r.status().as_u16()).map_err(|e| e.to_string()),
        r = &mut conn => Err(format!("connection ended: {r:?}")),
    };
    assert_eq!(outcome, Ok(431));
    assert_eq!(server.handled(), 1);
}

#[tokio::test]
async fn rapid_reset_flood_closes_the_connection() {
    let mesh = mesh(None, &peer_authn("PERMISSIVE")).await;
    let server = start(&mesh, ServeOptions::new()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
    // Open and immediately reset streams, all in one burst (CVE-2023-44487). Without the
    // limit (e.g. `max_pending_accept_reset_streams(100_000)`) the connection stays up.
    for _ in 0..200 {
        let request = http::Request::get("http://reviews/stream")
            .body(())
            .unwrap();
        let (_, mut stream) = send.send_request(request, false).unwrap();
        stream.send_reset(h2::Reason::CANCEL);
    }
    let ended = tokio::time::timeout(LIMIT, conn).await.unwrap();
    let error = ended.unwrap_err();
    assert!(error.is_go_away() && error.is_remote(), "{error:?}");
    assert_eq!(error.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM));
    assert!(server.handled() < 200);
}

/// Writes `request` on a new plaintext connection and reads until the server closes it.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    // A refused connection may end in a reset: what was read is the answer.
    let _ = tokio::time::timeout(LIMIT, tcp.read_to_end(&mut out))
        .await
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

const DENY_DELETE: &str = "---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-delete, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: [DELETE]}}]
";

/// Regression: `delete /any` reached the handler past a DENY on `DELETE`. Envoy's codecs
/// refuse a method that is not upper case with 400 before any filter
/// (`source/common/http/http1/balsa_parser.cc`, custom methods off).
#[tokio::test]
async fn lower_case_methods_are_refused_before_authorization() {
    let mesh = mesh(None, &format!("{}{DENY_DELETE}", peer_authn("PERMISSIVE"))).await;
    let server = start(&mesh, ServeOptions::new()).await;
    for method in ["delete", "Delete", "dElEtE"] {
        let response = raw(
            server.addr,
            format!("{method} /any HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(status_of(&response), "400", "{method}: {response}");
    }
    let response = raw(
        server.addr,
        b"DELETE /any HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&response), "403", "{response}");

    // The same over HTTP/2.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method("delete")
        .uri("http://reviews/any")
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 400);
    assert_eq!(server.handled(), 0);

    let response = raw(
        server.addr,
        b"GET /any HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&response), "200", "{response}");
    assert_eq!(server.handled(), 1);
}

/// Regression: HTTP/1.1 requests with two `Host` headers, or none, were served. RFC 9112
/// §3.2 requires 400.
#[tokio::test]
async fn http11_requests_need_exactly_one_valid_host() {
    let mesh = mesh(None, &peer_authn("PERMISSIVE")).await;
    let server = start(&mesh, ServeOptions::new()).await;
    for request in [
        &b"GET /any HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET /any HTTP/1.1\r\nHost: reviews\r\nHost: ratings\r\nConnection: close\r\n\r\n",
        b"GET /any HTTP/1.1\r\nHost: reviews\r\nHost: reviews\r\nConnection: close\r\n\r\n",
        b"GET /any HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
    ] {
        let response = raw(server.addr, request).await;
        assert_eq!(
            status_of(&response),
            "400",
            "{}: {response}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(server.handled(), 0);
    // HTTP/1.0 does not require Host.
    let response = raw(server.addr, b"GET /any HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&response), "200", "{response}");
}

/// Regression: a caller's `x-forwarded-client-cert` reached the app unchanged. istiod sets
/// `forward_client_cert_details: APPEND_FORWARD` with subject, URI and DNS on sidecar inbound
/// (`buildSidecarInboundHTTPOpts`, pilot/pkg/networking/core/listener_builder.go); Envoy's
/// Envoy's `SANITIZE_SET` (`ConnectionManagerUtility::mutateXfccRequestHeader`): XFCC is
/// removed on non-mTLS connections and replaced by the verified peer's element on mTLS ones,
/// so a forged element never reaches the app.
#[tokio::test]
async fn xfcc_is_removed_on_plaintext_and_replaced_on_mutual_tls() {
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &peer_authn("PERMISSIVE")).await;
    let server = start(&mesh, ServeOptions::new()).await;
    const FORGED: &str = "By=spiffe://cluster.local/ns/default/sa/reviews;URI=spiffe://cluster.local/ns/istio-system/sa/admin";

    let (status, _, body) = h1_get(server.addr, "/xfcc", &[("x-forwarded-client-cert", FORGED)])
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, ""));

    let mut client = mtls_client(&ca, server.addr).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        client.ready().await.unwrap();
        let request = http::Request::get("http://reviews/xfcc")
            .header("x-forwarded-client-cert", FORGED)
            .body(Empty::new())
            .unwrap();
        let response = client.send_request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        seen.push(String::from_utf8(body.to_vec()).unwrap());
    }
    assert_eq!(seen[0], seen[1]);
    let ours = seen[0].as_str();
    assert!(!ours.contains(','), "{ours}");
    assert!(!ours.contains("istio-system"), "{ours}");
    let rest = ours
        .strip_prefix(&format!("By={REVIEWS};Hash="))
        .unwrap_or_else(|| panic!("{ours}"));
    let (hash, rest) = rest.split_once(';').unwrap();
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(rest, format!("Subject=\"\";URI={SLEEP}"));

    // Without a forged header the app sees only ours.
    client.ready().await.unwrap();
    let response = client
        .send_request(
            http::Request::get("http://reviews/xfcc")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, ours.as_bytes());
}

/// Captures `mesh::inbound` log lines.
#[derive(Clone, Default)]
struct InboundLog(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for InboundLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "mesh::inbound" {
            return;
        }
        struct Visit<'a>(&'a mut String);
        impl tracing::field::Visit for Visit<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={v:?} ", f.name()));
            }
        }
        let mut line = String::new();
        event.record(&mut Visit(&mut line));
        self.0.lock().unwrap().push(line);
    }
}

/// Regression: every refused connection logged a line (log amplification).
#[tokio::test]
async fn refused_connections_are_counted_and_logged_at_a_bounded_rate() {
    let recorder = mesh_tower::telemetry::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let log = InboundLog::default();
    let _log = tracing::subscriber::set_default(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        log.clone(),
    ));
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &peer_authn("STRICT")).await;
    let server = start(&mesh, ServeOptions::new()).await;
    for _ in 0..20 {
        let response = raw(
            server.addr,
            b"GET /whoami HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(response, "");
    }
    let refused = || series(&handle.render(), "mesh_inbound_connections_refused_total");
    tokio::time::timeout(LIMIT, async {
        while refused().iter().all(|(_, v)| v != "20") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{:?}", refused()));
    assert_eq!(
        refused(),
        [(
            labels(&[("reason", "plaintext_on_strict")]),
            "20".to_owned()
        )]
    );
    let lines: Vec<_> = log
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("connection refused"))
        .cloned()
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(server.handled(), 0);
}

/// Regression: a TCP connection that never sends a byte held its slot forever on a DISABLE
/// port, and an idle connection after a mutual-TLS handshake was never closed.
#[tokio::test]
async fn silent_connections_are_closed_by_the_header_read_timeout() {
    use tokio::io::AsyncReadExt;
    let timeout = Duration::from_millis(300);
    // (PERMISSIVE and STRICT sniff first, so the handshake timeout bounds them before this.)
    for mode in ["DISABLE"] {
        let ca = ca("cluster.local");
        let mesh = mesh(Some(&ca), &peer_authn(mode)).await;
        let server = start(&mesh, ServeOptions::new().header_read_timeout(timeout)).await;
        let started = tokio::time::Instant::now();
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(LIMIT, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{mode}: a silent connection was kept"));
        assert!(matches!(n, Ok(0) | Err(_)), "{mode}: {n:?}");
        assert!(
            started.elapsed() >= timeout.min(Duration::from_millis(250)),
            "{mode}"
        );
    }

    // After a mutual-TLS handshake, silence is closed the same way.
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &peer_authn("STRICT")).await;
    let server = start(&mesh, ServeOptions::new().header_read_timeout(timeout)).await;
    let connector = TlsConnector::new(identity(&ca, "foo", "sleep"));
    let mut tls = connector
        .connect(
            TcpStream::connect(server.addr).await.unwrap(),
            sni(),
            &ExpectedIdentities::any_in_trust_domain(),
        )
        .await
        .unwrap()
        .stream;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(LIMIT, tls.read(&mut buf))
        .await
        .expect("a silent mutual-TLS connection was kept");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

/// Regression: idle HTTP/2 connections (mutual TLS or not) were never closed.
#[tokio::test]
async fn idle_connections_are_closed_by_the_idle_timeout() {
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &peer_authn("PERMISSIVE")).await;
    let idle = Duration::from_millis(300);
    let server = start(&mesh, ServeOptions::new().idle_timeout(idle)).await;
    let mut clients = vec![
        mtls_client(&ca, server.addr).await.unwrap(),
        h2_client(TcpStream::connect(server.addr).await.unwrap()).await,
    ];
    for client in &mut clients {
        assert_eq!(get(client, "/whoami").await.unwrap().0, 200);
    }
    let idle_from = tokio::time::Instant::now();
    for client in &clients {
        tokio::time::timeout(LIMIT, async {
            while !client.is_closed() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("an idle connection was kept");
    }
    assert!(idle_from.elapsed() >= idle - Duration::from_millis(50));
}

/// A client that stops reading an HTTP/1 response no longer pins the connection: no byte
/// moves for the stream idle timeout, so it is closed (Envoy's `stream_idle_timeout`).
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_by_the_stream_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mesh = mesh(None, &peer_authn("PERMISSIVE")).await;
    let server = start(
        &mesh,
        ServeOptions::new()
            .stream_idle_timeout(Duration::from_millis(300))
            .close_grace(Duration::from_millis(100)),
    )
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /big HTTP/1.1\r\nHost: reviews\r\n\r\n")
        .await
        .unwrap();
    // Read nothing until well past the timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut out))
        .await
        .expect("the stalled connection was kept")
        .ok();
    assert!(out.starts_with(b"HTTP/1.1 200"));
    assert!(
        out.len() < BIG,
        "the whole response was buffered: {}",
        out.len()
    );
}

/// Item 1 regression, with the limits taken from Istio config: a client that sets
/// SETTINGS_INITIAL_WINDOW_SIZE=0 and never opens it pinned each response after HEADERS,
/// forever. `ProxyConfig.connectionSettings` (applied to every HCM by istiod's
/// `applyConnectionSettingsToHCM`) sets the stream idle timeout, which now resets the stream,
/// and the HTTP/2 settings the server advertises.
#[tokio::test]
async fn connection_settings_bound_a_zero_window_stream() {
    let yaml = "connectionSettings:
  httpStreamIdleTimeout: 300ms
  httpMaxConcurrentStreams: 5
  http2InitialStreamWindowSize: 100000
";
    let settings = mesh_tower::ConnectionSettings::from_proxy_config("proxy.yaml", yaml).unwrap();
    let mesh = mesh(None, &peer_authn("PERMISSIVE")).await;
    let server = start(&mesh, ServeOptions::new().connection_settings(&settings)).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut send = send.ready().await.unwrap();
    let started = tokio::time::Instant::now();
    let request = http::Request::get("http://reviews/big").body(()).unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = tokio::time::timeout(LIMIT, response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // No window is ever granted: the only thing that can end the stream is the server.
    let end = tokio::time::timeout(LIMIT, body.data())
        .await
        .expect("a zero-window stream stayed pinned");
    let error = match end {
        Some(Err(error)) => error,
        other => panic!("expected a reset, got {other:?}"),
    };
    assert_eq!(error.reason(), Some(h2::Reason::CANCEL), "{error:?}");
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(290) && held < Duration::from_secs(5),
        "{held:?}"
    );
    drop(send);
    conn.abort();
    // The advertised limits are the configured ones.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let mut send = tokio::select! {
        s = send.ready() => s.unwrap(),
        r = &mut conn => panic!("connection ended: {r:?}"),
    };
    let request = http::Request::get("http://reviews/whoami")
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = tokio::select! {
        r = response => r.unwrap(),
        r = &mut conn => panic!("connection ended: {r:?}"),
    };
    assert_eq!(response.status(), 200);
    assert_eq!(conn.max_concurrent_send_streams(), 5);
}

/// `connectionSettings.httpHeadersWithUnderscoresAction` (Envoy's
/// `headers_with_underscores_action`): REJECT_REQUEST answers 400 before the application,
/// DROP_HEADER removes the header, the default serves it.
#[tokio::test]
async fn headers_with_underscores_follow_the_configured_action() {
    let request =
        b"GET /any HTTP/1.1\r\nHost: reviews\r\nx_user: admin\r\nConnection: close\r\n\r\n";
    let mesh = mesh(None, &peer_authn("PERMISSIVE")).await;
    let yaml = "connectionSettings:
  httpHeadersWithUnderscoresAction: HEADERS_WITH_UNDERSCORES_REJECT_REQUEST
";
    let settings = mesh_tower::ConnectionSettings::from_proxy_config("proxy.yaml", yaml).unwrap();
    let server = start(&mesh, ServeOptions::new().connection_settings(&settings)).await;
    let response = raw(server.addr, request).await;
    assert_eq!(status_of(&response), "400", "{response}");
    assert_eq!(server.handled(), 0);

    let server = start(
        &mesh,
        ServeOptions::new().headers_with_underscores(mesh_tower::HeadersWithUnderscores::Allow),
    )
    .await;
    let response = raw(server.addr, request).await;
    assert_eq!(status_of(&response), "200", "{response}");
    assert_eq!(server.handled(), 1);
}

/// The server keeps each connection's peer workload and metric handles (#13), but a request is
/// still labelled by its own `x-envoy-peer-metadata` and status: one mutual-TLS connection
/// sending two callers' metadata, none, and a denied request, gives one series (and one graph
/// edge) per caller and status, each counting its own requests. No access log subscriber: the
/// path that skips the log's facts.
#[tokio::test]
async fn one_connection_labels_each_request_by_its_own_metadata_and_status() {
    let recorder = mesh_tower::telemetry::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let ca = ca("cluster.local");
    let mesh = mesh(Some(&ca), &format!("{}{DENY_ADMIN}", peer_authn("STRICT"))).await;
    let telemetry = Telemetry::new();
    let server = start(&mesh, ServeOptions::new().telemetry(telemetry.clone())).await;
    let encoded = |name: &str| {
        let caller = Workload::new("default", name).labels([("app", name), ("version", "v1")]);
        PeerMetadata::from_workload(&caller, "Kubernetes").encode()
    };
    let (productpage, ratings) = (encoded("productpage"), encoded("ratings"));
    let mut client = mtls_client(&ca, server.addr).await.unwrap();
    let calls = [
        ("/whoami", Some(&productpage), 200),
        ("/whoami", Some(&ratings), 200),
        ("/whoami", Some(&productpage), 200),
        ("/whoami", None, 200),
        ("/admin", Some(&productpage), 403),
        ("/whoami", Some(&ratings), 200),
    ];
    for (path, metadata, status) in calls {
        client.ready().await.unwrap();
        let mut request =
            http::Request::get(format!("http://reviews.default.svc.cluster.local{path}"));
        if let Some(metadata) = metadata {
            request = request.header(PEER_METADATA_HEADER, metadata.as_str());
        }
        let response = client
            .send_request(request.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        response.into_body().collect().await.unwrap();
    }
    drop(client);

    let text = tokio::time::timeout(LIMIT, async {
        loop {
            let text = handle.render();
            if series(&text, "istio_requests_total").len() == 4 {
                return text;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("four series");
    let count = |source: &str, code: &str| {
        let found: Vec<_> = series(&text, "istio_requests_total")
            .into_iter()
            .filter(|(l, _)| {
                l.get("source_workload").map(String::as_str) == Some(source)
                    && l.get("response_code").map(String::as_str) == Some(code)
            })
            .collect();
        assert_eq!(found.len(), 1, "{source} {code} in\n{text}");
        found[0].1.clone()
    };
    assert_eq!(count("productpage", "200"), "2");
    assert_eq!(count("ratings", "200"), "2");
    assert_eq!(count("unknown", "200"), "1");
    assert_eq!(count("productpage", "403"), "1");

    let graph = telemetry
        .service_graph()
        .snapshot(tokio::time::Instant::now());
    let mut edges: Vec<_> = graph
        .reported
        .iter()
        .map(|e| (e.source.as_str(), e.requests, e.errors))
        .collect();
    edges.sort();
    // The caller's namespace is its certificate's, whatever its metadata claims; a caller
    // without metadata is still placed in its certificate's namespace. Istio's rule (istio/proxy
    // `source/extensions/filters/http/istio_stats/istio_stats.cc`, `populatePeerInfo`, checked
    // for #14 at the last istio/proxy revision before the filter moved to envoyproxy/envoy):
    // `peer_namespace = getNamespace(peer_san)`, and the metadata's `namespace_name_` only when
    // that is empty; `source_workload_namespace` is `peer_namespace`.
    assert_eq!(
        edges,
        [
            ("foo/productpage/v1", 3, 0),
            ("foo/ratings/v1", 2, 0),
            ("foo/unknown/unknown", 1, 0),
        ]
    );
}
