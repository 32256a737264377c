//! EDS: `ClusterLoadAssignment` ↔ model [`Endpoint`]s.
//!
//! Endpoints are grouped by locality and priority (one `LocalityLbEndpoints` per pair). A
//! group's `priority` is each endpoint's [`Endpoint::priority`]; its `load_balancing_weight` is
//! the endpoints' [`Endpoint::locality_weight`], or when that is `None` the sum of their weights,
//! as istiod sends (and gRPC needs: it drops localities without a weight). Decoding maps a weight
//! equal to that sum back to `None`, so model → xDS → model is lossless. Priorities must run
//! from 0 without gaps, as Envoy requires; a locality repeated at one priority is merged.
//! Labels travel in the `envoy.lb` metadata namespace and the expected identity in `mesh`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthStatus as XdsHealth, Locality as XdsLocality, Pipe, address,
    socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as XdsEndpoint, LbEndpoint, LocalityLbEndpoints,
    lb_endpoint::HostIdentifier,
};
use mesh_core::config::Diagnostic;
use mesh_core::model::{Cluster, Endpoint, EndpointAddress, HealthStatus, Locality};

use super::error::{ResourceKind, Scope, XdsError};
use super::meta::{self, ENVOY_LB, MESH};
use super::proto::{self, u32v};

/// A validated assignment.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedEndpoints {
    /// The EDS service name.
    pub name: String,
    /// Endpoints in order (shared with the snapshots built from them).
    pub endpoints: Arc<[Endpoint]>,
    /// Warnings.
    pub warnings: Vec<Diagnostic>,
}

/// The assignment for `cluster`'s endpoints, named by the cluster.
pub(crate) fn to_xds(cluster: &Cluster) -> ClusterLoadAssignment {
    let mut groups: Vec<((&Locality, u32), Vec<&Endpoint>)> = Vec::new();
    for e in cluster.endpoints.iter() {
        let key = (&e.locality, e.priority);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(e),
            None => groups.push((key, vec![e])),
        }
    }
    ClusterLoadAssignment {
        cluster_name: cluster.name.to_string(),
        endpoints: groups
            .into_iter()
            .map(|((locality, priority), list)| LocalityLbEndpoints {
                // Always present: gRPC rejects locality groups without one.
                locality: Some(XdsLocality {
                    region: locality.region.clone(),
                    zone: locality.zone.clone(),
                    sub_zone: locality.subzone.clone(),
                }),
                load_balancing_weight: u32v(
                    list.first()
                        .and_then(|e| e.locality_weight)
                        .unwrap_or_else(|| weight_sum(list.iter().map(|e| e.weight)))
                        .max(1),
                ),
                priority,
                lb_endpoints: list.into_iter().map(lb_endpoint).collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The sum of endpoint weights (each at least 1), saturating: a locality's implied weight.
fn weight_sum(weights: impl Iterator<Item = u32>) -> u32 {
    let sum: u64 = weights.map(|w| u64::from(w.max(1))).sum();
    u32::try_from(sum).unwrap_or(u32::MAX)
}

fn lb_endpoint(e: &Endpoint) -> LbEndpoint {
    let xds_address = match &e.address {
        EndpointAddress::Socket(a) => proto::socket(a.ip().to_string(), a.port()),
        EndpointAddress::Dns { host, port } => proto::socket(host.clone(), *port),
        EndpointAddress::Unix { path } => address::Address::Pipe(Pipe {
            path: path.clone(),
            mode: 0,
        }),
    };
    let labels: HashMap<_, _> = e
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), proto::string_value(v.clone())))
        .collect();
    let mut mesh = HashMap::new();
    if let Some(id) = &e.identity {
        mesh.insert("identity".to_owned(), proto::string_value(id.clone()));
    }
    LbEndpoint {
        health_status: match e.health {
            HealthStatus::Healthy => XdsHealth::Healthy,
            HealthStatus::Unhealthy => XdsHealth::Unhealthy,
            HealthStatus::Draining => XdsHealth::Draining,
        } as i32,
        metadata: meta::metadata(vec![(ENVOY_LB, labels), (MESH, mesh)]),
        load_balancing_weight: u32v(e.weight.max(1)),
        host_identifier: Some(HostIdentifier::Endpoint(XdsEndpoint {
            address: Some(Address {
                address: Some(xds_address),
            }),
            ..Default::default()
        })),
    }
}

