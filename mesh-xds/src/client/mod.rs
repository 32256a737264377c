//! The ADS client: mesh as a proxyless xDS workload, under istiod or `mesh xds serve`.
//!
//! One state-of-the-world ADS stream carries LDS (the workload's targets as API listeners,
//! `host:port`, or every listener when none are named; plus, for each address the workload
//! serves on, its inbound listener, gRFC A36), RDS (the route configurations the listeners name),
//! CDS (every cluster) and EDS (the assignments the EDS clusters name), following the xDS
//! protocol and gRFCs A27/A36/A41/A46/A57:
//!
//! - each response is ACKed with its version and nonce, or NACKed with the previous version and
//!   an `error_detail` naming every bad resource and field; the valid resources of a partly bad
//!   response are still used;
//! - every complete, valid set (each listener's route configuration and each EDS cluster's
//!   assignment present, or known not to exist) becomes a [`Snapshot`] applied through
//!   [`Mesh::apply`]; the last good one keeps serving through NACKs and disconnects;
//! - a resource named but not sent within 15 s of asking (counted only while connected) does not
//!   exist;
//! - lost streams reconnect with jittered exponential backoff ([`Backoff`]: 1 s, ×1.6, ≤ 120 s),
//!   immediately and with the backoff reset when the lost stream had received a response;
//! - fallback control planes (gRFC A71): when a server cannot be reached (or its stream ends
//!   before any response) and the client does not hold a complete config, the next server is
//!   tried at once; after the last, the client backs off and starts again from the primary.
//!   With a complete config cached, the client keeps serving it and retries only the primary.
//!   While on a fallback, the primary is retried in the background on the backoff schedule; the
//!   first response on its stream moves the client back to it and closes the fallback stream;
//! - an inbound listener sets its port's mutual-TLS mode and authorization policies (its RBAC
//!   filters); one that does not exist leaves the port refusing every request;
//! - [`XdsClient::ready`] resolves once the first complete config is applied;
//! - the background worker stops when the last [`XdsClient`] handle is dropped;
//! - [`XdsClient::dump`] shows each resource's version and state (ACKed, NACKed but cached,
//!   requested, does not exist) for the admin `/config_dump`.
//!
//! [`Snapshot`]: mesh_core::model::Snapshot

mod backoff;
pub mod certs;
mod connect;
mod probe;
mod status;
mod subscription;
mod tls;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use mesh_core::{Mesh, Workload};
use tokio::sync::{oneshot, watch};

pub use backoff::Backoff;
pub use status::{ResourceState, ResourceStatus, ServerStatus, XdsStatus};
pub use tls::XdsTls;

use super::bootstrap::{Bootstrap, XdsTarget};

/// How the client connects and what it asks for.
#[derive(Clone, Debug)]
pub struct XdsClientConfig {
    /// The control planes in order of preference: the primary first, then the fallbacks
    /// (gRFC A71). Empty only when built so by hand: the client then never connects and
    /// retries with backoff.
    pub servers: Vec<XdsTarget>,
    /// Per server, in the order of `servers`: TLS towards it (istiod's 15012, `mesh xds serve
    /// --ca-dir`); missing entries and `None` are plaintext.
    pub server_tls: Vec<Option<XdsTls>>,
    /// The node announced on the stream.
    pub node: Node,
    /// API listener names to subscribe to (`host:port` targets); empty subscribes to every
    /// listener (wildcard).
    pub listeners: Vec<String>,
    /// Inbound listener names to subscribe to, one per address this workload serves on
    /// ([`serving`](Self::serving)).
    pub server_listeners: Vec<String>,
    /// The inbound listener name template (`%s` is `ip:port`): the bootstrap's
    /// `server_listener_resource_name_template`, or Istio's
    /// `xds.istio.io/grpc/lds/inbound/%s`.
    pub server_listener_template: String,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// The does-not-exist timeout (15 s).
    pub resource_timeout: Duration,
    /// Connect timeout of one attempt.
    pub connect_timeout: Duration,
    /// Per server, in the order of `servers`: whether its bootstrap entry lists the
    /// `ignore_resource_deletion` server feature (gRFC A53). While streaming from such a
    /// server, listeners and clusters a state-of-the-world response leaves out are kept (and
    /// the deletion logged) until the server sends them again. Missing entries are false.
    pub ignore_resource_deletion: Vec<bool>,
    /// Seed of the backoff jitter: drawn from the operating system's randomness for each
    /// config, so a fleet that lost its control plane does not reconnect in lockstep. Tests
    /// set it ([`seed`](Self::seed)) to replay delays.
    pub seed: u64,
}

impl XdsClientConfig {
    /// A client for `workload`, announced with Istio's node id and metadata (`GENERATOR: grpc`),
    /// so istiod builds its config as for a proxyless gRPC workload.
    pub fn new(server: XdsTarget, workload: &Workload) -> Self {
        let node = Node {
            id: format!(
                "sidecar~127.0.0.1~{}.{ns}~{ns}.svc.cluster.local",
                workload.name,
                ns = workload.namespace
            ),
            metadata: Some(super::node::workload_metadata(workload)),
            user_agent_name: "mesh".into(),
            ..Default::default()
        };
        Self::with_node(vec![server], node)
    }

