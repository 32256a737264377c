//! A whole set: decoded resources joined into a [`Snapshot`], and a snapshot split into the
//! resources a control plane sends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mesh_core::config::Diagnostic;
use mesh_core::model::{
    ClusterName, InboundPolicy, LbPolicy, RouteConfiguration, Snapshot, SnapshotSource, VirtualHost,
};

use super::cluster::{self, DecodedCluster};
use super::endpoints::{self, DecodedEndpoints};
use super::inbound::InboundListener;
use super::listener::{self, DecodedListener, ListenerRole};
use super::route::{self, DecodedRouteConfiguration};
use super::{NodeKind, XdsResources};

/// Decoded resources by name: what a client has accepted so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    /// Listeners.
    pub listeners: BTreeMap<String, DecodedListener>,
    /// Route configurations.
    pub route_configurations: BTreeMap<String, DecodedRouteConfiguration>,
    /// Clusters.
    pub clusters: BTreeMap<String, DecodedCluster>,
    /// Endpoint assignments by EDS service name.
    pub endpoints: BTreeMap<String, DecodedEndpoints>,
}

impl Decoded {
    /// Decodes a full set, failing on the first invalid resource.
    pub fn from_resources(r: &XdsResources) -> Result<Self, super::XdsError> {
        let mut d = Decoded::default();
        for l in &r.listeners {
            d.listeners
                .insert(l.name.clone(), listener::decode_listener(l)?);
        }
        for rc in &r.route_configurations {
            d.route_configurations
                .insert(rc.name.clone(), route::decode_route_configuration(rc)?);
        }
        for c in &r.clusters {
            d.clusters
                .insert(c.name.clone(), cluster::decode_cluster(c)?);
        }
        for e in &r.load_assignments {
            d.endpoints.insert(
                e.cluster_name.clone(),
                endpoints::decode_load_assignment(e)?,
            );
        }
        Ok(d)
    }

    /// Route configuration names the listeners need.
    pub fn wanted_route_configurations(&self) -> BTreeSet<String> {
        self.listeners
            .values()
            .filter_map(|l| l.route_config_name().map(str::to_owned))
            .collect()
    }

    /// EDS service names the clusters need.
    pub fn wanted_endpoints(&self) -> BTreeSet<String> {
        self.clusters
            .values()
            .filter_map(|c| c.eds_service_name.clone())
            .collect()
    }

    fn warnings(&self) -> Vec<Diagnostic> {
        let mut out: Vec<Diagnostic> = Vec::new();
        let all = self
            .listeners
            .values()
            .flat_map(|l| &l.warnings)
            .chain(self.route_configurations.values().flat_map(|r| &r.warnings))
            .chain(self.clusters.values().flat_map(|c| &c.warnings))
            .chain(self.endpoints.values().flat_map(|e| &e.warnings));
        for w in all {
            if !out.contains(w) {
                out.push(w.clone());
            }
        }
        out
    }
}

/// Joins decoded resources into a snapshot. Listeners whose route configuration is absent, and
/// EDS clusters whose assignment is absent, are taken as they would be after the
/// does-not-exist timer: no routes, no endpoints. Routes to clusters that do not exist are kept
/// (they answer 503, as Envoy's "cluster not found").
pub fn assemble(decoded: &Decoded, version: String, source: SnapshotSource) -> Snapshot {
    let mut by_port: BTreeMap<u16, (String, Vec<VirtualHost>)> = BTreeMap::new();
    for l in decoded.listeners.values() {
        let ListenerRole::Outbound {
            port,
            route_config_name,
        } = &l.role
        else {
            continue;
        };
        let Some(rc) = decoded.route_configurations.get(route_config_name) else {
            continue;
        };
        let (_, hosts) = by_port
            .entry(*port)
            .or_insert_with(|| (rc.name.clone(), Vec::new()));
        for vh in &rc.virtual_hosts {
            if !hosts.iter().any(|h| h.name == vh.name) {
                hosts.push(vh.clone());
            }
        }
    }
    let hash_keys: BTreeMap<&ClusterName, _> = decoded
        .route_configurations
        .values()
        .flat_map(|r| r.hash_keys.iter())
        .rev()
        .map(|(c, k)| (c, k))
        .collect();
    let mut warnings = decoded.warnings();
    let clusters = decoded
        .clusters
        .values()
        .map(|d| {
            let mut c = d.cluster.clone();
            if let Some(service) = &d.eds_service_name {
                c.endpoints = decoded
                    .endpoints
                    .get(service)
                    .map(|e| e.endpoints.clone())
                    .unwrap_or_else(|| Arc::from(Vec::new()));
            }
            match (&mut c.lb, hash_keys.get(&c.name)) {
                (LbPolicy::RingHash { key, .. } | LbPolicy::Maglev { key, .. }, Some(k)) => {
                    *key = (*k).clone()
                }
                (LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. }, None)
                    if d.hash_from_routes =>
                {
                    warnings.push(Diagnostic {
                        resource: Some(super::error::resource_ref(
                            super::ResourceKind::Cluster,
                            c.name.as_str(),
                        )),
                        ..Diagnostic::warning(
                            "lb_policy",
                            "consistent hashing without a route hash_policy; hashing the source IP",
                        )
                    })
                }
                _ => {}
            }
            (c.name.clone(), Arc::new(c))
        })
        .collect();
    Snapshot {
        version,
        source,
        routes: by_port
            .into_iter()
            .map(|(port, (name, hosts))| (port, RouteConfiguration::new(name, hosts)))
            .collect(),
        clusters,
        inbound: inbound_policy(decoded),
        warnings,
    }
}

