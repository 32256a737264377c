//! One node's view of the files: the snapshot built for its namespace, labels and service
//! account, the xDS resources of that snapshot for its kind (Envoy or proxyless gRPC), and the
//! selection of what a subscription names. Both protocol variants (state of the world and
//! incremental) serve from it.

use std::collections::BTreeSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;
use mesh_core::model::{ClusterName, Snapshot};
use mesh_core::{BuildContext, MeshSettings};
use prost::Message;

use super::XdsServer;
use super::sds::{SECRET_TYPE, Secrets};
use crate::node;
use crate::translate::{
    INBOUND_PREFIX, IngressNode, NodeKind, XdsResources, api_listener_for,
    bind_outbound_to_loopback, inbound_listener_for, ingress_resources, sds_over_delta,
    to_resources, type_url,
};

/// Types in the order pushes go out: secrets, then clusters and endpoints before the listeners
/// and routes that use them (make before break). Secrets are served to authenticated callers
/// of a secured server only ([`super::sds`]).
pub(super) const PUSH_ORDER: [&str; 5] = [
    SECRET_TYPE,
    type_url::CLUSTER,
    type_url::ENDPOINTS,
    type_url::LISTENER,
    type_url::ROUTE,
];

/// Whether an empty subscription of `type_url` means "everything" (LDS and CDS).
pub(super) fn wildcard_type(type_url: &str) -> bool {
    type_url == type_url::LISTENER || type_url == type_url::CLUSTER
}

#[derive(Debug)]
pub(super) struct View {
    /// The node id, for logs.
    pub(super) id: String,
    kind: NodeKind,
    ctx: BuildContext,
    /// Where an Envoy node's inbound (Sidecar ingress) listeners go.
    ingress_node: IngressNode,
    /// Whether the node speaks incremental ADS: its SDS config sources are incremental too.
    incremental: bool,
    /// The snapshot last built for this node.
    pub(super) snapshot: Arc<Snapshot>,
    resources: XdsResources,
    /// Whether a snapshot was built for this node: until then, invalid files are left out
    /// rather than refusing the node anything (there is no last good config to keep serving).
    built: bool,
    /// The caller's secrets, on a secured server (SDS multiplexed on ADS).
    secrets: Option<std::sync::Mutex<Secrets>>,
}

impl View {
    /// An empty view for `node`; [`rebuild`](Self::rebuild) fills it.
    pub(super) fn new(node: &Node, settings: &MeshSettings, peer: &str, incremental: bool) -> Self {
        let kind = if node::is_proxyless(node) {
            NodeKind::ProxylessGrpc
        } else {
            NodeKind::Envoy
        };
        let ctx = node::build_context(node, settings);
        tracing::info!(%peer, node = %node.id, namespace = %ctx.workload.namespace, ?kind, "xDS client connected");
        Self {
            id: node.id.clone(),
            kind,
            ctx,
            ingress_node: node::ingress_node(node),
            incremental,
            snapshot: Arc::new(Snapshot::empty()),
            resources: XdsResources::default(),
            built: false,
            secrets: None,
        }
    }

    /// Serves `secrets` as SDS resources on this stream.
    pub(super) fn with_secrets(mut self, secrets: Secrets) -> Self {
        self.secrets = Some(std::sync::Mutex::new(secrets));
        self
    }

    /// When the workload certificate is due again, if one was served.
    pub(super) fn renew_at(&self) -> Option<tokio::time::Instant> {
        let secrets = self.secrets.as_ref()?;
        secrets.lock().unwrap_or_else(|p| p.into_inner()).renew_at()
    }

    /// Forgets the workload certificate: the next response mints a new one.
    pub(super) fn expire_secrets(&self) {
        if let Some(secrets) = &self.secrets {
            secrets.lock().unwrap_or_else(|p| p.into_inner()).expire();
        }
    }

    /// The secrets among `names` (none for an unsecured server or an unknown name).
    fn select_secrets(&self, names: Option<&BTreeSet<String>>) -> Vec<(String, Any)> {
        let (Some(secrets), Some(names)) = (&self.secrets, names) else {
            return Vec::new();
        };
        let mut secrets = secrets.lock().unwrap_or_else(|p| p.into_inner());
        names
            .iter()
            .filter_map(|name| match secrets.get(name) {
                Ok(found) => found.map(|(any, _)| (name.clone(), any)),
                Err(status) => {
                    tracing::error!(node = %self.id, %status, "secret not minted");
                    None
                }
            })
            .collect()
    }

