//! The service map in a real browser: headless Chromium loads the admin page while traffic
//! flows, and the nodes and edges of that traffic are drawn. A screenshot is kept in
//! `target/artifacts/service-map.png` (CI keeps it with the run).
//!
//! Needs Chromium (`chromium` on PATH, or `CHROMIUM_BIN`): run by `.ci/interop-browser.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use mesh_core::identity::CertificateAuthority;
use mesh_core::{Mesh, Workload, istio};
use mesh_testing::tls::identity;
use mesh_tower::admin::AdminState;
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::Telemetry;
use tower::ServiceExt;

/// A `reviews` workload of `version`, served by `mesh_tower::serve` (plaintext), recording into
/// `telemetry`.
async fn reviews(
    version: &'static str,
    telemetry: &Telemetry,
    ca: &CertificateAuthority,
) -> SocketAddr {
    let mesh = Mesh::builder()
        .workload(
            Workload::new("default", "reviews").labels([("app", "reviews"), ("version", version)]),
        )
        // A workload certificate: peer metadata (the workload and version on each edge) is only
        // believed from a peer that proved its identity with mutual TLS.
        .identity(identity(ca, "default", "reviews"))
        .build()
        .await
        .unwrap();
    let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec: {mtls: {mode: STRICT}}\n";
    mesh.apply(istio::load_str("server.yaml", yaml, mesh.context()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/reviews/{id}", get(move || async move { version }));
    let options = mesh_tower::ServeOptions::new().telemetry(telemetry.clone());
    tokio::spawn(async move {
        mesh_tower::serve(&mesh, listener, app)
            .options(options)
            .await
    });
    addr
}

fn frontend_config(v1: SocketAddr, v2: SocketAddr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{app: reviews, version: v1}}, serviceAccount: reviews}}
  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{app: reviews, version: v2}}, serviceAccount: reviews}}
"#,
        v1.port(),
        v2.port()
    )
}

fn chromium() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".into())
}

/// Runs headless Chromium on `url` the ordinary way (no `--virtual-time-budget`: the browser
/// does not wait for the page's scripts to fetch anything) and returns the DOM; also writes a
/// screenshot to `screenshot`. The map must be there at load (issue #14: it showed
/// "loading…" unless the browser was told to wait): the page arrives with its graph inlined.
async fn render(url: &str, screenshot: &std::path::Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let common = [
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        format!("--user-data-dir={}", profile.path().display()),
        "--window-size=1200,800".into(),
    ];
    let shot = tokio::process::Command::new(chromium())
        .args(&common)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .output();
    let shot = tokio::time::timeout(Duration::from_secs(60), shot)
        .await
        .expect("chromium within 60 s")
        .expect("chromium runs");
    assert!(
        shot.status.success(),
        "chromium screenshot failed: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let dom = tokio::process::Command::new(chromium())
        .args(&common)
        .arg("--dump-dom")
        .arg(url)
        .output();
    let dom = tokio::time::timeout(Duration::from_secs(60), dom)
        .await
        .expect("chromium within 60 s")
        .expect("chromium runs");
    assert!(
        dom.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: run by .ci/interop-browser.sh"]
async fn service_map_draws_the_traffic() {
    let telemetry = Telemetry::new();
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let (v1, v2) = (
        reviews("v1", &telemetry, &ca).await,
        reviews("v2", &telemetry, &ca).await,
    );
    let mesh = Mesh::builder()
        .workload(
            Workload::new("default", "productpage")
                .labels([("app", "productpage"), ("version", "v1")]),
        )
        .identity(identity(&ca, "default", "productpage"))
        .build()
        .await
        .unwrap();
    mesh.apply(istio::load_str("frontend.yaml", &frontend_config(v1, v2), mesh.context()).unwrap());
    let client = MeshClient::builder(mesh.clone())
        .telemetry(telemetry.clone())
        .build();

    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let state = AdminState::new().graph(telemetry.service_graph().clone());
    tokio::spawn(mesh_tower::admin::serve(mesh.clone(), admin, state));

    // Traffic flows while the browser looks (bounded: at most 2,000 calls or 90 s).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            for i in 0..2_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed)
                    || tokio::time::Instant::now() > deadline
                {
                    break;
                }
                let req = Request::get(format!("http://reviews:9080/reviews/{i}"))
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let response = client.clone().oneshot(req).await.unwrap();
                assert!(response.status().is_success());
                response.into_body().collect().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let screenshot = dir.join("service-map.png");
    let dom = render(&format!("http://{admin_addr}/"), &screenshot).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.await.unwrap();

    for node in [
        "default/productpage/v1",
        "default/reviews/v1",
        "default/reviews/v2",
    ] {
        assert!(
            dom.contains(&format!("data-node=\"{node}\"")),
            "node {node} not drawn:\n{dom}"
        );
    }
    for edge in [
        "default/productpage/v1->default/reviews/v1",
        "default/productpage/v1->default/reviews/v2",
    ] {
        // The DOM dump escapes `>` inside attribute values.
        let escaped = edge.replace('>', "&gt;");
        assert!(
            dom.contains(&format!("data-edge=\"{escaped}\"")),
            "edge {edge} not drawn:\n{dom}"
        );
    }
    assert!(
        !dom.contains("loading…") && !dom.contains("no data yet"),
        "{dom}"
    );
    assert!(dom.contains("admin of default/productpage"), "{dom}");
    assert!(dom.contains("id=\"legend\""), "the health legend:\n{dom}");
    // The versions' split and mTLS are on the map.
    assert!(
        dom.contains("% of reviews"),
        "the split between versions:\n{dom}"
    );
    assert!(dom.contains("mTLS http"), "mTLS badge:\n{dom}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot is a real picture"
    );
}
