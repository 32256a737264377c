//! Fetching other processes' `/graph` to draw one map of several workloads.
//!
//! Peers are asked for their local graph only (`/graph?local=1`), so peers listing each other
//! do not recurse; each answer is size-limited and time-limited, and a peer that fails is
//! named in the result's `peer_errors` rather than failing the page.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::telemetry::GraphData;

/// Largest `/graph` answer accepted from a peer.
pub const MAX_PEER_GRAPH_BYTES: usize = 4 * 1024 * 1024;

/// How long a peer has to answer.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// A plain-HTTP client for peers' admin endpoints.
#[derive(Clone, Debug)]
pub struct PeerClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for PeerClient {
    fn default() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl PeerClient {
    /// Fetches the local graph of the admin endpoint at `base` (`http://host:port`).
    pub async fn local_graph(&self, base: &Uri) -> Result<GraphData, String> {
        self.local_graph_range(base, None).await
    }

    /// [`local_graph`](Self::local_graph) over the last `range` (`/graph?local=1&range=<s>`).
    pub async fn local_graph_range(
        &self,
        base: &Uri,
        range: Option<std::time::Duration>,
    ) -> Result<GraphData, String> {
        let uri = graph_uri(base, range)?;
        let fetch = async {
            let resp = self
                .client
                .get(uri.clone())
                .await
                .map_err(|e| format!("{uri}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("{uri}: status {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_PEER_GRAPH_BYTES)
                .collect()
                .await
                .map_err(|e| format!("{uri}: {e}"))?
                .to_bytes();
            serde_json::from_slice::<GraphData>(&body).map_err(|e| format!("{uri}: {e}"))
        };
        tokio::time::timeout(PEER_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("{uri}: no answer within {PEER_TIMEOUT:?}"))?
    }

    /// This process' graph merged with every peer's; failures are listed in `peer_errors`.
    pub async fn merged(&self, local: GraphData, peers: &[Uri]) -> GraphData {
        self.merged_range(local, peers, None).await
    }

    /// [`merged`](Self::merged), the peers asked for the last `range`.
    pub async fn merged_range(
        &self,
        local: GraphData,
        peers: &[Uri],
        range: Option<std::time::Duration>,
    ) -> GraphData {
        let fetches = peers.iter().map(|p| self.local_graph_range(p, range));
        let results = futures_util::future::join_all(fetches).await;
        let mut errors = Vec::new();
        let mut parts = vec![local];
        for r in results {
            match r {
                Ok(g) => parts.push(g),
                Err(e) => errors.push(e),
            }
        }
        let mut merged = GraphData::merge(parts);
        merged.peer_errors.extend(errors);
        merged
    }
}

fn graph_uri(base: &Uri, range: Option<std::time::Duration>) -> Result<Uri, String> {
    let authority = base
        .authority()
        .ok_or_else(|| format!("{base}: peer admin URL has no host"))?;
    let scheme = base.scheme_str().unwrap_or("http");
    if scheme != "http" {
        return Err(format!("{base}: peer admin URLs are plain http"));
    }
    let range = range.map_or(String::new(), |r| format!("&range={}", r.as_secs().max(1)));
    format!("http://{authority}/graph?local=1{range}")
        .parse()
        .map_err(|e| format!("{base}: {e}"))
}
