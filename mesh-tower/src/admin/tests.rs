use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mesh_core::balance::ClusterState;
use mesh_core::model::ServiceKey;
use mesh_core::telemetry::{PeerWorkload, Reporter, RequestRecord};
use mesh_core::{BuildContext, Mesh, Workload, istio};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::*;
use crate::telemetry::{GraphData, ServiceGraph, Telemetry, install_prometheus};

const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - address: 10.0.0.1
    labels: {version: v1}
  - address: 10.0.0.2
    labels: {version: v2}
"#;

const BAD_CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: 0
    - destination: {host: reviews}
      weight: 0
"#;

fn mesh() -> Mesh {
    let ctx = BuildContext::default();
    let snapshot = istio::load_str("mesh/reviews.yaml", CONFIG, &ctx).unwrap();
    Mesh::from_snapshot(ctx, snapshot)
}

/// The process-wide recorder: one per test binary, installed by the first test that needs it.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| install_prometheus().unwrap()).clone()
}

async fn start(mesh: Mesh, state: AdminState) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(mesh, listener, state));
    addr
}

async fn request(method: Method, addr: SocketAddr, path: &str) -> (StatusCode, String, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let (s, _, b) = request(Method::GET, addr, path).await;
    (s, b)
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, ct, body) = request(Method::GET, addr, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert_eq!(ct, "application/json");
    serde_json::from_str(&body).unwrap()
}

fn workload(ns: &str, name: &str, version: &str) -> PeerWorkload {
    PeerWorkload::from_workload(
        &Workload::new(ns, name).labels([("app", name), ("version", version)]),
        "Kubernetes",
    )
}

fn call(src: &PeerWorkload, dst: &PeerWorkload, code: u16, ms: u64) -> RequestRecord {
    let mut r = RequestRecord::new(Reporter::Source, SystemTime::now());
    r.response_code = Some(code);
    r.duration = Duration::from_millis(ms);
    r.source = src.clone();
    r.destination = dst.clone();
    r.destination_service = Some(ServiceKey {
        host: "reviews.default.svc.cluster.local".into(),
        namespace: "default".into(),
        port: 9080,
        subset: None,
    });
    r
}

/// A sample line of the Prometheus text format: `name{k="v",…} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict little parser of the text exposition format: every line is a comment (`# HELP`,
/// `# TYPE` with a known type) or a well-formed sample; anything else fails the test.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {}
                Some("TYPE") => {
                    let ty = parts.nth(1).unwrap();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                        "{line}"
                    );
                }
                _ => panic!("bad comment: {line}"),
            }
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(line.len());
        let name = &line[..name_end];
        assert!(
            !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()),
            "{line}"
        );
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut key = String::new();
            let end;
            loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("unterminated: {line}"));
                match c {
                    '}' if key.is_empty() => {
                        end = i;
                        break;
                    }
                    '=' => {
                        assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            match chars.next().unwrap().1 {
                                '\\' => value.push(chars.next().unwrap().1),
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                        if chars.peek().map(|x| x.1) == Some(',') {
                            chars.next();
                        }
                    }
                    c if c.is_ascii_alphanumeric() || c == '_' => key.push(c),
                    _ => panic!("bad label in {line}"),
                }
            }
            rest = &inner[end + 1..];
        }
        let value = rest.trim_start_matches(' ');
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

