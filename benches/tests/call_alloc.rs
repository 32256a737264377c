//! The allocation budget of one call through mesh, per side: what `MeshClient` adds to a call
//! and what `mesh_tower::serve` adds to it, beyond bare hyper + rustls doing the same exchange.
//!
//! One process, one thread (a current-thread tokio runtime; no libtest harness, see
//! `benches/Cargo.toml`), so dhat's count is exactly the calls' work and the same on every run.
//! The configuration is the sidecar-tax one (`benches/sidecar-tax/setup.rs` and `server.rs`):
//! the greeter service (ISTIO_MUTUAL, LEAST_REQUEST, one route) on the client; STRICT mutual
//! TLS, an ALLOW policy for `client`, metrics recorded into a real Prometheus recorder and no
//! access log on the server; the greeter answers `SayHello` with its 1 KiB payload.
//!
//! Four arms over the same certificates, each a sequence of unary gRPC calls, each awaited to
//! the end of its response body:
//!
//! | arm | client | server |
//! | --- | --- | --- |
//! | bare | hyper HTTP/2 over tokio-rustls | hyper HTTP/2 over tokio-rustls |
//! | client | `MeshClient` | hyper HTTP/2 over tokio-rustls |
//! | server | hyper HTTP/2 over tokio-rustls | `mesh_tonic::serve` |
//! | both | `MeshClient` | `mesh_tonic::serve` |
//!
//! Every arm sends the same bytes (a hand-framed gRPC request; no tonic client, whose own cost
//! would land on both sides of the subtraction) to the same tonic `Routes`. After a warm-up
//! (connections open, caches and metric series filled), [`CALLS`] calls of each arm are
//! counted; mesh's client cost per call is (client − bare) / CALLS, its server cost
//! (server − bare) / CALLS, each held to its budget below. `both` is printed as a check that
//! the two sides add up.
//!
//! The profile goes to the temp dir, never the source tree.
//!
//! To find what allocates, `CALL_ALLOC_SITES=<arm>` (`bare`, `client`, `server`, `both`) runs
//! that arm alone under a profiling (not testing) dhat and prints each allocation site with
//! its count per call and its first frames, most frequent first, instead of the budget check:
//! `CALL_ALLOC_SITES=client cargo test -p mesh-benches --test call_alloc`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.
#![allow(missing_docs, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mesh_benches::e2e::greeter::{self, proto};
use mesh_core::identity::{CertificateAuthority, ExpectedIdentities, TlsIdentity};
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::{AccessLogMode, Telemetry};
use prost::Message as _;
use rustls_pki_types::{ServerName, UnixTime};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocations `MeshClient` may add to one call, beyond bare hyper + rustls (#13's target: 10;
/// measured 9.1). They include what the peer's HPACK decoder spends on the two per-call values
/// (`traceparent`, `x-request-id`; sent never-indexed, see `mesh_tower::trace::hpack`), the
/// `UpstreamPeer` response extension (3), the gRPC message count shared by the call's two
/// bodies (1) and the boxed call future (1).
const CLIENT_BUDGET: u64 = 10;
/// Allocations `mesh_tower::serve` may add to one call, beyond bare hyper + rustls.
/// (9 since the gRPC message counter of the request body, one shared counter per gRPC call.)
const SERVER_BUDGET: u64 = 9;

/// Calls counted per arm.
const CALLS: u64 = 200;
/// Calls per arm before counting.
const WARM_UP: u64 = 50;
/// Bytes of payload in each request and reply (sidecar-tax's default).
const PAYLOAD: usize = 1024;

// The sidecar-tax configuration: the same certificates' names and Istio config.
use mesh_benches::e2e::config::{
    CLIENT_SA, GREETER_SA, NAMESPACE, SERVER_YAML, TRUST_DOMAIN, client_yaml,
};

/// Runs without libtest's harness: its main thread's bookkeeping would race the count.
fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match std::env::var("CALL_ALLOC_SITES") {
        Ok(arm) => runtime.block_on(sites(&arm)),
        Err(_) => {
            runtime.block_on(call_budget());
            println!("test call_budget ... ok");
        }
    }
}

type CallFuture = Pin<Box<dyn Future<Output = Response<Bytes>>>>;

/// One side's way of making a call.
#[derive(Clone)]
enum Caller {
    Bare(http2::SendRequest<Full<Bytes>>),
    Mesh(MeshClient),
}

