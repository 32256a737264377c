//! Test backends and config for the client tests: real axum servers on 127.0.0.1.
#![allow(dead_code)] // Each test binary uses its own subset of these helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use mesh_core::{BuildContext, Mesh, istio};

/// A running backend: its address and what it has seen.
#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub version: String,
    pub hits: Arc<AtomicUsize>,
    /// Answer this status to the next N requests (then 200).
    pub fail_next: Arc<AtomicU32>,
    /// Authorities seen (for mirroring).
    pub authorities: Arc<std::sync::Mutex<Vec<String>>>,
    /// Delay every answer by this many milliseconds.
    pub delay_ms: Arc<AtomicU32>,
}

async fn handle(
    State(b): State<Backend>,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> impl IntoResponse {
    b.hits.fetch_add(1, Ordering::Relaxed);
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    b.authorities.lock().unwrap().push(authority);
    let delay = b.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay.into())).await;
    }
    let failing = b
        .fail_next
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let user = headers
        .get("end-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        status,
        [("x-version", b.version.clone()), ("x-saw-user", user)],
        b.version.clone(),
    )
}

/// Starts a backend answering with its version.
pub async fn backend(version: &str) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = Backend {
        addr: listener.local_addr().unwrap(),
        version: version.to_owned(),
        hits: Arc::default(),
        fail_next: Arc::default(),
        authorities: Arc::default(),
        delay_ms: Arc::default(),
    };
    let app = Router::new().fallback(any(handle)).with_state(b.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    b
}

/// A ServiceEntry `name` on port 8080 whose endpoints are the backends (labelled by version),
/// plus a DestinationRule with a subset per version and `extra_policy` (YAML under
/// `trafficPolicy:`, indented 4 spaces).
pub fn service_yaml(name: &str, backends: &[&Backend], extra_policy: &str) -> String {
    let mut endpoints = String::new();
    for b in backends {
        endpoints.push_str(&format!(
            "  - address: 127.0.0.1\n    ports: {{http: {}}}\n    labels: {{app: {name}, version: {}}}\n",
            b.addr.port(),
            b.version
        ));
    }
    let mut versions: Vec<&str> = backends.iter().map(|b| b.version.as_str()).collect();
    versions.dedup();
    let subsets: String = versions
        .iter()
        .map(|v| format!("  - name: {v}\n    labels: {{version: {v}}}\n"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hosts: [{name}.default.svc.cluster.local]\n  resolution: STATIC\n  ports:\n  - {{number: 8080, name: http, protocol: HTTP}}\n  endpoints:\n{endpoints}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  host: {name}\n  trafficPolicy:\n    tls: {{mode: DISABLE}}\n{extra_policy}  subsets:\n{subsets}---\n"
    )
}

/// A mesh serving exactly this YAML.
pub fn mesh(yaml: &str) -> Mesh {
    let ctx = BuildContext::default();
    let snapshot = istio::load_str("test.yaml", yaml, &ctx).unwrap_or_else(|e| panic!("{e}"));
    Mesh::from_snapshot(ctx, snapshot)
}

/// Applies new YAML to a running mesh.
pub fn apply(mesh: &Mesh, yaml: &str) {
    let snapshot =
        istio::load_str("test.yaml", yaml, mesh.context()).unwrap_or_else(|e| panic!("{e}"));
    mesh.apply(snapshot);
}