#[tokio::test]
async fn serves_every_path() {
    let handle = prometheus();
    let mesh = mesh();
    let readiness = Readiness::new();
    let telemetry = Telemetry::new();
    let state = AdminState::new()
        .readiness(readiness.clone())
        .prometheus(handle)
        .graph(telemetry.service_graph().clone())
        .identity(|| serde_json::json!({"cert_expiry": "2026-12-01T00:00:00Z"}));
    let addr = start(mesh.clone(), state).await;

    let front = workload("default", "productpage", "v1");
    let reviews = workload("default", "reviews", "v2");
    for i in 0..20 {
        telemetry.record(&call(&front, &reviews, if i < 2 { 503 } else { 200 }, 12));
    }

    // Readiness: 503 until both parts are in; also at Envoy's `/ready`, in Envoy's words.
    let (status, body) = get(addr, "/healthz/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready: config, identity\n");
    assert_eq!(
        get(addr, "/ready").await,
        (StatusCode::SERVICE_UNAVAILABLE, "INITIALIZING\n".to_owned())
    );
    readiness.set_ready(ReadyPart::Config, true);
    let (status, body) = get(addr, "/healthz/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: identity\n")
    );
    readiness.set_ready(ReadyPart::Identity, true);
    assert_eq!(get(addr, "/healthz/ready").await.0, StatusCode::OK);
    assert_eq!(
        get(addr, "/ready").await,
        (StatusCode::OK, "LIVE\n".to_owned())
    );

    // Envoy's `/stats/prometheus` answers what `/metrics` does, `istio_build` included.
    let (status, ct, text) = request(Method::GET, addr, "/stats/prometheus").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/plain; version=0.0.4"));
    let samples = parse_prometheus(&text);
    assert!(samples.iter().any(|s| s.name == "istio_build"
        && s.labels.get("component").map(String::as_str) == Some("proxy")
        && s.value == 1.0));

    // /metrics parses, carries the Istio metrics and mesh's own.
    let (status, ct, text) = request(Method::GET, addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/plain; version=0.0.4"));
    let samples = parse_prometheus(&text);
    let total: f64 = samples
        .iter()
        .filter(|s| {
            s.name == "istio_requests_total"
                && s.labels.get("source_workload").map(String::as_str) == Some("productpage")
        })
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 20.0);
    let errors = samples
        .iter()
        .find(|s| {
            s.name == "istio_requests_total"
                && s.labels.get("response_code").map(String::as_str) == Some("503")
        })
        .unwrap();
    assert_eq!(errors.value, 2.0);
    assert_eq!(errors.labels.len(), 25);
    let le_25: f64 = samples
        .iter()
        .filter(|s| {
            s.name == "istio_request_duration_milliseconds_bucket"
                && s.labels.get("le").map(String::as_str) == Some("25")
                && s.labels.get("source_workload").map(String::as_str) == Some("productpage")
        })
        .map(|s| s.value)
        .sum();
    assert_eq!(le_25, 20.0, "12 ms requests fall in Istio's 25 ms bucket");
    let clusters = samples
        .iter()
        .find(|s| s.name == "mesh_config_clusters")
        .unwrap();
    assert_eq!(clusters.value, mesh.snapshot().clusters.len() as f64);
    assert!(samples.iter().any(|s| s.name == "mesh_endpoints"
        && s.labels.get("state").map(String::as_str) == Some("healthy")
        && s.value == 2.0));

    // /config_dump: the snapshot, and the identity section.
    let dump = get_json(addr, "/config_dump").await;
    assert_eq!(dump["version"], mesh.snapshot().version.as_str());
    assert_eq!(dump["source"]["kind"], "files");
    assert!(!dump["snapshot"]["clusters"].as_object().unwrap().is_empty());
    assert_eq!(dump["status"]["last_rejection"], Value::Null);
    assert_eq!(dump["identity"]["cert_expiry"], "2026-12-01T00:00:00Z");

    // /clusters from config (no runtime source given).
    let clusters = get_json(addr, "/clusters").await;
    let all = clusters.as_array().unwrap();
    let whole = all
        .iter()
        .find(|c| c["name"] == "outbound|9080||reviews.default.svc.cluster.local")
        .unwrap();
    assert_eq!(whole["endpoints"].as_array().unwrap().len(), 2);
    assert_eq!(whole["endpoints"][0]["health"], "HEALTHY");
    assert_eq!(whole["endpoints"][0]["in_flight"], Value::Null);

    // /graph: one edge with its rates.
    let graph: GraphData = serde_json::from_value(get_json(addr, "/graph").await).unwrap();
    assert_eq!(graph.edges.len(), 1);
    let e = &graph.edges[0];
    assert_eq!(e.id, "default/productpage/v1->default/reviews/v2");
    assert_eq!(e.requests, 20);
    assert!((e.error_rate - 0.1).abs() < 1e-9);
    assert!(e.p99_ms > 10.0 && e.p99_ms <= 25.0);

    // The page, unknown paths, methods.
    let (status, ct, page) = request(Method::GET, addr, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/html"));
    assert!(page.contains("data-node") && page.contains("data-edge"));
    assert!(page.contains("fetch(range ? \"graph?range=\" + range : \"graph\""));
    // A time range: the last 10 s hold the 20 requests too (all recorded just now).
    let recent: GraphData =
        serde_json::from_value(get_json(addr, "/graph?range=10").await).unwrap();
    assert_eq!(recent.window_seconds, 10.0);
    assert_eq!(recent.edges[0].requests, 20);
    // The first view needs no request: the graph is in the page, and it names its workload.
    assert!(!page.contains("/*MESH_GRAPH*/"), "the graph is inlined");
    assert!(
        page.contains("default/productpage/v1-\\u003edefault/reviews/v2"),
        "{page}"
    );
    let ctx_workload = &mesh.context().workload;
    let name = format!("{}/{}", ctx_workload.namespace, ctx_workload.name);
    assert!(page.contains(&format!("admin of {name}")), "{name}");
    for external in ["src=\"http", "href=\"http", "<link", "@import", "src=\"//"] {
        assert!(
            !page.contains(external),
            "the page loads nothing external: {external}"
        );
    }
    assert_eq!(get(addr, "/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        request(Method::POST, addr, "/config_dump").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn config_dump_shows_the_last_rejection() {
    let mesh = mesh();
    let addr = start(mesh.clone(), AdminState::new()).await;
    let err = istio::load_str("mesh/bad.yaml", BAD_CONFIG, mesh.context()).unwrap_err();
    mesh.reject(err);
    let dump = get_json(addr, "/config_dump").await;
    assert_eq!(
        dump["version"],
        mesh.snapshot().version.as_str(),
        "the good config serves"
    );
    assert_eq!(dump["status"]["rejected_total"], 1);
    let diags = dump["status"]["last_rejection"]["diagnostics"]
        .as_array()
        .unwrap();
    assert!(!diags.is_empty());
    assert!(dump.to_string().contains("mesh/bad.yaml"), "{dump}");
    assert!(
        dump.to_string().contains("total destination weight = 0"),
        "{dump}"
    );
    assert_eq!(dump["identity"], Value::Null);
    // No Prometheus handle: /metrics says the app exports them.
    assert_eq!(get(addr, "/metrics").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn clusters_show_runtime_state_from_the_source() {
    let mesh = mesh();
    let snapshot = mesh.snapshot();
    let cluster = snapshot
        .clusters
        .values()
        .find(|c| c.endpoints.len() == 2)
        .unwrap()
        .clone();
    let state = std::sync::Arc::new(ClusterState::new(cluster.name.clone(), Instant::now()));
    state.update(&cluster.endpoints, Instant::now());
    let busy = state.get(&cluster.endpoints[0].address).unwrap();
    let guard = busy.start(Instant::now());
    let source = {
        let (cluster, state) = (cluster.clone(), state.clone());
        move || vec![ClusterStatus::with_state(&cluster, &state, Instant::now())]
    };
    let addr = start(mesh, AdminState::new().clusters(source)).await;
    let clusters = get_json(addr, "/clusters").await;
    let eps = clusters[0]["endpoints"].as_array().unwrap();
    assert_eq!(eps[0]["in_flight"], 1);
    assert_eq!(eps[1]["in_flight"], 0);
    assert_eq!(eps[0]["ejected"], false);
    assert!(eps[0]["ewma_ms"].as_f64().is_some());
    drop(guard);
    let clusters = get_json(addr, "/clusters").await;
    assert_eq!(clusters[0]["endpoints"][0]["in_flight"], 0);
}

#[tokio::test]
async fn graph_merges_peers_and_names_failures() {
    let front = workload("default", "productpage", "v1");
    let reviews = workload("default", "reviews", "v2");
    let ratings = workload("default", "ratings", "v1");
    let (ga, gb) = (ServiceGraph::default(), ServiceGraph::default());
    for _ in 0..10 {
        ga.record(&call(&front, &reviews, 200, 5), Instant::now());
        gb.record(&call(&reviews, &ratings, 500, 50), Instant::now());
    }
    // A port bound but not listening: refused while `reserved` lives, and no other socket
    // (the listener below) can take it.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = reserved.local_addr().unwrap();
    let b_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_addr = b_listener.local_addr().unwrap();
    let a_addr = start(
        mesh(),
        AdminState::new().graph(ga).peers([
            format!("http://{b_addr}").parse::<Uri>().unwrap(),
            format!("http://{dead}").parse::<Uri>().unwrap(),
        ]),
    )
    .await;
    // B lists A back: peers are asked for their local graph only, so this does not recurse.
    let b_state = AdminState::new()
        .graph(gb)
        .peers([format!("http://{a_addr}").parse::<Uri>().unwrap()]);
    tokio::spawn(serve(mesh(), b_listener, b_state));

    let merged: GraphData = serde_json::from_value(get_json(a_addr, "/graph").await).unwrap();
    assert_eq!(merged.instances.len(), 2);
    assert_eq!(merged.nodes.len(), 3);
    let ids: Vec<&str> = merged.edges.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "default/productpage/v1->default/reviews/v2",
            "default/reviews/v2->default/ratings/v1"
        ]
    );
    assert_eq!(merged.edges[1].error_rate, 1.0);
    assert_eq!(merged.peer_errors.len(), 1);
    assert!(merged.peer_errors[0].contains(&dead.to_string()));

    let local: GraphData =
        serde_json::from_value(get_json(a_addr, "/graph?local=1").await).unwrap();
    assert_eq!(local.edges.len(), 1);
    let from_b: GraphData = serde_json::from_value(get_json(b_addr, "/graph").await).unwrap();
    assert_eq!(from_b.edges.len(), 2, "B merges A's local graph");
}

#[tokio::test]
async fn readiness_follows_the_mesh_until_config_and_identity_are_loaded() {
    use mesh_core::identity::{CertificateAuthority, TlsIdentity};
    // A mesh waiting for its config (as under xDS): not ready.
    let empty = Mesh::builder().build().await.unwrap();
    let addr = start(empty.clone(), AdminState::new()).await;
    let (status, body) = get(addr, "/healthz/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: config\n")
    );
    // The first config arrives: ready (no identity was configured, so none is awaited).
    let ctx = BuildContext::default();
    empty.apply(istio::load_str("mesh/reviews.yaml", CONFIG, &ctx).unwrap());
    assert_eq!(get(addr, "/healthz/ready").await.0, StatusCode::OK);

    // A mesh whose identity has expired: not ready, naming the identity.
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let now = std::time::SystemTime::now();
    let options = mesh_core::identity::IssueOptions::new(
        mesh_core::identity::SpiffeId::istio("cluster.local", "default", "reviews").unwrap(),
        std::time::Duration::from_secs(3600),
    )
    .validity(
        now - std::time::Duration::from_secs(7200),
        now - std::time::Duration::from_secs(3600),
    );
    let issued = ca.issue_with(&options).unwrap();
    let long_ago = rustls_pki_types::UnixTime::since_unix_epoch(
        (now - std::time::Duration::from_secs(5400))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap(),
    );
    let expired = TlsIdentity::new(issued.credentials(long_ago).unwrap()).unwrap();
    let with_expired = Mesh::builder().identity(expired).build().await.unwrap();
    with_expired.apply(istio::load_str("mesh/reviews.yaml", CONFIG, &ctx).unwrap());
    let addr = start(with_expired, AdminState::new()).await;
    let (status, body) = get(addr, "/healthz/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: identity\n")
    );
    // Issue #14: `/config_dump` shows the workload's identity without being given a section.
    let dump = get_json(addr, "/config_dump").await;
    assert_eq!(
        dump["identity"]["spiffe_id"], "spiffe://cluster.local/ns/default/sa/reviews",
        "{dump}"
    );
    assert!(
        dump["identity"]["not_after_unix"].as_i64().is_some(),
        "{dump}"
    );
}

