//! Test backends (axum on 127.0.0.1), config files, and traffic loops for the xDS tests; the
//! control planes (`control_plane`), the health service and its callers (`health`) and the
//! discovery streams (`stream`) they share.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use mesh_core::Mesh;
use mesh_tower::client::MeshClient;
use tower::ServiceExt;

pub mod control_plane;
pub mod health;
pub mod stream;

/// A backend answering its version.
pub struct Backend {
    pub addr: SocketAddr,
    pub version: String,
}

pub async fn backend(version: &str) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let v = version.to_owned();
    let app = Router::new().fallback(any(move || {
        let v = v.clone();
        async move { v }
    }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Backend {
        addr,
        version: version.to_owned(),
    }
}

/// A ServiceEntry `inventory` on port 8080 over the backends, a DestinationRule with a subset
/// per version, and a VirtualService splitting `weights` (one per backend, in order).
pub fn config(backends: &[&Backend], weights: &[u32]) -> String {
    let mut endpoints = String::new();
    let mut subsets = String::new();
    let mut routes = String::new();
    for (b, w) in backends.iter().zip(weights) {
        endpoints.push_str(&format!(
            "  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{app: inventory, version: {}}}}}\n",
            b.addr.port(),
            b.version
        ));
        subsets.push_str(&format!(
            "  - {{name: {v}, labels: {{version: {v}}}}}\n",
            v = b.version
        ));
        routes.push_str(&format!(
            "    - destination: {{host: inventory, subset: {}}}\n      weight: {w}\n",
            b.version
        ));
    }
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: inventory, namespace: default}}\nspec:\n  hosts: [inventory.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - {{number: 8080, name: http, protocol: HTTP}}\n  endpoints:\n{endpoints}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: inventory, namespace: default}}\nspec:\n  host: inventory\n  trafficPolicy:\n    tls: {{mode: DISABLE}}\n    loadBalancer: {{simple: ROUND_ROBIN}}\n  subsets:\n{subsets}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: inventory, namespace: default}}\nspec:\n  hosts: [inventory]\n  http:\n  - route:\n{routes}"
    )
}

/// Replaces a file atomically (write then rename), as editors and ConfigMaps do.
pub fn write_atomic(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Counts of a traffic loop.
#[derive(Default)]
pub struct Traffic {
    pub ok: AtomicUsize,
    pub failed: AtomicUsize,
    /// Successful answers per version, `[v1, v2]`.
    pub by_version: [AtomicUsize; 2],
    pub stop: AtomicBool,
}

/// Sends requests to `url` one after another until stopped or `max` requests are sent.
pub fn traffic(
    mesh: &Mesh,
    url: &'static str,
    max: usize,
) -> (Arc<Traffic>, tokio::task::JoinHandle<()>) {
    let t = Arc::new(Traffic::default());
    let client = MeshClient::builder(mesh.clone()).seed(11).build();
    let counts = t.clone();
    let handle = tokio::spawn(async move {
        for _ in 0..max {
            if counts.stop.load(Ordering::Relaxed) {
                break;
            }
            let request = Request::get(url).body(Empty::<Bytes>::new()).unwrap();
            let response = client.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                counts.ok.fetch_add(1, Ordering::Relaxed);
                match &body[..] {
                    b"v1" => counts.by_version[0].fetch_add(1, Ordering::Relaxed),
                    _ => counts.by_version[1].fetch_add(1, Ordering::Relaxed),
                };
            } else {
                counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (t, handle)
}

/// Waits (bounded) until `f` holds, polling the traffic counters as they advance.
pub async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