impl Caller {
    fn call(&self, request: Request<Full<Bytes>>) -> CallFuture {
        match self.clone() {
            Caller::Bare(mut sender) => Box::pin(async move {
                let response = sender.send_request(request).await.expect("bare call");
                collect(response).await
            }),
            Caller::Mesh(client) => Box::pin(async move {
                let response = client.oneshot(request).await.expect("infallible");
                collect(response).await
            }),
        }
    }
}

async fn collect<B>(response: Response<B>) -> Response<Bytes>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("response body");
    let grpc = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| parts.headers.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(parts.status, 200, "HTTP status");
    assert_eq!(grpc.as_deref(), Some("0"), "grpc-status");
    Response::from_parts(parts, collected.to_bytes())
}

/// The gRPC request every arm sends: `SayHello` with a [`PAYLOAD`]-byte payload, its `te` and
/// `content-type` static header values as tonic's client writes them
/// (`tonic/src/client/grpc.rs`, `HeaderValue::from_static`), not values copied per call.
fn say_hello(frame: &Bytes) -> Request<Full<Bytes>> {
    Request::post("http://greeter:50051/helloworld.Greeter/SayHello")
        .version(http::Version::HTTP_2)
        .header(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        )
        .header(http::header::TE, http::HeaderValue::from_static("trailers"))
        .body(Full::new(frame.clone()))
        .unwrap()
}

/// A gRPC length-prefixed message frame.
fn grpc_frame(message: &proto::HelloRequest) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + encoded.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).unwrap());
    frame.put_slice(&encoded);
    frame.freeze()
}

fn identity(ca: &CertificateAuthority, sa: &str) -> TlsIdentity {
    let issued = ca
        .issue(NAMESPACE, sa, Duration::from_secs(24 * 3600))
        .unwrap();
    TlsIdentity::new(issued.credentials(UnixTime::now()).unwrap()).unwrap()
}

/// A bare hyper HTTP/2 server over rustls mutual TLS (sidecar-tax's `serve_tls`).
async fn bare_server(identity: &TlsIdentity) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                tcp.set_nodelay(true).unwrap();
                let tls = acceptor.accept(tcp).await.unwrap();
                let routes = greeter::routes();
                let service =
                    hyper::service::service_fn(move |request| routes.clone().oneshot(request));
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// mesh's inbound stack serving the greeter (sidecar-tax's mesh server role).
async fn mesh_server(identity: TlsIdentity, dir: &std::path::Path) -> SocketAddr {
    let config = dir.join("greeter.yaml");
    std::fs::write(&config, SERVER_YAML).unwrap();
    let mesh = Mesh::builder()
        .workload(Workload::new(NAMESPACE, GREETER_SA))
        .identity(identity)
        .config_path(config)
        .watch(false)
        .build()
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options =
        mesh_tower::ServeOptions::new().telemetry(Telemetry::new().access_log(AccessLogMode::Off));
    tokio::spawn(async move {
        mesh_tonic::serve(&mesh, listener, greeter::routes())
            .options(options)
            .await
            .unwrap();
    });
    addr
}

/// A bare hyper HTTP/2 client over rustls mutual TLS, checking the server is the greeter.
async fn bare_client(identity: &TlsIdentity, addr: SocketAddr) -> Caller {
    let greeter = format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{GREETER_SA}")
        .parse()
        .unwrap();
    let config = identity
        .client_config(&ExpectedIdentities::one_of([greeter]))
        .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("greeter").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Caller::Bare(sender)
}

/// A `MeshClient` as workload `bench/client`, the greeter at `addr`.
fn mesh_client(identity: &Arc<TlsIdentity>, addr: SocketAddr) -> Caller {
    let ctx = BuildContext {
        workload: Workload::new(NAMESPACE, CLIENT_SA),
        ..Default::default()
    };
    let snapshot = istio::load_str("client.yaml", &client_yaml(addr.port()), &ctx).unwrap();
    let client = MeshClient::builder(Mesh::from_snapshot(ctx, snapshot))
        .identity(identity.clone())
        .telemetry(Telemetry::new().access_log(AccessLogMode::Off))
        .seed(1)
        .build();
    Caller::Mesh(client)
}

/// Allocations of `n` calls, one after the other.
async fn count(caller: &Caller, frame: &Bytes, n: u64) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..n {
        let response = caller.call(say_hello(frame)).await;
        assert!(!response.body().is_empty());
    }
    dhat::HeapStats::get().total_blocks - before
}