/// Issue #14: `/clusters` showed `null` in-flight counts and EWMA under load: nothing gave it
/// the live client's state. A `MeshClient` is a cluster source: a call held open by its
/// upstream shows as in flight, and the endpoint has an EWMA and an ejection state.
#[tokio::test]
async fn clusters_show_the_live_client() {
    use std::sync::Arc;

    use tokio::sync::Notify;
    use tower::ServiceExt as _;

    use crate::client::MeshClient;

    // An upstream that holds each request until released.
    let release = Arc::new(Notify::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = {
        let release = release.clone();
        axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let release = release.clone();
                async move {
                    release.notified().await;
                    "done"
                }
            }),
        )
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: slow, namespace: default}}\nspec:\n  hosts: [slow.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n  endpoints:\n  - address: 127.0.0.1\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: slow, namespace: default}}\nspec:\n  host: slow.default.svc.cluster.local\n  trafficPolicy:\n    tls: {{mode: DISABLE}}\n"
    );
    let ctx = BuildContext {
        workload: Workload::new("shop", "checkout"),
        ..BuildContext::default()
    };
    let mesh = Mesh::from_snapshot(
        ctx.clone(),
        istio::load_str("slow.yaml", &yaml, &ctx).unwrap(),
    );
    let client = MeshClient::new(mesh.clone());
    let addr = start(mesh, AdminState::new().clusters(client.clone())).await;

    let url = format!("http://slow.default.svc.cluster.local:{port}/");
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            let req = Request::get(url).body(Empty::<Bytes>::new()).unwrap();
            let resp = client.oneshot(req).await.unwrap();
            let status = resp.status();
            resp.into_body().collect().await.unwrap();
            status
        }
    });
    let endpoint = |clusters: &Value| {
        clusters
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["service"] == "slow.default.svc.cluster.local")
            .map(|c| c["endpoints"][0].clone())
            .unwrap_or_else(|| panic!("{clusters}"))
    };
    // Wait (bounded) until the call is in flight.
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = endpoint(&get_json(addr, "/clusters").await);
        if seen["in_flight"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen["in_flight"], 1, "{seen}");
    assert_eq!(seen["ejected"], false, "{seen}");
    assert!(seen["ewma_ms"].as_f64().is_some(), "{seen}");
    release.notify_one();
    assert_eq!(call.await.unwrap(), StatusCode::OK);
    let after = endpoint(&get_json(addr, "/clusters").await);
    assert_eq!(after["in_flight"], 0, "{after}");

    // Every answer names the workload it describes.
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = http
        .get(format!("http://{addr}/clusters").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-mesh-workload"], "shop/checkout");
}

