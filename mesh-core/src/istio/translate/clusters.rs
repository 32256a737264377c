//! Clusters: one per service host × port, plus one per DestinationRule subset, with the merged
//! traffic policy of the rule that applies.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::diag::{Diagnostics, Field};
use super::super::names;
use super::super::resources::labels_match;
use super::destination_rule::{CompiledRule, CompiledSubset, RuleIndex};
use super::services::{EndpointHost, Port, Service};
use super::traffic_policy::{self, Policy};
use crate::BuildContext;
use crate::model::{
    Cluster, ClusterName, Endpoint, EndpointAddress, HealthStatus, LbPolicy, Resolution,
    ServiceKey, TlsMode, UpstreamTls,
};

/// Builds every cluster; warns about rules whose host matches no service.
pub(crate) fn build_clusters(
    services: &BTreeMap<String, Service>,
    rules: &RuleIndex,
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> BTreeMap<ClusterName, Arc<Cluster>> {
    let mut clusters = BTreeMap::new();
    let mut used = vec![false; rules.rules.len()];
    for service in services.values() {
        let rule = rules.lookup(&service.host, &service.namespace, ctx);
        if let Some((i, _)) = rule {
            used[i] = true;
        }
        let rule = rule.map(|(_, r)| r);
        for port in &service.ports {
            let c = cluster(service, port, rule, None);
            clusters.insert(c.name.clone(), Arc::new(c));
            for subset in rule.iter().flat_map(|r| &r.subsets) {
                let c = cluster(service, port, rule, Some(subset));
                clusters.insert(c.name.clone(), Arc::new(c));
            }
        }
    }
    let mut warned = std::collections::HashSet::new();
    for (rule, used) in rules.rules.iter().zip(used) {
        // A rule shadowed by a more specific one (or one closer to this workload) is not
        // reported: Istio keeps it for the proxies that see it first.
        let matches_a_service = if rule.host.starts_with('*') {
            services.keys().any(|h| names::host_matches(&rule.host, h))
        } else {
            services.contains_key(&rule.host)
        };
        if !used && !matches_a_service && warned.insert(&rule.resource) {
            diags.at(&rule.origin, &rule.resource).warn(
                &Field::new("spec").key("host"),
                format!(
                    "no Service or ServiceEntry declares a host matching {}; the rule is not applied",
                    rule.host
                ),
            );
        }
    }
    clusters
}

fn cluster(
    service: &Service,
    port: &Port,
    rule: Option<&CompiledRule>,
    subset: Option<&CompiledSubset>,
) -> Cluster {
    let mut policy = Policy::default();
    if let Some(rule) = rule {
        rule.policy.apply(&mut policy, port.number);
    }
    if let Some(subset) = subset {
        subset.policy.apply(&mut policy, port.number);
    }
    let (lb, mut locality_lb) = policy.lb.unwrap_or_else(|| {
        (
            rule.map_or(LbPolicy::LeastRequest, |r| r.default_lb.clone()),
            traffic_policy::mesh_locality_default(),
        )
    });
    // As in Istio, locality failover needs outlier detection, or traffic would never fail over.
    locality_lb.enabled &= policy.outlier.is_some();
    let mut tls = policy.tls.unwrap_or_else(|| {
        if service.mesh_internal {
            UpstreamTls::istio_mutual()
        } else {
            UpstreamTls {
                mode: TlsMode::Disable,
                ..UpstreamTls::istio_mutual()
            }
        }
    });
    if tls.subject_alt_names.is_empty() && tls.mode != TlsMode::Disable {
        tls.subject_alt_names.clone_from(&service.subject_alt_names);
    }
    let subset_name = subset.map(|s| s.name.as_str());
    Cluster {
        name: ClusterName::outbound(&service.host, port.number, subset_name),
        service: ServiceKey {
            host: service.host.clone(),
            namespace: service.namespace.clone(),
            port: port.number,
            subset: subset_name.map(str::to_owned),
        },
        protocol: port.protocol,
        resolution: service.resolution,
        endpoints: endpoints(service, port, subset).into(),
        lb,
        locality_lb,
        locality_weighted_lb: false,
        tls,
        connection_pool: policy.pool.unwrap_or_default(),
        outlier: policy.outlier,
        retry_budget: policy.retry_budget.unwrap_or_default(),
        slow_start: policy.warmup,
    }
}

fn endpoints(service: &Service, port: &Port, subset: Option<&CompiledSubset>) -> Vec<Endpoint> {
    if service.endpoints.is_empty() {
        // DNS with no endpoints: the host itself, resolved at connect time.
        return match service.resolution {
            Resolution::Dns if !service.host.starts_with('*') => vec![Endpoint {
                address: EndpointAddress::Dns {
                    host: service.host.clone(),
                    port: port.target_port.unwrap_or(port.number),
                },
                labels: BTreeMap::new(),
                weight: 1,
                locality: Default::default(),
                identity: None,
                health: HealthStatus::Healthy,
                priority: 0,
                locality_weight: None,
            }],
            _ => Vec::new(),
        };
    }
    service
        .endpoints
        .iter()
        .filter(|e| subset.is_none_or(|s| labels_match(&s.labels, &e.labels)))
        .map(|e| {
            let p = e.port_for(port);
            Endpoint {
                address: match &e.host {
                    EndpointHost::Ip(ip) => EndpointAddress::Socket((*ip, p).into()),
                    EndpointHost::Dns(h) => EndpointAddress::Dns {
                        host: h.clone(),
                        port: p,
                    },
                    // The port is not used: istiod gives unix endpoints target port 0
                    // (`convertWorkloadInstanceToServiceInstance`, serviceentry/conversion.go).
                    EndpointHost::Unix(path) => EndpointAddress::Unix { path: path.clone() },
                },
                labels: e.labels.clone(),
                weight: e.weight,
                locality: e.locality.clone(),
                identity: e.identity.clone(),
                health: HealthStatus::Healthy,
                priority: 0,
                locality_weight: None,
            }
        })
        .collect()
}