/// The four arms, their servers running, and the request frame they send.
struct Arms {
    arms: [(&'static str, Caller); 4],
    frame: Bytes,
    /// Holds the server's config file.
    _dir: tempfile::TempDir,
}

async fn arms() -> Arms {
    // Metrics go to a real recorder, as in sidecar-tax; without its upkeep thread, so the
    // process keeps one thread.
    mesh_tower::telemetry::prometheus_builder()
        .install_recorder()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate(TRUST_DOMAIN).unwrap();
    let client_id = Arc::new(identity(&ca, CLIENT_SA));
    let greeter_id = identity(&ca, GREETER_SA);

    let bare_addr = bare_server(&greeter_id).await;
    let mesh_addr = mesh_server(greeter_id, dir.path()).await;
    let arms = [
        ("bare", bare_client(&client_id, bare_addr).await),
        ("client", mesh_client(&client_id, bare_addr)),
        ("server", bare_client(&client_id, mesh_addr).await),
        ("both", mesh_client(&client_id, mesh_addr)),
    ];
    let frame = grpc_frame(&proto::HelloRequest {
        name: "world".into(),
        payload: Bytes::from(vec![0x5a; PAYLOAD]),
    });
    Arms {
        arms,
        frame,
        _dir: dir,
    }
}

/// Prints the allocation sites of one arm's calls (see the module docs).
async fn sites(arm: &str) {
    let file =
        std::env::temp_dir().join(format!("mesh-call_alloc-sites-{}.json", std::process::id()));
    let profiler = dhat::Profiler::builder()
        .file_name(&file)
        .trim_backtraces(Some(24))
        .build();
    let Arms { arms, frame, _dir } = arms().await;
    let (_, caller) = arms
        .iter()
        .find(|(name, _)| *name == arm)
        .expect("CALL_ALLOC_SITES names an arm: bare, client, server or both");
    let calls = WARM_UP + CALLS;
    count(caller, &frame, calls).await;
    drop(profiler);
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    std::fs::remove_file(&file).unwrap();
    let frames = profile["ftbl"].as_array().unwrap();
    let mut sites: Vec<(u64, Vec<&str>)> = profile["pps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pp| {
            let stack = pp["fs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| frames[usize::try_from(i.as_u64().unwrap()).unwrap()].as_str())
                .filter(|f| !f.contains("alloc::alloc::") && !f.contains("dhat::"))
                .collect();
            (pp["tbk"].as_u64().unwrap(), stack)
        })
        .filter(|(blocks, _)| *blocks * 2 >= calls)
        .collect();
    sites.sort_by_key(|site| std::cmp::Reverse(site.0));
    let total: u64 = sites.iter().map(|(b, _)| b).sum();
    println!(
        "{arm}: {:.2} allocations per call at sites allocating at least every other call",
        total as f64 / calls as f64
    );
    for (blocks, stack) in sites {
        println!("{:6.2} per call", blocks as f64 / calls as f64);
        for frame in stack.iter().take(24) {
            println!("         {frame}");
        }
    }
}

async fn call_budget() {
    // A failed dhat assertion saves the profile: to the temp dir, never into the source tree.
    let _profiler = dhat::Profiler::builder()
        .testing()
        .file_name(
            std::env::temp_dir().join(format!("mesh-call_alloc-{}.json", std::process::id())),
        )
        .build();
    let Arms { arms, frame, _dir } = arms().await;
    for (_, caller) in &arms {
        count(caller, &frame, WARM_UP).await;
    }

    let mut counted = [0u64; 4];
    for (total, (_, caller)) in counted.iter_mut().zip(&arms) {
        *total = count(caller, &frame, CALLS).await;
    }
    let [bare, client, server, both] = counted;
    let per_call = |n: u64| n as f64 / CALLS as f64;
    for ((name, _), total) in arms.iter().zip(counted) {
        println!("{name:>6}: {:.2} allocations per call", per_call(total));
    }
    let client_cost = client.saturating_sub(bare);
    let server_cost = server.saturating_sub(bare);
    println!(
        "mesh client: {:.2} per call (budget {CLIENT_BUDGET}); mesh server: {:.2} per call \
         (budget {SERVER_BUDGET}); both sides: {:.2} per call",
        per_call(client_cost),
        per_call(server_cost),
        per_call(both.saturating_sub(bare)),
    );
    dhat::assert!(
        client_cost <= CLIENT_BUDGET * CALLS,
        "MeshClient allocates {:.2} per call beyond bare hyper+rustls, budget {CLIENT_BUDGET}",
        per_call(client_cost)
    );
    dhat::assert!(
        server_cost <= SERVER_BUDGET * CALLS,
        "mesh serve allocates {:.2} per call beyond bare hyper+rustls, budget {SERVER_BUDGET}",
        per_call(server_cost)
    );
}