/// `/stats/prometheus` (and `/metrics`, and `/stats?format=prometheus`) take Envoy's query
/// parameters (envoy `source/server/admin/stats_params.cc` `StatsParams::parse`,
/// `stats_params.h` `shouldShowMetric`): an RE2 `filter` searched in each series, `usedonly`,
/// and a 400 `Invalid re2 regex` for a filter that does not compile.
#[tokio::test]
async fn stats_answer_envoys_query_parameters() {
    let handle = prometheus();
    let addr = start(mesh(), AdminState::new().prometheus(handle)).await;
    let telemetry = Telemetry::new();
    let caller = workload("default", "statsfilter", "v1");
    telemetry.record(&call(
        &caller,
        &workload("default", "reviews", "v2"),
        200,
        5,
    ));
    metrics::counter!("mesh_admin_test_untouched_total").increment(0);

    let filter = "filter=source_workload%3D%22statsfilter%22";
    for path in [
        format!("/stats/prometheus?{filter}"),
        format!("/metrics?{filter}"),
        format!("/stats?format=prometheus&{filter}"),
    ] {
        let (status, text) = get(addr, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        let samples = parse_prometheus(&text);
        assert!(
            samples
                .iter()
                .any(|s| s.name == "istio_requests_total" && s.value == 1.0),
            "{path}: {text}"
        );
        assert!(
            samples
                .iter()
                .any(|s| s.name == "istio_request_duration_milliseconds_bucket"),
            "a histogram keeps its `le` lines: {text}"
        );
        assert!(
            samples
                .iter()
                .all(|s| s.labels.get("source_workload") == Some(&"statsfilter".to_owned())),
            "{path}: {text}"
        );
    }

    // `usedonly`: the counter never incremented is left out, and shown without it.
    let (_, all) = get(addr, "/stats/prometheus").await;
    assert!(all.contains("mesh_admin_test_untouched_total 0"), "{all}");
    let (status, used) = get(addr, "/stats/prometheus?usedonly").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!used.contains("mesh_admin_test_untouched_total"), "{used}");
    assert!(used.contains("source_workload=\"statsfilter\""), "{used}");

    // A filter that does not compile is refused as Envoy refuses it; so is another format.
    assert_eq!(
        get(addr, "/stats/prometheus?filter=(unclosed").await,
        (StatusCode::BAD_REQUEST, "Invalid re2 regex".to_owned())
    );
    let (status, body) = get(addr, "/stats").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("usage: /stats?format=prometheus"),
        "{body}"
    );
}

