//! The client's background worker: connection loop over the primary and fallback control
//! planes (gRFC A71), one ADS stream in use at a time (plus, while on a fallback, a probe of the
//! primary), the resource caches, ACK/NACK, the does-not-exist timer, and applying complete
//! configs. Responses are read in [`accept`]; complete sets are applied in [`apply`].

mod accept;
mod apply;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration as XdsRouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use mesh_core::Mesh;
use mesh_core::config::ConfigError;
use mesh_core::model::{Snapshot, SnapshotSource};
use prost::Message;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::backoff::BackoffState;
use super::probe::{self, Probe, Probed, open_stream, poll_probe};
use super::status::{ResourceState, ResourceStatus, XdsStatus};
use super::subscription::{KINDS, TypeState, url};
use super::{XdsClientConfig, connect};
use crate::translate::{
    Decoded, ResourceKind, XdsError, assemble, decode_cluster, decode_listener,
    decode_load_assignment, decode_route_configuration, not_serving,
};

/// How a stream ended.
struct StreamEnd {
    /// The server the stream was to (the primary after a switch back from a fallback).
    server: usize,
    got_response: bool,
    error: String,
}

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
            let error = end.error.clone();
            self.status.send_modify(|s| s.last_error = Some(error));
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

    /// A background attempt on the primary after `delay`, resolving with its first response
    /// (waited for up to the does-not-exist timeout).
    fn probe(&self, delay: Duration) -> Probe {
        probe::probe(
            self.config.servers.first().cloned(),
            self.config.tls_for(0).cloned(),
            self.subscription_requests(0),
            delay,
            self.config.connect_timeout,
            self.config.resource_timeout,
        )
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
        let tls = self.config.tls_for(server);
        let channel = match connect::connect(&target, tls, self.config.connect_timeout).await {
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
            Err(error) => {
                // TLS 1.3: the server judges the client certificate after the client's
                // handshake is done, so a refusal shows as a closed connection.
                let mutual = self
                    .config
                    .tls_for(server)
                    .is_some_and(|t| t.identity.is_some());
                let hint = if mutual && error.contains("connection closed") {
                    " (the control plane closed the connection: does it trust this workload's certificate?)"
                } else {
                    ""
                };
                return end(server, false, format!("{error}{hint}"));
            }
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
}

fn have(decoded: &Decoded, kind: ResourceKind, name: &str) -> bool {
    match kind {
        ResourceKind::Listener => decoded.listeners.contains_key(name),
        ResourceKind::RouteConfiguration => decoded.route_configurations.contains_key(name),
        ResourceKind::Cluster => decoded.clusters.contains_key(name),
        ResourceKind::Endpoints => decoded.endpoints.contains_key(name),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