    /// Rebuilds from the files; false (and the old view kept) when they are invalid from this
    /// node's point of view, or unchanged. The first build serves the valid files when some
    /// are not, and logs the others.
    pub(super) async fn rebuild(&mut self, server: &XdsServer) -> bool {
        let (server, ctx, first) = (server.clone(), self.ctx.clone(), !self.built);
        let id = self.id.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            if !first {
                return server.load_for(&ctx);
            }
            let (snapshot, refused) = server.load_valid_for(&ctx)?;
            for d in refused.iter().flat_map(|e| e.errors()) {
                tracing::warn!(node = %id, error = %d, "config file invalid for this node; left out");
            }
            Ok(snapshot)
        })
        .await;
        match loaded {
            Ok(Ok(snapshot)) if snapshot.version == self.snapshot.version => {
                self.built = true;
                false
            }
            Ok(Ok(snapshot)) => {
                self.built = true;
                self.resources = to_resources(&snapshot, self.kind);
                if self.kind == NodeKind::Envoy {
                    self.add_ingress(&snapshot);
                    if self.incremental {
                        sds_over_delta(&mut self.resources);
                    }
                }
                self.snapshot = Arc::new(snapshot);
                true
            }
            Ok(Err(error)) => {
                tracing::warn!(node = %self.id, %error, "config invalid for this node; the last good one keeps being served");
                false
            }
            Err(error) => {
                tracing::error!(node = %self.id, %error, "config load failed");
                false
            }
        }
    }

    /// Adds an Envoy node's inbound listeners and their clusters (the Sidecar's ingress
    /// listeners), logging those left out; a node that does not intercept gets its outbound
    /// listeners on the loopback.
    fn add_ingress(&mut self, snapshot: &Snapshot) {
        if !self.ingress_node.intercepted {
            bind_outbound_to_loopback(&mut self.resources.listeners);
        }
        let ingress = ingress_resources(&snapshot.inbound, self.ingress_node);
        for reason in &ingress.skipped {
            tracing::warn!(node = %self.id, %reason, "ingress listener left out");
        }
        self.resources.listeners.extend(ingress.listeners);
        self.resources.clusters.extend(ingress.clusters);
    }

    /// The resources of `type_url` that `names` asks for, by name and encoded: every resource
    /// for `None` (a wildcard subscription) or a set holding `*`, plus each named one. Listeners a
    /// proxyless node names are built for the name: its targets (`host:port`) and its inbound
    /// listeners (`xds.istio.io/grpc/lds/inbound/ip:port`).
    pub(super) fn select(
        &self,
        type_url: &str,
        names: Option<&BTreeSet<String>>,
    ) -> Vec<(String, Any)> {
        let star = names.is_none_or(|n| n.contains("*"));
        let wanted = |name: &str| star || names.is_some_and(|n| n.contains(name));
        let res = &self.resources;
        match type_url {
            type_url::LISTENER => {
                let mut out = encode_all(&res.listeners, |l| &l.name, &wanted, type_url);
                for n in names.into_iter().flatten() {
                    if n == "*" || out.iter().any(|(name, _)| name == n) {
                        continue;
                    }
                    let built = if n.starts_with(INBOUND_PREFIX) {
                        inbound_listener_for(&self.snapshot.inbound, n, self.kind)
                    } else if self.kind == NodeKind::ProxylessGrpc {
                        api_listener_for(&self.snapshot, n)
                    } else {
                        None
                    };
                    out.extend(built.map(|l| (l.name.clone(), any(type_url, &l))));
                }
                out
            }
            type_url::ROUTE => {
                encode_all(&res.route_configurations, |r| &r.name, &wanted, type_url)
            }
            SECRET_TYPE => self.select_secrets(names),
            type_url::CLUSTER => encode_all(&res.clusters, |c| &c.name, &wanted, type_url),
            _ => encode_all(
                &res.load_assignments,
                |e| &e.cluster_name,
                &wanted,
                type_url,
            ),
        }
    }
}

impl View {
    /// The version of the resource `name` of `type_url` (encoded as `any`), for incremental
    /// xDS: a hash of the model it was built from, so equal content has one version in every
    /// build. (Its encoding would not do: protobuf maps, such as metadata, encode in hash-map
    /// order, which differs from one build to the next.) A cluster's version leaves its
    /// endpoints out (they are EDS); a route configuration's takes in the clusters' balancing,
    /// which writes its hash policies; a listener's is its encoding (no maps of more than one
    /// entry).
    pub(super) fn version(&self, type_url: &str, name: &str, any: &Any) -> String {
        let cluster = || self.snapshot.cluster(&ClusterName::new(name));
        let text = match type_url {
            type_url::CLUSTER => cluster().and_then(|c| {
                let mut v = serde_json::to_value(c.as_ref()).ok()?;
                if let Some(o) = v.as_object_mut() {
                    o.remove("endpoints");
                }
                Some(v.to_string())
            }),
            type_url::ENDPOINTS => cluster().and_then(|c| serde_json::to_string(&c.endpoints).ok()),
            type_url::ROUTE => self
                .snapshot
                .routes
                .values()
                .find(|rc| rc.name == name)
                .and_then(|rc| {
                    let lb: Vec<_> = self
                        .snapshot
                        .clusters
                        .values()
                        .map(|c| (&c.name, &c.lb))
                        .collect();
                    serde_json::to_string(&(rc, lb)).ok()
                }),
            _ => None,
        };
        let mut h = DefaultHasher::new();
        match text {
            Some(t) => t.hash(&mut h),
            None => any.value.hash(&mut h),
        }
        format!("{:016x}", h.finish())
    }
}

/// `m` as an `Any` of `type_url`.
pub(super) fn any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: m.encode_to_vec(),
    }
}

/// The wanted items, by name, encoded.
fn encode_all<M: Message>(
    items: &[M],
    name: impl Fn(&M) -> &str,
    wanted: &dyn Fn(&str) -> bool,
    type_url: &str,
) -> Vec<(String, Any)> {
    items
        .iter()
        .filter(|r| wanted(name(r)))
        .map(|r| (name(r).to_owned(), any(type_url, r)))
        .collect()
}

/// Logs and counts a client's answer to a response: a NACK with its error, or an ACK.
pub(super) fn record_answer(node: &str, type_url: &str, version: &str, error: Option<&str>) {
    let short = type_url.rsplit('.').next().unwrap_or(type_url).to_owned();
    match error {
        Some(error) => {
            tracing::warn!(%node, r#type = %short, %version, %error, "xDS NACK");
            metrics::counter!("mesh_xds_server_responses_total", "type" => short, "result" => "nack").increment(1);
        }
        None => {
            tracing::info!(%node, r#type = %short, %version, "xDS ACK");
            metrics::counter!("mesh_xds_server_responses_total", "type" => short, "result" => "ack").increment(1);
        }
    }
}
