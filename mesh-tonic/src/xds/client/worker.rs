//! The client's background worker: connection loop over the primary and fallback control
//! planes (gRFC A71), one ADS stream in use at a time (plus, while on a fallback, a probe of the
//! primary), the resource caches, ACK/NACK, the does-not-exist timer, and applying complete
//! configs.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration as XdsRouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use mesh_core::Mesh;
use mesh_core::config::ConfigError;
use mesh_core::model::{Snapshot, SnapshotSource};
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::backoff::BackoffState;
use super::status::{ResourceState, ResourceStatus, XdsStatus};
use super::{XdsClientConfig, connect};
use crate::xds::stream::ReceiverStream;
use crate::xds::translate::{
    Decoded, ResourceKind, XdsError, assemble, decode_cluster, decode_listener,
    decode_load_assignment, decode_route_configuration, not_serving, type_url,
};

const KINDS: [ResourceKind; 4] = [
    ResourceKind::Listener,
    ResourceKind::RouteConfiguration,
    ResourceKind::Cluster,
    ResourceKind::Endpoints,
];

fn url(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Listener => type_url::LISTENER,
        ResourceKind::RouteConfiguration => type_url::ROUTE,
        ResourceKind::Cluster => type_url::CLUSTER,
        ResourceKind::Endpoints => type_url::ENDPOINTS,
    }
}

/// Per resource type: subscription, versions, nonce, states.
#[derive(Debug, Default)]
struct TypeState {
    /// Subscribed to everything (LDS with no names, CDS).
    wildcard: bool,
    names: BTreeSet<String>,
    /// Version of the last accepted response.
    version: String,
    /// The server (index into the config's servers) that sent `version`: versions are one
    /// server's, so another server is asked without one.
    version_server: Option<usize>,
    /// Nonce of the last response on the current stream.
    nonce: String,
    /// Whether any response of this type was ever received.
    received: bool,
    /// Named resources asked for and not received, with when the timer started.
    pending: BTreeMap<String, Instant>,
    /// Named resources the server does not have.
    does_not_exist: BTreeSet<String>,
    /// Version and state per resource name.
    states: BTreeMap<String, (String, ResourceState)>,
}

impl TypeState {
    /// The request of this type on a stream to `server`.
    fn request(&self, kind: ResourceKind, server: usize) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: if self.version_server == Some(server) {
                self.version.clone()
            } else {
                String::new()
            },
            // A wildcard subscription that also names resources (a server's inbound
            // listeners, which wildcard LDS does not send) asks for `*` and those names.
            resource_names: match (self.wildcard, self.names.is_empty()) {
                (true, true) => Vec::new(),
                (true, false) => std::iter::once("*".to_owned())
                    .chain(self.names.iter().cloned())
                    .collect(),
                (false, _) => self.names.iter().cloned().collect(),
            },
            type_url: url(kind).to_owned(),
            response_nonce: self.nonce.clone(),
            ..Default::default()
        }
    }

    /// Whether a named resource the client has no valid copy of is settled: known not to
    /// exist, or received invalid (NACKed with nothing cached), so waiting longer changes
    /// nothing until the server sends it again.
    fn settled(&self, name: &str) -> bool {
        self.does_not_exist.contains(name)
            || matches!(
                self.states.get(name),
                Some((_, ResourceState::Nacked { .. }))
            )
    }

    /// Starts the does-not-exist timer of every named resource not yet received.
    fn arm(&mut self, now: Instant, have: impl Fn(&str) -> bool) {
        for name in &self.names {
            if !have(name) && !self.does_not_exist.contains(name) {
                self.pending.entry(name.clone()).or_insert(now);
                self.states
                    .entry(name.clone())
                    .or_insert((String::new(), ResourceState::Requested));
            }
        }
    }
}

/// How a stream ended.
struct StreamEnd {
    /// The server the stream was to (the primary after a switch back from a fallback).
    server: usize,
    got_response: bool,
    error: String,
}

/// The primary's stream, opened while the client was on a fallback, once it has delivered its
/// first response.
struct Probed {
    tx: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
    first: DiscoveryResponse,
    /// The resource names asked for on it, by type URL.
    sent: BTreeMap<String, Vec<String>>,
}

type Probe = Pin<Box<dyn Future<Output = Result<Box<Probed>, String>> + Send>>;

/// What woke the stream loop.
enum Event {
    Message(Result<Option<DiscoveryResponse>, tonic::Status>),
    Deadline,
    Probe(Result<Box<Probed>, String>),
}