    /// A client from a gRPC bootstrap file (the servers, primary first, and node it names).
    pub fn from_bootstrap(bootstrap: &Bootstrap) -> Self {
        let servers = bootstrap.servers.iter().map(|s| s.target.clone()).collect();
        let mut config = Self::with_node(servers, bootstrap.node.clone());
        config.server_tls = bootstrap.servers.iter().map(|s| s.tls.clone()).collect();
        config.ignore_resource_deletion = bootstrap
            .servers
            .iter()
            .map(|s| {
                s.server_features
                    .iter()
                    .any(|f| f == "ignore_resource_deletion")
            })
            .collect();
        if let Some(t) = &bootstrap.server_listener_resource_name_template {
            config.server_listener_template = t.clone();
        }
        config
    }

    fn with_node(servers: Vec<XdsTarget>, node: Node) -> Self {
        Self {
            servers,
            server_tls: Vec::new(),
            node,
            listeners: Vec::new(),
            server_listeners: Vec::new(),
            server_listener_template: format!("{}%s", crate::translate::INBOUND_PREFIX),
            backoff: Backoff::default(),
            resource_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            ignore_resource_deletion: Vec::new(),
            seed: rand::random(),
        }
    }

    /// Subscribes to these API listeners only (`host:port`).
    pub fn listeners<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.listeners = names.into_iter().map(Into::into).collect();
        self
    }

    /// Takes this workload's server side on `addr` from the control plane: its inbound
    /// listener (named from the template) sets the port's mutual-TLS mode and authorization
    /// policies. Until it arrives the client is not ready; if it does not exist, every request
    /// on the port is refused (gRFC A36).
    pub fn serving(mut self, addr: std::net::SocketAddr) -> Self {
        let name = super::bootstrap::listener_name(&self.server_listener_template, addr);
        self.server_listeners.push(name);
        self
    }

    /// Connects to the servers configured so far over `tls` (the primary's: use
    /// [`XdsClientConfig::fallback_tls`] for a fallback of its own).
    pub fn tls(mut self, tls: XdsTls) -> Self {
        self.server_tls = vec![Some(tls); self.servers.len()];
        self
    }

    /// Appends a fallback control plane reached over `tls`.
    pub fn fallback_tls(mut self, server: XdsTarget, tls: XdsTls) -> Self {
        self.server_tls.resize(self.servers.len(), None);
        self.servers.push(server);
        self.server_tls.push(Some(tls));
        self
    }

    /// TLS towards server `index`, if any.
    pub(crate) fn tls_for(&self, index: usize) -> Option<&XdsTls> {
        self.server_tls.get(index).and_then(Option::as_ref)
    }

    /// Appends a fallback control plane, tried after the primary and the fallbacks before it
    /// when the client has no complete config (gRFC A71).
    pub fn fallback(mut self, server: XdsTarget) -> Self {
        self.servers.push(server);
        self
    }

    /// Sets the reconnect backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets gRFC A53's `ignore_resource_deletion` for every server configured so far.
    pub fn ignore_resource_deletion(mut self, ignore: bool) -> Self {
        self.ignore_resource_deletion = vec![ignore; self.servers.len()];
        self
    }

    /// Sets the seed of the backoff jitter (by default drawn from the OS).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the does-not-exist timeout.
    pub fn resource_timeout(mut self, timeout: Duration) -> Self {
        self.resource_timeout = timeout;
        self
    }
}

/// A handle to the running client. Cheap to clone; the worker stops when the last clone drops.
#[derive(Clone, Debug)]
pub struct XdsClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    status: watch::Receiver<XdsStatus>,
    _stop: oneshot::Sender<()>,
}

impl XdsClient {
    /// Starts the client: it connects in the background and applies every complete config to
    /// `mesh`. Must be called within a tokio runtime.
    pub fn start(mesh: Mesh, config: XdsClientConfig) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (status_tx, status) = watch::channel(XdsStatus::default());
        tokio::spawn(worker::Worker::new(mesh, config, status_tx).run(stop_rx));
        Self {
            shared: Arc::new(Shared {
                status,
                _stop: stop_tx,
            }),
        }
    }

    /// Resolves once the first complete config has been applied to the mesh.
    pub async fn ready(&self) {
        let mut status = self.shared.status.clone();
        // The sender lives as long as the worker, which lives as long as this handle.
        let _ = status.wait_for(|s| s.ready).await;
    }

    /// Whether a complete config has been applied.
    pub fn is_ready(&self) -> bool {
        self.shared.status.borrow().ready
    }

    /// The current status: connection, versions and each resource's state.
    pub fn status(&self) -> XdsStatus {
        self.shared.status.borrow().clone()
    }

    /// The status as JSON, for the admin `/config_dump`:
    /// `AdminState::new().section("xds", move || client.dump())`.
    pub fn dump(&self) -> serde_json::Value {
        serde_json::to_value(self.status()).unwrap_or(serde_json::Value::Null)
    }

    /// A receiver of every status change.
    pub fn subscribe_status(&self) -> watch::Receiver<XdsStatus> {
        self.shared.status.clone()
    }
}
