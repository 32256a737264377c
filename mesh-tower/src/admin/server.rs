//! The admin HTTP server: one plain-HTTP listener, a handful of read-only paths.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mesh_core::Mesh;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::clusters::{ClusterStatus, record_endpoint_gauges};
use super::config_dump::config_dump;
use super::peers::PeerClient;
use super::state::AdminState;
use super::stats::{BadQuery, StatsQuery};
use crate::telemetry::{GraphData, GraphWindow, record_config_metrics};

pub(super) const SERVICE_MAP: &str = include_str!("service_map.html");

struct Shared {
    mesh: Mesh,
    state: AdminState,
    peers: PeerClient,
}

/// Serves the admin endpoint on `listener` until the returned future is dropped:
///
/// | path | answer |
/// | --- | --- |
/// | `/` | the service map page (HTML, no external resources; the first view drawn from the graph inlined in the page) |
/// | `/graph` | this process' service graph merged with the peers' (`?local=1`: this process only; `?range=<seconds>`: the last seconds only, whole windows) |
/// | `/metrics` | Prometheus text (404 when no handle was given) |
/// | `/config_dump` | serving config, its source, the last rejection, identity, added sections |
/// | `/clusters` | endpoints per cluster with health, ejection, in-flight, EWMA |
/// | `/workloads` | this endpoint's workload and the process' other workloads with their admin endpoints ([`AdminState::sibling`]) |
/// | `/stats/prometheus` | the same, where Envoy's admin serves it; both take Envoy's `?filter=<regex>` (400 `Invalid re2 regex` if it does not compile), `?usedonly` and `?type=` |
/// | `/stats?format=prometheus` | the same (the one `/stats` format mesh renders) |
/// | `/healthz/ready` | 200 once config and identity are loaded, else 503 naming what is missing (istio-agent's path) |
/// | `/ready` | the same readiness as Envoy's admin says it: `LIVE`, or 503 `INITIALIZING` |
///
/// Every answer carries `x-mesh-workload: namespace/name`, the workload it describes (a process
/// may hold several, each with its own admin endpoint); the map page names it too, and links
/// to the admin endpoints of the process' other workloads.
///
/// Accept errors (e.g. out of file descriptors) are logged and the loop goes on.
pub async fn serve(mesh: Mesh, listener: TcpListener, state: AdminState) {
    let shared = Arc::new(Shared {
        mesh,
        state,
        peers: PeerClient::default(),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "admin: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "admin: connection ended with an error");
            }
        });
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut resp = route(shared, req).await;
    if let Ok(v) = http::HeaderValue::from_str(&workload_name(&shared.mesh)) {
        resp.headers_mut().insert("x-mesh-workload", v);
    }
    resp
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "admin paths are read-only\n",
        );
    }
    let local_only = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "local=1"));
    // `range=<seconds>`: the map's time range (whole windows of the graph, at most all kept).
    let range = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("range=")))
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_secs);
    match req.uri().path() {
        "/" => {
            let graph = graph(shared, local_only, range).await;
            let workload = workload_name(&shared.mesh);
            respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                super::map_page::render(SERVICE_MAP, &graph, &workload, &shared.state.siblings),
            )
        }
        "/graph" => json(&graph(shared, local_only, range).await),
        // `/stats/prometheus` is where Envoy's admin (and so a scrape config written for
        // Istio's sidecars) asks; each takes Envoy's `filter`, `usedonly` and `type`.
        "/metrics" | "/stats/prometheus" => match StatsQuery::parse(req.uri().query()) {
            Ok(query) => metrics(shared, &query),
            Err(BadQuery(why)) => text(StatusCode::BAD_REQUEST, why),
        },
        "/stats" => match StatsQuery::parse(req.uri().query()) {
            Ok(query) if query.wants_prometheus() => metrics(shared, &query),
            Ok(_) => text(
                StatusCode::BAD_REQUEST,
                "usage: /stats?format=prometheus (the one format mesh renders)\n",
            ),
            Err(BadQuery(why)) => text(StatusCode::BAD_REQUEST, why),
        },
        "/config_dump" => {
            let mut dump = config_dump(&shared.mesh, shared.state.identity.as_ref());
            if let serde_json::Value::Object(map) = &mut dump {
                for (name, section) in &shared.state.sections {
                    map.insert((*name).to_owned(), section.dump());
                }
            }
            json(&dump)
        }
        "/clusters" => json(&clusters(shared)),
        "/workloads" => json(&workloads(shared)),
        // Envoy's admin `/ready`: `LIVE` once ready, else 503 and the server state.
        "/ready" => {
            if missing(shared).is_empty() {
                text(StatusCode::OK, "LIVE\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "INITIALIZING\n")
            }
        }
        "/healthz/ready" => {
            let missing = missing(shared);
            if missing.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", names.join(", ")),
                )
            }
        }
        _ => text(StatusCode::NOT_FOUND, "no such admin path\n"),
    }
}

fn missing(shared: &Shared) -> Vec<super::ReadyPart> {
    match &shared.state.readiness {
        Some(gate) => gate.missing(),
        None => super::ready::missing_from_mesh(&shared.mesh),
    }
}

/// `/workloads`: the workload this endpoint shows and the other workloads of the process,
/// each with its admin endpoint.
fn workloads(shared: &Shared) -> serde_json::Value {
    let others: Vec<serde_json::Value> = shared
        .state
        .siblings
        .iter()
        .map(|(workload, admin)| {
            serde_json::json!({ "workload": workload, "admin": admin.to_string() })
        })
        .collect();
    serde_json::json!({ "workload": workload_name(&shared.mesh), "others": others })
}

/// `namespace/name` of the workload this endpoint shows: a process may hold several
/// workloads, each with its own admin endpoint.
fn workload_name(mesh: &Mesh) -> String {
    let w = &mesh.context().workload;
    format!("{}/{}", w.namespace, w.name)
}

async fn graph(shared: &Shared, local_only: bool, range: Option<std::time::Duration>) -> GraphData {
    let local = local_graph(shared, range);
    if local_only || shared.state.peers.is_empty() {
        local
    } else {
        shared
            .peers
            .merged_range(local, &shared.state.peers, range)
            .await
    }
}

fn local_graph(shared: &Shared, range: Option<std::time::Duration>) -> GraphData {
    match &shared.state.graph {
        Some(g) => g.snapshot_range(Instant::now(), range),
        None => GraphData {
            window_seconds: {
                let w = GraphWindow::default();
                (w.slot * w.slots).as_secs_f64()
            },
            ..GraphData::default()
        },
    }
}

fn clusters(shared: &Shared) -> Vec<ClusterStatus> {
    match &shared.state.clusters {
        Some(source) => source.clusters(),
        None => ClusterStatus::all_from_config(&shared.mesh.snapshot()),
    }
}

fn metrics(shared: &Shared, query: &StatsQuery) -> Response<Full<Bytes>> {
    let Some(handle) = &shared.state.prometheus else {
        return text(
            StatusCode::NOT_FOUND,
            "metrics are exported by the application's own recorder\n",
        );
    };
    record_config_metrics(&shared.mesh);
    record_endpoint_gauges(&clusters(shared));
    handle.run_upkeep();
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        query.apply(handle.render()),
    )
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => respond(StatusCode::OK, "application/json", body),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode: {e}\n"),
        ),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    resp
}
