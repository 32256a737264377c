//! An HTTP server behind mesh's inbound policy, to probe the security model with curl.
//!
//! ```text
//! mesh certs init --dir ca && mesh certs issue --dir ca --namespace default \
//!     --service-account reviews --out certs/reviews --dns localhost  # and a client, `sleep`
//! cargo run --bin mtls-server -- --certs certs/reviews --config mesh/ --listen 127.0.0.1:9080
//! curl http://127.0.0.1:9080/whoami                    # PERMISSIVE: {"peer":null}; STRICT: refused
//! curl --cacert ca/root-cert.pem --cert certs/sleep/cert-chain.pem --key certs/sleep/key.pem \
//!     https://localhost:9080/whoami                    # {"peer":"spiffe://cluster.local/ns/default/sa/sleep"}
//! curl http://127.0.0.1:9080/delay/3000               # meanwhile `kill <server pid>` (SIGTERM):
//!                                                      # it drains, the request completes, exit 0
//! ```
//! `--dns localhost` puts a DNS name beside the SPIFFE ID, so curl can check the server's name
//! (without it, curl needs `-k`). Edit the
//! PeerAuthentication or AuthorizationPolicy files under `--config` and the next request sees it.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::{Path, Request};
use axum::routing::{any, get};
use axum::{Json, Router};
use clap::Parser;
use mesh_core::identity::PeerIdentity;
use mesh_core::{Mesh, Workload};
use mesh_tower::telemetry::{AccessLogMode, Telemetry};
use opentelemetry::trace::TracerProvider as _;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Serves `/whoami` and `/anything/...` with mutual TLS, authorization and telemetry.
#[derive(Parser)]
struct Args {
    /// Directory with cert-chain.pem, key.pem, root-cert.pem (Istio layout).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// Istio YAML file or directory (watched).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This workload's namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// This workload's service account.
    #[arg(long, default_value = "reviews")]
    service_account: String,
}

async fn whoami(request: Request) -> Json<Value> {
    let peer = request.extensions().get::<PeerIdentity>();
    Json(json!({ "peer": peer.map(|p| p.to_string()) }))
}

/// Answers after `ms` milliseconds (at most 10 s): a request to watch a drain finish.
async fn delay(Path(ms): Path<u64>) -> &'static str {
    tracing::info!(ms, "delay request started");
    tokio::time::sleep(std::time::Duration::from_millis(ms.min(10_000))).await;
    "ok\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Spans to the OTLP endpoint the OpenTelemetry variables name, if any; the handlers'
    // `tracing` spans join mesh's server spans through `tracing-opentelemetry`.
    let traces = mesh_tower::trace::install_from_env().map_err(|e| format!("tracing: {e}"))?;
    let logs = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(tracing_subscriber::EnvFilter::new("info"));
    match &traces {
        Some(guard) => {
            let provider = guard
                .tracing()
                .tracer_provider(&args.service_account, &args.namespace);
            logs.with(tracing_opentelemetry::layer().with_tracer(provider.tracer("mtls-server")))
                .init();
        }
        None => logs.init(),
    }
    let workload = Workload::new(&args.namespace, &args.service_account)
        .labels([("app", args.service_account.as_str())]);
    let mut mesh = Mesh::builder().workload(workload);
    if let Some(dir) = &args.certs {
        mesh = mesh.identity_files(dir);
    }
    if let Some(config) = &args.config {
        mesh = mesh.config_path(config);
    }
    let mesh = mesh.build().await?;
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/anything/{*rest}", any(|| async { "ok\n" }))
        .route("/delay/{ms}", get(delay));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // Scripts and tests wait for this line (useful with --listen 127.0.0.1:0).
    eprintln!("mtls-server: listening on {}", listener.local_addr()?);
    let options =
        mesh_tower::ServeOptions::new().telemetry(Telemetry::new().access_log(AccessLogMode::All));
    mesh_tower::serve(&mesh, listener, app)
        .options(options)
        // SIGTERM (Kubernetes) or Ctrl-C: stop accepting, finish what is in flight, exit 0.
        .with_graceful_shutdown(mesh_examples::shutdown_signal())
        .await?;
    if let Some(guard) = &traces {
        guard.tracing().flush().await;
    }
    Ok(())
}