/// `endpoints[i].lb_endpoints[j]`, formatted only when displayed.
struct Lazy<'a>(&'a str, usize);

impl std::fmt::Display for Lazy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.lb_endpoints[{}]", self.0, self.1)
    }
}

/// An endpoint's socket address (IP, or a DNS name resolved when connecting).
fn socket_endpoint(
    endpoint: &XdsEndpoint,
    path: &Lazy<'_>,
    scope: &Scope,
) -> Result<EndpointAddress, XdsError> {
    let socket = match endpoint.address.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(s)) => s,
        Some(_) => {
            return Err(scope.error(
                format!("{path}.endpoint.address"),
                "only socket addresses are supported",
            ));
        }
        None => return Err(scope.error(format!("{path}.endpoint.address"), "missing")),
    };
    let port = match socket.port_specifier {
        Some(PortSpecifier::PortValue(p)) => {
            u16::try_from(p).ok().filter(|p| *p != 0).ok_or_else(|| {
                scope.error(
                    format!("{path}.endpoint.address.socket_address.port_value"),
                    format!("{p} is not a port"),
                )
            })?
        }
        _ => {
            return Err(scope.error(
                format!("{path}.endpoint.address.socket_address.port_value"),
                "missing",
            ));
        }
    };
    Ok(match socket.address.parse::<IpAddr>() {
        Ok(ip) => EndpointAddress::Socket(SocketAddr::new(ip, port)),
        Err(_) if !socket.address.is_empty() => EndpointAddress::Dns {
            host: socket.address.clone(),
            port,
        },
        Err(_) => {
            return Err(scope.error(
                format!("{path}.endpoint.address.socket_address.address"),
                "empty",
            ));
        }
    })
}

/// Envoy's rule: priorities run from 0 (highest) to N (lowest) without skipping.
fn check_priorities(cla: &ClusterLoadAssignment, scope: &Scope) -> Result<(), XdsError> {
    let present: BTreeSet<u32> = cla.endpoints.iter().map(|g| g.priority).collect();
    let Some(missing) = (0u32..)
        .zip(&present)
        .find_map(|(want, &got)| (want != got).then_some(want))
    else {
        return Ok(());
    };
    // Name the group with the lowest priority above the gap.
    let (field, above) = cla
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, g)| g.priority > missing)
        .min_by_key(|(_, g)| g.priority)
        .map_or_else(
            || ("endpoints".to_owned(), missing),
            |(i, g)| (format!("endpoints[{i}].priority"), g.priority),
        );
    Err(scope.error(
        field,
        format!(
            "priority {above} without priority {missing}: priorities must run from 0 without gaps"
        ),
    ))
}

fn locality_of(group: &LocalityLbEndpoints) -> Locality {
    group
        .locality
        .as_ref()
        .map_or_else(Locality::default, |l| Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
            subzone: l.sub_zone.clone(),
        })
}

/// Each (priority, locality)'s weight in the model: `None` when it is the sum of its endpoints'
/// weights. Groups repeating a locality at one priority (Envoy accepts them) are one locality
/// whose weight is the sum of theirs, a group without a weight counting as its endpoints' sum.
fn locality_weights(
    cla: &ClusterLoadAssignment,
    scope: &Scope,
) -> Result<BTreeMap<(u32, Locality), Option<u32>>, XdsError> {
    let mut sums: BTreeMap<(u32, Locality), (u64, u64)> = BTreeMap::new();
    for (i, group) in cla.endpoints.iter().enumerate() {
        let endpoints: u64 = group
            .lb_endpoints
            .iter()
            .map(|e| {
                u64::from(
                    e.load_balancing_weight
                        .as_ref()
                        .map_or(1, |w| w.value)
                        .max(1),
                )
            })
            .sum();
        let weight = match group.load_balancing_weight.as_ref().map(|w| w.value) {
            Some(0) => {
                return Err(scope.error(
                    format!("endpoints[{i}].load_balancing_weight"),
                    "must be at least 1",
                ));
            }
            Some(w) => u64::from(w),
            None => endpoints,
        };
        let entry = sums
            .entry((group.priority, locality_of(group)))
            .or_default();
        entry.0 += weight;
        entry.1 += endpoints;
    }
    Ok(sums
        .into_iter()
        .map(|(key, (weight, endpoints))| {
            let explicit = (weight != endpoints).then(|| u32::try_from(weight).unwrap_or(u32::MAX));
            (key, explicit)
        })
        .collect())
}