pub(super) struct Worker {
    mesh: Mesh,
    config: XdsClientConfig,
    status: watch::Sender<XdsStatus>,
    types: BTreeMap<ResourceKind, TypeState>,
    decoded: Decoded,
    applied: Option<Snapshot>,
    generation: u64,
    logged_warnings: HashSet<String>,
    /// The server of the stream in use (index into the config's servers).
    current: usize,
}

impl Worker {
    pub(super) fn new(
        mesh: Mesh,
        config: XdsClientConfig,
        status: watch::Sender<XdsStatus>,
    ) -> Self {
        let mut types: BTreeMap<ResourceKind, TypeState> =
            KINDS.iter().map(|k| (*k, TypeState::default())).collect();
        if let Some(lds) = types.get_mut(&ResourceKind::Listener) {
            lds.wildcard = config.listeners.is_empty();
            lds.names = config
                .listeners
                .iter()
                .chain(&config.server_listeners)
                .cloned()
                .collect();
        }
        if let Some(cds) = types.get_mut(&ResourceKind::Cluster) {
            cds.wildcard = true;
        }
        let servers = config
            .servers
            .iter()
            .map(|t| super::ServerStatus {
                target: t.to_string(),
                ..Default::default()
            })
            .collect();
        status.send_modify(|s| s.servers = servers);
        Self {
            mesh,
            config,
            status,
            types,
            decoded: Decoded::default(),
            applied: None,
            generation: 0,
            logged_warnings: HashSet::new(),
            current: 0,
        }
    }

    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut backoff = BackoffState::new(self.config.backoff.clone(), self.config.seed);
        let servers = self.config.servers.len();
        let mut index = 0;
        loop {
            let end = tokio::select! {
                _ = &mut stop => return,
                end = self.stream(index) => end,
            };
            self.disconnected();
            // gRFC A71: without a complete config, the next server is tried at once; after the
            // last (or with a complete config cached, which keeps serving), back off and start
            // again from the primary. A stream that got a response reconnects at once.
            let (next, delay) = if end.got_response {
                backoff.reset();
                (0, Duration::ZERO)
            } else if end.server + 1 < servers && !self.complete() {
                (end.server + 1, Duration::ZERO)
            } else {
                (0, backoff.next_delay())
            };
            tracing::warn!(
                server = %self.target_name(end.server),
                error = %end.error,
                next = %self.target_name(next),
                ?delay,
                "xDS stream lost; the last good config keeps serving"
            );
            metrics::counter!("mesh_xds_client_disconnects_total").increment(1);
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(delay) => {}
            }
            index = next;
        }
    }

    fn target_name(&self, server: usize) -> String {
        self.config
            .servers
            .get(server)
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    fn count_attempt(&self, server: usize) {
        self.status.send_modify(|s| {
            s.connect_attempts += 1;
            if let Some(c) = s.servers.get_mut(server) {
                c.connect_attempts += 1;
            }
        });
    }

    /// A stream to `server` is the one in use.
    fn use_stream(&mut self, server: usize) {
        self.current = server;
        let target = self.target_name(server);
        self.status.send_modify(|s| {
            s.connected = true;
            s.connections += 1;
            s.server = Some(target.clone());
            s.on_fallback = server > 0;
            if let Some(c) = s.servers.get_mut(server) {
                c.connections += 1;
            }
        });
        if server > 0 {
            tracing::warn!(server = %target, "xDS stream open to a fallback control plane; the primary is retried in the background");
        } else {
            tracing::info!(server = %target, "xDS stream open");
        }
    }

    /// The requests that open a stream to `server`: every subscription, without nonces, with
    /// versions only where `server` sent them.
    fn subscription_requests(&self, server: usize) -> Vec<DiscoveryRequest> {
        let mut out = Vec::new();
        for kind in KINDS {
            let Some(t) = self.types.get(&kind) else {
                continue;
            };
            if t.wildcard || !t.names.is_empty() {
                let mut request = t.request(kind, server);
                request.response_nonce.clear();
                if kind == ResourceKind::Listener {
                    request.node = Some(self.config.node.clone());
                }
                out.push(request);
            }
        }
        out
    }

    /// A background attempt on the primary after `delay`, resolving with its first response.
    fn probe(&self, delay: Duration) -> Probe {
        let target = self.config.servers.first().cloned();
        let timeout = self.config.connect_timeout;
        let requests = self.subscription_requests(0);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let target = target.ok_or_else(|| "no primary server".to_owned())?;
            let sent = requests
                .iter()
                .map(|r| (r.type_url.clone(), r.resource_names.clone()))
                .collect();
            let channel = connect::connect(&target, timeout)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (tx, mut responses) = open_stream(channel, requests).await?;
            match responses.message().await {
                Ok(Some(first)) => Ok(Box::new(Probed {
                    tx,
                    responses,
                    first,
                    sent,
                })),
                Ok(None) => Err("server closed the stream".into()),
                Err(status) => Err(status.to_string()),
            }
        })
    }

    fn disconnected(&mut self) {
        for t in self.types.values_mut() {
            // The does-not-exist timer runs only while connected.
            t.pending.clear();
            t.nonce.clear();
        }
        self.status.send_modify(|s| s.connected = false);
    }

    /// One stream to `server` (switching to the primary when its probe answers), until it
    /// fails.
    async fn stream(&mut self, server: usize) -> StreamEnd {
        let end = |server, got_response, error: String| StreamEnd {
            server,
            got_response,
            error,
        };
        let Some(target) = self.config.servers.get(server).cloned() else {
            return end(server, false, "no control plane configured".into());
        };
        self.count_attempt(server);
        let channel = match connect::connect(&target, self.config.connect_timeout).await {
            Ok(c) => c,
            Err(e) => return end(server, false, format!("connect: {e}")),
        };
        let now = Instant::now();
        for kind in KINDS {
            let decoded = &self.decoded;
            if let Some(t) = self.types.get_mut(&kind) {
                t.arm(now, |n| have(decoded, kind, n));
            }
        }
        let requests = self.subscription_requests(server);
        let (mut tx, mut responses) = match open_stream(channel, requests).await {
            Ok(s) => s,
            Err(error) => return end(server, false, error),
        };
        self.use_stream(server);
        self.publish_status();
        let mut probe_backoff = BackoffState::new(
            self.config.backoff.clone(),
            self.config.seed.wrapping_add(1),
        );
        let mut probe = (server > 0).then(|| self.probe(probe_backoff.next_delay()));
        let mut got_response = false;
        loop {
            let deadline = self.next_deadline();
            let event = tokio::select! {
                m = responses.message() => Event::Message(m),
                _ = sleep_until(deadline) => Event::Deadline,
                p = poll_probe(&mut probe) => Event::Probe(p),
            };
            let requests = match event {
                Event::Deadline => {
                    self.expire(Instant::now());
                    self.publish_status();
                    self.try_apply();
                    self.publish_status();
                    continue;
                }
                Event::Message(Ok(Some(response))) => {
                    got_response = true;
                    self.handle(response)
                }
                Event::Message(Ok(None)) => {
                    return end(
                        self.current,
                        got_response,
                        "server closed the stream".into(),
                    );
                }
                Event::Message(Err(status)) => {
                    return end(self.current, got_response, status.to_string());
                }
                Event::Probe(Err(error)) => {
                    self.count_attempt(0);
                    let delay = probe_backoff.next_delay();
                    tracing::debug!(server = %self.target_name(0), %error, ?delay, "xDS primary control plane still unavailable");
                    probe = Some(self.probe(delay));
                    continue;
                }
                Event::Probe(Ok(p)) => {
                    self.count_attempt(0);
                    probe = None;
                    tracing::info!(
                        primary = %self.target_name(0),
                        fallback = %self.target_name(self.current),
                        "xDS primary control plane is back; leaving the fallback"
                    );
                    // The fallback's stream closes as its sender and receiver drop.
                    tx = p.tx;
                    responses = p.responses;
                    for t in self.types.values_mut() {
                        t.nonce.clear();
                    }
                    self.use_stream(0);
                    got_response = true;
                    let mut requests = self.handle(p.first);
                    requests.extend(self.changed_since(&p.sent, &requests));
                    requests
                }
            };
            for request in requests {
                if tx.send(request).await.is_err() {
                    return end(self.current, got_response, "request stream closed".into());
                }
            }
        }
    }

    /// The subscription updates for what changed since `sent` was asked for (the probe's
    /// opening requests), leaving out the types `pending` already asks for.
    fn changed_since(
        &self,
        sent: &BTreeMap<String, Vec<String>>,
        pending: &[DiscoveryRequest],
    ) -> Vec<DiscoveryRequest> {
        let mut out = Vec::new();
        for kind in KINDS {
            let url = url(kind);
            if pending.iter().any(|r| r.type_url == url) {
                continue;
            }
            let Some(t) = self.types.get(&kind) else {
                continue;
            };
            let request = t.request(kind, self.current);
            let subscribed = t.wildcard || !t.names.is_empty();
            match sent.get(url) {
                Some(names) if *names == request.resource_names => {}
                None if !subscribed => {}
                _ => out.push(request),
            }
        }
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.types
            .values()
            .flat_map(|t| t.pending.values())
            .min()
            .map(|started| *started + self.config.resource_timeout)
    }

    /// Marks resources whose timer ran out as not existing.
    fn expire(&mut self, now: Instant) {
        let timeout = self.config.resource_timeout;
        for (kind, t) in &mut self.types {
            let expired: Vec<String> = t
                .pending
                .iter()
                .filter(|(_, s)| **s + timeout <= now)
                .map(|(n, _)| n.clone())
                .collect();
            for name in expired {
                tracing::warn!(kind = %kind, %name, "xDS resource does not exist");
                t.pending.remove(&name);
                t.does_not_exist.insert(name.clone());
                t.states
                    .insert(name, (String::new(), ResourceState::DoesNotExist));
            }
        }
    }

    /// Handles one response; returns the requests to send (the ACK or NACK first).
    fn handle(&mut self, response: DiscoveryResponse) -> Vec<DiscoveryRequest> {
        let Some(kind) = KINDS.iter().copied().find(|k| url(*k) == response.type_url) else {
            tracing::warn!(type_url = %response.type_url, "xDS response of a type not asked for; ignored");
            return Vec::new();
        };
        let errors = self.accept(kind, &response);
        let mut requests = Vec::new();
        let short = kind.as_str();
        let Some(t) = self.types.get_mut(&kind) else {
            return requests;
        };
        t.nonce = response.nonce.clone();
        t.received = true;
        let mut ack = t.request(kind, self.current);
        if errors.is_empty() {
            t.version = response.version_info.clone();
            t.version_server = Some(self.current);
            ack.version_info = t.version.clone();
            metrics::counter!("mesh_xds_client_responses_total", "type" => short, "result" => "ack").increment(1);
        } else {
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!(r#type = short, version = %response.version_info, error = %message, "xDS NACK; valid resources of the response are used, the rest keeps its last good version");
            metrics::counter!("mesh_xds_client_responses_total", "type" => short, "result" => "nack").increment(1);
            ack.error_detail = Some(RpcStatus {
                code: tonic::Code::InvalidArgument as i32,
                message: message.clone(),
                details: Vec::new(),
            });
            self.status.send_modify(|s| s.last_nack = Some(message));
        }
        requests.push(ack);
        requests.extend(self.follow_dependencies());
        // Resource states first, so whoever sees `ready` sees the states that made it so.
        self.publish_status();
        self.try_apply();
        if !errors.is_empty() {
            // After applying the valid part, so the refusal stays visible in the mesh status.
            self.mesh.reject(ConfigError {
                diagnostics: errors.iter().map(XdsError::to_diagnostic).collect(),
            });
        }
        self.publish_status();
        requests
    }

    /// Decodes and stores the resources of a response; returns the errors.
    fn accept(&mut self, kind: ResourceKind, response: &DiscoveryResponse) -> Vec<XdsError> {
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        let version = response.version_info.clone();
        let mut results: Vec<(String, Result<(), XdsError>)> = Vec::new();
        for (i, any) in response.resources.iter().enumerate() {
            let undecodable = |e: String| XdsError {
                kind,
                name: format!("#{i}"),
                field: "resource".into(),
                message: e,
            };
            if any.type_url != response.type_url {
                errors.push(undecodable(format!(
                    "type {} in a {} response",
                    any.type_url, response.type_url
                )));
                continue;
            }
            let outcome = match kind {
                ResourceKind::Listener => decode::<Listener>(any).map_err(undecodable).map(|l| {
                    let name = l.name.clone();
                    (
                        name,
                        decode_listener(&l).map(|d| {
                            self.decoded.listeners.insert(d.name.clone(), d);
                        }),
                    )
                }),
                ResourceKind::RouteConfiguration => decode::<XdsRouteConfiguration>(any)
                    .map_err(undecodable)
                    .map(|r| {
                        let name = r.name.clone();
                        (
                            name,
                            decode_route_configuration(&r).map(|d| {
                                self.decoded.route_configurations.insert(d.name.clone(), d);
                            }),
                        )
                    }),
                ResourceKind::Cluster => decode::<XdsCluster>(any).map_err(undecodable).map(|c| {
                    let name = c.name.clone();
                    (
                        name,
                        decode_cluster(&c).map(|d| {
                            self.decoded.clusters.insert(d.cluster.name.to_string(), d);
                        }),
                    )
                }),
                ResourceKind::Endpoints => decode::<ClusterLoadAssignment>(any)
                    .map_err(undecodable)
                    .map(|e| {
                        let name = e.cluster_name.clone();
                        (
                            name,
                            decode_load_assignment(&e).map(|d| {
                                self.decoded.endpoints.insert(d.name.clone(), d);
                            }),
                        )
                    }),
            };
            match outcome {
                Ok(r) => results.push(r),
                Err(e) => errors.push(e),
            }
        }
        let Some(t) = self.types.get_mut(&kind) else {
            return errors;
        };
        for (name, result) in results {
            seen.insert(name.clone());
            t.pending.remove(&name);
            t.does_not_exist.remove(&name);
            match result {
                Ok(()) => {
                    t.states
                        .insert(name, (version.clone(), ResourceState::Acked));
                }
                Err(e) => {
                    let kept = t
                        .states
                        .get(&name)
                        .map(|(v, _)| v.clone())
                        .unwrap_or_default();
                    t.states.insert(
                        name,
                        (
                            kept,
                            ResourceState::Nacked {
                                error: e.to_string(),
                            },
                        ),
                    );
                    errors.push(e);
                }
            }
        }
        // State of the world: a listener or cluster the response leaves out is gone (unless the
        // response could not be read whole, when the cached copies are kept).
        if matches!(kind, ResourceKind::Listener | ResourceKind::Cluster)
            && errors.iter().all(|e| !e.name.starts_with('#'))
        {
            let gone: Vec<String> = t
                .states
                .keys()
                .filter(|n| {
                    !seen.contains(*n)
                        && !t.pending.contains_key(*n)
                        && !t.does_not_exist.contains(*n)
                })
                .cloned()
                .collect();
            for name in gone {
                t.states.remove(&name);
                match kind {
                    ResourceKind::Listener => {
                        self.decoded.listeners.remove(&name);
                        if !t.wildcard || t.names.contains(&name) {
                            t.does_not_exist.insert(name.clone());
                            t.states
                                .insert(name, (String::new(), ResourceState::DoesNotExist));
                        }
                    }
                    _ => {
                        self.decoded.clusters.remove(&name);
                    }
                }
            }
        }
        errors
    }

    /// Updates the RDS and EDS subscriptions to what the listeners and clusters name.
    fn follow_dependencies(&mut self) -> Vec<DiscoveryRequest> {
        let mut out = Vec::new();
        let now = Instant::now();
        let server = self.current;
        for (kind, wanted) in [
            (
                ResourceKind::RouteConfiguration,
                self.decoded.wanted_route_configurations(),
            ),
            (ResourceKind::Endpoints, self.decoded.wanted_endpoints()),
        ] {
            let decoded = &mut self.decoded;
            let Some(t) = self.types.get_mut(&kind) else {
                continue;
            };
            if t.names == wanted {
                continue;
            }
            t.names = wanted;
            t.pending.retain(|n, _| t.names.contains(n));
            t.does_not_exist.retain(|n| t.names.contains(n));
            t.states.retain(|n, _| t.names.contains(n));
            match kind {
                ResourceKind::RouteConfiguration => decoded
                    .route_configurations
                    .retain(|n, _| t.names.contains(n)),
                _ => decoded.endpoints.retain(|n, _| t.names.contains(n)),
            }
            t.arm(now, |n| have(decoded, kind, n));
            out.push(t.request(kind, server));
        }
        out
    }

    fn complete(&self) -> bool {
        let t = |k| self.types.get(&k);
        let (Some(lds), Some(rds), Some(cds), Some(eds)) = (
            t(ResourceKind::Listener),
            t(ResourceKind::RouteConfiguration),
            t(ResourceKind::Cluster),
            t(ResourceKind::Endpoints),
        ) else {
            return false;
        };
        let d = &self.decoded;
        let lds_done = (!lds.wildcard || lds.received)
            && lds
                .names
                .iter()
                .all(|n| d.listeners.contains_key(n) || lds.settled(n));
        lds_done
            && cds.received
            && rds
                .names
                .iter()
                .all(|n| d.route_configurations.contains_key(n) || rds.settled(n))
            && eds
                .names
                .iter()
                .all(|n| d.endpoints.contains_key(n) || eds.settled(n))
    }

    /// Builds and applies the snapshot when the set is complete and differs from the last.
    fn try_apply(&mut self) {
        if !self.complete() {
            return;
        }
        let versions: Vec<&str> = KINDS
            .iter()
            .filter_map(|k| self.types.get(k))
            .map(|t| t.version.as_str())
            .collect();
        let base = versions.join("/");
        let source = SnapshotSource::Xds {
            server: self.target_name(self.current),
        };
        let mut snapshot = assemble(&self.decoded, base.clone(), source);
        for name in &self.config.server_listeners {
            if !self.decoded.listeners.contains_key(name) {
                not_serving(&mut snapshot.inbound, name);
            }
        }
        if let Some(prev) = &self.applied {
            if prev.routes == snapshot.routes
                && prev.clusters == snapshot.clusters
                && prev.inbound == snapshot.inbound
            {
                return;
            }
            if prev.version == snapshot.version || prev.version.starts_with(&format!("{base}+")) {
                self.generation += 1;
                snapshot.version = format!("{base}+{}", self.generation);
            }
        }
        for w in &snapshot.warnings {
            let text = w.to_string();
            if self.logged_warnings.insert(text.clone()) {
                tracing::warn!(warning = %text, "xDS config uses something mesh does not implement");
                metrics::counter!("mesh_xds_unsupported_fields_total").increment(1);
            }
        }
        let version = snapshot.version.clone();
        self.mesh.apply(snapshot.clone());
        self.applied = Some(snapshot);
        self.status.send_modify(|s| {
            s.ready = true;
            s.applied_version = Some(version);
        });
    }

    fn publish_status(&self) {
        let resources: Vec<ResourceStatus> = self
            .types
            .iter()
            .flat_map(|(kind, t)| {
                t.states
                    .iter()
                    .map(|(name, (version, state))| ResourceStatus {
                        kind: kind.as_str(),
                        name: name.clone(),
                        version: version.clone(),
                        state: state.clone(),
                    })
            })
            .collect();
        self.status.send_if_modified(|s| {
            let changed = s.resources != resources;
            s.resources = resources;
            changed
        });
    }
}