/// The inbound policy the inbound listeners describe. The mode and policies most ports share
/// are the workload's defaults (istiod sends the same for every port); a port that differs
/// keeps its own. Without inbound listeners, Istio's defaults: PERMISSIVE, no policies.
fn inbound_policy(decoded: &Decoded) -> InboundPolicy {
    let listeners: Vec<&InboundListener> = decoded
        .listeners
        .values()
        .filter_map(|l| match &l.role {
            ListenerRole::Inbound(i) => Some(i),
            ListenerRole::Outbound { .. } => None,
        })
        .collect();
    let mut policy = InboundPolicy::default();
    let most_common = |same: &dyn Fn(&InboundListener, &InboundListener) -> bool| {
        // Ties go to the lowest port (`max_by_key` keeps the last maximum).
        listeners
            .iter()
            .rev()
            .max_by_key(|a| listeners.iter().filter(|b| same(a, b)).count())
            .copied()
    };
    if let Some(l) = most_common(&|a, b| a.mode == b.mode) {
        policy.peer_authentication.mode = l.mode;
    }
    if let Some(l) = most_common(&|a, b| a.authorization == b.authorization) {
        policy.authorization = l.authorization.clone();
    }
    for l in &listeners {
        if l.mode != policy.peer_authentication.mode {
            policy.peer_authentication.port_modes.insert(l.port, l.mode);
        }
        if l.authorization != policy.authorization {
            policy
                .port_authorization
                .insert(l.port, l.authorization.clone());
        }
    }
    policy
}

/// Every resource for `snapshot`, as a control plane serves it to a node of kind `node` that
/// subscribes to everything (wildcard LDS and CDS).
pub fn to_resources(snapshot: &Snapshot, node: NodeKind) -> XdsResources {
    let listeners = match node {
        NodeKind::Envoy => snapshot
            .routes
            .iter()
            .map(|(port, rc)| listener::port_listener(*port, &rc.name))
            .collect(),
        NodeKind::ProxylessGrpc => snapshot
            .routes
            .values()
            .flat_map(|rc| {
                rc.virtual_hosts
                    .iter()
                    .filter(|vh| {
                        vh.name
                            .rsplit_once(':')
                            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                    })
                    .map(|vh| listener::api_listener(&vh.name, &rc.name))
            })
            .collect(),
    };
    XdsResources {
        listeners,
        route_configurations: snapshot
            .routes
            .values()
            .map(|rc| route::to_xds(rc, &snapshot.clusters))
            .collect(),
        clusters: snapshot
            .clusters
            .values()
            .map(|c| cluster::to_xds(c, node))
            .collect(),
        load_assignments: snapshot
            .clusters
            .values()
            .filter(|c| c.resolution == mesh_core::model::Resolution::Static)
            .map(|c| endpoints::to_xds(c))
            .collect(),
    }
}

/// The API listener a proxyless client asking for `target` (`host:port`) gets: one naming the
/// route configuration of that port, when a virtual host there serves `target`.
pub fn api_listener_for(
    snapshot: &Snapshot,
    target: &str,
) -> Option<envoy_types::pb::envoy::config::listener::v3::Listener> {
    let port: u16 = target.rsplit_once(':')?.1.parse().ok()?;
    let rc = snapshot.routes.get(&port)?;
    rc.virtual_host(target)?;
    Some(listener::api_listener(target, &rc.name))
}