/// Decodes and validates one EDS resource.
pub fn decode_load_assignment(cla: &ClusterLoadAssignment) -> Result<DecodedEndpoints, XdsError> {
    let mut scope = Scope::new(ResourceKind::Endpoints, cla.cluster_name.clone());
    if cla.cluster_name.is_empty() {
        return Err(scope.error("cluster_name", "empty"));
    }
    let endpoints = decode_inline(cla, &mut scope)?;
    Ok(DecodedEndpoints {
        name: cla.cluster_name.clone(),
        endpoints: endpoints.into(),
        warnings: scope.warnings,
    })
}

/// The endpoints of an assignment (EDS, or inline in a cluster).
pub(crate) fn decode_inline(
    cla: &ClusterLoadAssignment,
    scope: &mut Scope,
) -> Result<Vec<Endpoint>, XdsError> {
    check_priorities(cla, scope)?;
    let mut out = Vec::new();
    let weights = locality_weights(cla, scope)?;
    for (i, group) in cla.endpoints.iter().enumerate() {
        let gpath = format!("endpoints[{i}]");
        let locality = locality_of(group);
        let locality_weight = weights
            .get(&(group.priority, locality.clone()))
            .copied()
            .flatten();
        for (j, e) in group.lb_endpoints.iter().enumerate() {
            // Built only for an error: formatting 10,000 paths would dominate a large update.
            let path = Lazy(&gpath, j);
            let endpoint = match &e.host_identifier {
                Some(HostIdentifier::Endpoint(ep)) => ep,
                Some(HostIdentifier::EndpointName(_)) => {
                    return Err(scope.error(
                        format!("{path}.endpoint_name"),
                        "named endpoints are not supported",
                    ));
                }
                None => return Err(scope.error(format!("{path}.endpoint"), "missing")),
            };
            let address = match endpoint.address.as_ref().and_then(|a| a.address.as_ref()) {
                // A unix domain socket (Istio's `unix://` endpoints).
                Some(address::Address::Pipe(pipe)) if !pipe.path.is_empty() => {
                    EndpointAddress::Unix {
                        path: pipe.path.clone(),
                    }
                }
                _ => socket_endpoint(endpoint, &path, scope)?,
            };
            let health = match XdsHealth::try_from(e.health_status) {
                Ok(XdsHealth::Unknown | XdsHealth::Healthy | XdsHealth::Degraded) => {
                    HealthStatus::Healthy
                }
                Ok(XdsHealth::Draining) => HealthStatus::Draining,
                Ok(XdsHealth::Unhealthy | XdsHealth::Timeout) => HealthStatus::Unhealthy,
                Err(_) => {
                    return Err(scope.error(
                        format!("{path}.health_status"),
                        format!("unknown value {}", e.health_status),
                    ));
                }
            };
            let weight = e.load_balancing_weight.as_ref().map_or(1, |w| w.value);
            if weight == 0 {
                return Err(scope.error(
                    format!("{path}.load_balancing_weight"),
                    "must be at least 1",
                ));
            }
            let labels: BTreeMap<String, String> = meta::namespace(e.metadata.as_ref(), ENVOY_LB)
                .map(|s| {
                    s.fields
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), proto::as_str(v)?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let identity = meta::field(e.metadata.as_ref(), MESH, "identity")
                .and_then(proto::as_str)
                .map(str::to_owned);
            out.push(Endpoint {
                address,
                labels,
                weight,
                locality: locality.clone(),
                identity,
                health,
                priority: group.priority,
                locality_weight,
            });
        }
    }
    if let Some(policy) = &cla.policy {
        if !policy.drop_overloads.is_empty() {
            scope.warn("policy.drop_overloads", "not implemented; ignored");
        }
        if let Some(f) = policy.overprovisioning_factor.filter(|f| f.value != 140) {
            scope.warn(
                "policy.overprovisioning_factor",
                format!("{} not implemented; Envoy's default 140 is used", f.value),
            );
        }
        let mut residual = policy.clone();
        residual.drop_overloads.clear();
        residual.overprovisioning_factor = None;
        scope.unsupported("policy", &residual);
    }
    if !cla.named_endpoints.is_empty() {
        scope.warn("named_endpoints", "not implemented; ignored");
    }
    Ok(out)
}