fn have(decoded: &Decoded, kind: ResourceKind, name: &str) -> bool {
    match kind {
        ResourceKind::Listener => decoded.listeners.contains_key(name),
        ResourceKind::RouteConfiguration => decoded.route_configurations.contains_key(name),
        ResourceKind::Cluster => decoded.clusters.contains_key(name),
        ResourceKind::Endpoints => decoded.endpoints.contains_key(name),
    }
}

fn decode<M: Message + Default>(any: &Any) -> Result<M, String> {
    M::decode(any.value.as_slice()).map_err(|e| format!("cannot decode: {e}"))
}

/// Opens the ADS stream on `channel`, `requests` first.
async fn open_stream(
    channel: tonic::transport::Channel,
    requests: Vec<DiscoveryRequest>,
) -> Result<
    (
        mpsc::Sender<DiscoveryRequest>,
        tonic::Streaming<DiscoveryResponse>,
    ),
    String,
> {
    let (tx, rx) = mpsc::channel(64);
    for request in requests {
        // The channel has room for the four opening requests.
        let _ = tx.try_send(request);
    }
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let responses = client
        .stream_aggregated_resources(ReceiverStream(rx))
        .await
        .map_err(|status| format!("open stream: {status}"))?
        .into_inner();
    Ok((tx, responses))
}

async fn poll_probe(probe: &mut Option<Probe>) -> Result<Box<Probed>, String> {
    match probe {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_sent_only_to_the_server_that_sent_them() {
        let t = TypeState {
            wildcard: true,
            version: "7".into(),
            version_server: Some(1),
            nonce: "n".into(),
            ..Default::default()
        };
        let on_fallback = t.request(ResourceKind::Cluster, 1);
        assert_eq!(
            (
                on_fallback.version_info.as_str(),
                on_fallback.response_nonce.as_str()
            ),
            ("7", "n")
        );
        let to_primary = t.request(ResourceKind::Cluster, 0);
        assert_eq!(to_primary.version_info, "");
        assert_eq!(to_primary.type_url, type_url::CLUSTER);
        let never = TypeState {
            version: "7".into(),
            ..Default::default()
        };
        assert_eq!(never.request(ResourceKind::Cluster, 0).version_info, "");
    }
}