/// The map page names the workload it shows and links to the admin endpoints of the other
/// workloads of the process; `/workloads` lists them.
#[tokio::test]
async fn admin_lists_the_other_workloads_of_the_process() {
    let state = AdminState::new()
        .sibling("shop/frontend", "http://127.0.0.1:15001".parse().unwrap())
        .sibling("shop/payment", "http://127.0.0.1:15002".parse().unwrap());
    let addr = start(mesh(), state).await;
    let workloads = get_json(addr, "/workloads").await;
    let this = workloads["workload"].as_str().unwrap().to_owned();
    assert!(this.contains('/'), "namespace/name: {this}");
    assert_eq!(
        workloads,
        serde_json::json!({
            "workload": this,
            "others": [
                {"workload": "shop/frontend", "admin": "http://127.0.0.1:15001/"},
                {"workload": "shop/payment", "admin": "http://127.0.0.1:15002/"},
            ]
        })
    );
    let (status, page) = get(addr, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("admin of {this}")), "{page}");
    assert!(
        page.contains(r#"<a href="http://127.0.0.1:15002/" data-workload="shop/payment">"#),
        "{page}"
    );
    // A workload alone in its process lists no others.
    let alone = start(mesh(), AdminState::new()).await;
    assert_eq!(
        get_json(alone, "/workloads").await["others"],
        serde_json::json!([])
    );
}
