//! One ADS stream: the node's view, its subscriptions, versions and nonces.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::model::Snapshot;
use mesh_core::{BuildContext, MeshSettings};
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::XdsServer;
use crate::xds::node;
use crate::xds::translate::{
    INBOUND_PREFIX, NodeKind, XdsResources, api_listener_for, inbound_listener_for, to_resources,
    type_url,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;

/// Types in the order pushes go out: clusters and endpoints before the listeners and routes
/// that use them (make before break).
const PUSH_ORDER: [&str; 4] = [
    type_url::CLUSTER,
    type_url::ENDPOINTS,
    type_url::LISTENER,
    type_url::ROUTE,
];

#[derive(Debug, Default)]
struct Subscription {
    /// `None`: wildcard (LDS and CDS asked with no names).
    names: Option<BTreeSet<String>>,
    last_nonce: String,
}

#[derive(Debug)]
struct View {
    id: String,
    kind: NodeKind,
    ctx: BuildContext,
    snapshot: Arc<Snapshot>,
    resources: XdsResources,
}

enum Event {
    Stop,
    Request(Box<Result<Option<DiscoveryRequest>, tonic::Status>>),
    Changed(bool),
}

pub(super) struct AdsStream {
    server: XdsServer,
    settings: MeshSettings,
    changes: watch::Receiver<Arc<Snapshot>>,
    stop: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<DiscoveryResponse, tonic::Status>>,
    peer: String,
    view: Option<View>,
    subs: HashMap<&'static str, Subscription>,
    nonce: u64,
}

impl AdsStream {
    pub(super) fn new(
        server: XdsServer,
        settings: MeshSettings,
        changes: watch::Receiver<Arc<Snapshot>>,
        stop: watch::Receiver<bool>,
        tx: mpsc::Sender<Result<DiscoveryResponse, tonic::Status>>,
        peer: String,
    ) -> Self {
        Self {
            server,
            settings,
            changes,
            stop,
            tx,
            peer,
            view: None,
            subs: HashMap::new(),
            nonce: 0,
        }
    }

    pub(super) async fn run(mut self, mut requests: tonic::Streaming<DiscoveryRequest>) {
        let (mut stop, mut changes) = (self.stop.clone(), self.changes.clone());
        loop {
            let event = tokio::select! {
                _ = stop.wait_for(|s| *s) => Event::Stop,
                request = requests.message() => Event::Request(Box::new(request)),
                changed = changes.changed() => Event::Changed(changed.is_ok()),
            };
            match event {
                Event::Request(request) => match *request {
                    Ok(Some(r)) => {
                        if !self.handle(r).await {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(peer = %self.peer, %status, "xDS stream ended");
                        return;
                    }
                },
                Event::Stop => {
                    let _ = self
                        .tx
                        .send(Err(tonic::Status::unavailable("xDS server stopping")))
                        .await;
                    return;
                }
                Event::Changed(false) => return,
                Event::Changed(true) => {
                    if self.view.is_some() && self.rebuild().await && !self.push_all().await {
                        return;
                    }
                }
            }
        }
    }

    /// Handles one request; false when the stream is done.
    async fn handle(&mut self, r: DiscoveryRequest) -> bool {
        if self.view.is_none() {
            let Some(node) = r.node.clone() else {
                let _ = self
                    .tx
                    .send(Err(tonic::Status::invalid_argument(
                        "the first request must carry the node",
                    )))
                    .await;
                return false;
            };
            let kind = if node::is_proxyless(&node) {
                NodeKind::ProxylessGrpc
            } else {
                NodeKind::Envoy
            };
            let ctx = node::build_context(&node, &self.settings);
            tracing::info!(peer = %self.peer, node = %node.id, namespace = %ctx.workload.namespace, ?kind, "xDS client connected");
            self.view = Some(View {
                id: node.id,
                kind,
                ctx,
                snapshot: Arc::new(Snapshot::empty()),
                resources: XdsResources::default(),
            });
            self.rebuild().await;
        }
        let Some(type_url) = PUSH_ORDER.iter().copied().find(|t| *t == r.type_url) else {
            tracing::warn!(peer = %self.peer, type_url = %r.type_url, "xDS request for a type not served; ignored");
            return true;
        };
        let node_id = self.view.as_ref().map(|v| v.id.clone()).unwrap_or_default();
        let sub = self.subs.entry(type_url).or_default();
        if !r.response_nonce.is_empty() && r.response_nonce != sub.last_nonce {
            return true; // an answer to an older response: superseded
        }
        let short = type_url.rsplit('.').next().unwrap_or(type_url);
        if let Some(error) = &r.error_detail {
            tracing::warn!(node = %node_id, r#type = short, version = %r.version_info, error = %error.message, "xDS NACK");
            metrics::counter!("mesh_xds_server_responses_total", "type" => short, "result" => "nack").increment(1);
        } else if !r.response_nonce.is_empty() {
            tracing::info!(node = %node_id, r#type = short, version = %r.version_info, "xDS ACK");
            metrics::counter!("mesh_xds_server_responses_total", "type" => short, "result" => "ack").increment(1);
        }
        let wildcard = r.resource_names.is_empty()
            && (type_url == type_url::LISTENER || type_url == type_url::CLUSTER);
        let names = (!wildcard).then(|| r.resource_names.iter().cloned().collect::<BTreeSet<_>>());
        let changed = names != sub.names || sub.last_nonce.is_empty();
        sub.names = names;
        if changed {
            return self.push(type_url).await;
        }
        true
    }

    /// Rebuilds the node's view from the files; false (and the old view kept) when they are
    /// invalid from this node's point of view or unchanged.
    async fn rebuild(&mut self) -> bool {
        let Some(view) = &self.view else { return false };
        let (server, ctx) = (self.server.clone(), view.ctx.clone());
        let loaded = tokio::task::spawn_blocking(move || server.load_for(&ctx)).await;
        let Some(view) = &mut self.view else {
            return false;
        };
        match loaded {
            Ok(Ok(snapshot)) if snapshot.version == view.snapshot.version => false,
            Ok(Ok(snapshot)) => {
                view.resources = to_resources(&snapshot, view.kind);
                view.snapshot = Arc::new(snapshot);
                true
            }
            Ok(Err(error)) => {
                tracing::warn!(node = %view.id, %error, "config invalid for this node; the last good one keeps being served");
                false
            }
            Err(error) => {
                tracing::error!(node = %view.id, %error, "config load failed");
                false
            }
        }
    }

    async fn push_all(&mut self) -> bool {
        for t in PUSH_ORDER {
            if self.subs.contains_key(t) && !self.push(t).await {
                return false;
            }
        }
        true
    }

    /// Sends the current resources of `type_url` the stream subscribed to.
    async fn push(&mut self, type_url: &'static str) -> bool {
        let (Some(view), Some(sub)) = (&self.view, self.subs.get_mut(type_url)) else {
            return true;
        };
        // `*` among names: everything, plus the named resources (xDS's wildcard with names).
        let star = sub.names.as_ref().is_none_or(|n| n.contains("*"));
        let wanted = |name: &str| star || sub.names.as_ref().is_some_and(|n| n.contains(name));
        let res = &view.resources;
        let resources: Vec<Any> = match type_url {
            type_url::LISTENER => {
                let mut listeners: Vec<Listener> = if star {
                    res.listeners.clone()
                } else {
                    Vec::new()
                };
                for n in sub.names.iter().flatten() {
                    if n == "*" || listeners.iter().any(|l| l.name == *n) {
                        continue;
                    }
                    listeners.extend(if n.starts_with(INBOUND_PREFIX) {
                        inbound_listener_for(&view.snapshot.inbound, n, view.kind)
                    } else if view.kind == NodeKind::ProxylessGrpc {
                        api_listener_for(&view.snapshot, n)
                    } else {
                        res.listeners.iter().find(|l| l.name == *n).cloned()
                    });
                }
                listeners.iter().map(|l| any(type_url, l)).collect()
            }
            type_url::ROUTE => select(&res.route_configurations, |r| &r.name, &wanted, type_url),
            type_url::CLUSTER => select(&res.clusters, |c| &c.name, &wanted, type_url),
            _ => select(
                &res.load_assignments,
                |e| &e.cluster_name,
                &wanted,
                type_url,
            ),
        };
        if sub.names.as_ref().is_some_and(|n| n.is_empty()) {
            return true;
        }
        self.nonce += 1;
        sub.last_nonce = self.nonce.to_string();
        let response = DiscoveryResponse {
            version_info: view.snapshot.version.clone(),
            resources,
            type_url: type_url.to_owned(),
            nonce: sub.last_nonce.clone(),
            ..Default::default()
        };
        self.tx.send(Ok(response)).await.is_ok()
    }
}

fn any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: m.encode_to_vec(),
    }
}

/// The resources of one type a stream asked for, by their names, encoded.
fn select<M: Message>(
    items: &[M],
    name: impl Fn(&M) -> &str,
    wanted: &dyn Fn(&str) -> bool,
    type_url: &str,
) -> Vec<Any> {
    items
        .iter()
        .filter(|r| wanted(name(r)))
        .map(|r| any(type_url, r))
        .collect()
}
