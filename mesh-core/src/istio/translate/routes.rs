//! Route configurations: one per service port, one virtual host per (service host, port), its
//! routes from the VirtualService for the host or a default route to the whole service.

use std::collections::BTreeMap;

use super::super::names;
use super::http::{self, ActionSpec, CompiledRoute, DestSpec};
use super::services::Service;
use super::virtual_service::{CompiledVs, VsIndex};
use crate::BuildContext;
use crate::model::{
    ClusterName, HeaderMutation, Mirror, Route, RouteAction, RouteConfiguration, RouteMatch,
    RouteOrigin, VirtualHost, WeightedCluster,
};

/// Builds the route configuration of every service port.
pub(crate) fn build_routes(
    services: &BTreeMap<String, Service>,
    vss: &VsIndex,
    ctx: &BuildContext,
) -> BTreeMap<u16, RouteConfiguration> {
    let mut by_port: BTreeMap<u16, Vec<VirtualHost>> = BTreeMap::new();
    for service in services.values() {
        let vs = vss.lookup(&service.host);
        for port in &service.ports {
            let routes = match vs {
                Some(vs) => vs
                    .routes
                    .iter()
                    .filter_map(|r| route_for_port(vs, r, port.number, services))
                    .collect(),
                None => vec![default_route(&service.host, port.number)],
            };
            by_port.entry(port.number).or_default().push(VirtualHost {
                name: format!("{}:{}", service.host, port.number),
                domains: names::domains(
                    &service.host,
                    port.number,
                    &ctx.workload.namespace,
                    &ctx.settings,
                ),
                routes,
            });
        }
    }
    by_port
        .into_iter()
        .map(|(port, vhosts)| (port, RouteConfiguration::new(port.to_string(), vhosts)))
        .collect()
}

/// The route to a whole service that has no VirtualService.
fn default_route(host: &str, port: u16) -> Route {
    Route {
        origin: RouteOrigin::Default,
        matches: Vec::new(),
        action: RouteAction::Forward(vec![WeightedCluster {
            cluster: ClusterName::outbound(host, port, None),
            weight: 100,
            request_headers: HeaderMutation::default(),
            response_headers: HeaderMutation::default(),
        }]),
        timeout: None,
        retry: Some(http::default_retry()),
        fault: None,
        mirrors: Vec::new(),
        request_headers: HeaderMutation::default(),
        response_headers: HeaderMutation::default(),
        rewrite: None,
    }
}

/// The cluster a destination names when the route serves `port`: its own port, else the
/// service's only port, else `port`.
fn cluster_for(dest: &DestSpec, port: u16, services: &BTreeMap<String, Service>) -> ClusterName {
    let dest_port = dest.port.unwrap_or_else(|| match services.get(&dest.host) {
        Some(s) if s.ports.len() == 1 => s.ports[0].number,
        _ => port,
    });
    ClusterName::outbound(&dest.host, dest_port, dest.subset.as_deref())
}

fn route_for_port(
    vs: &CompiledVs,
    route: &CompiledRoute,
    port: u16,
    services: &BTreeMap<String, Service>,
) -> Option<Route> {
    let matches: Vec<RouteMatch> = route
        .matches
        .iter()
        .filter(|m| m.port.is_none_or(|p| p == port))
        .cloned()
        .collect();
    if route.had_matches && matches.is_empty() {
        return None;
    }
    let action = match &route.action {
        ActionSpec::Forward(dests) => RouteAction::Forward(
            dests
                .iter()
                .map(|d| WeightedCluster {
                    cluster: cluster_for(&d.dest, port, services),
                    weight: d.weight,
                    request_headers: d.request_headers.clone(),
                    response_headers: d.response_headers.clone(),
                })
                .collect(),
        ),
        ActionSpec::Direct { status, body } => RouteAction::DirectResponse {
            status: *status,
            body: body.clone(),
        },
        ActionSpec::Redirect {
            path,
            authority,
            status,
        } => RouteAction::Redirect {
            path: path.clone(),
            authority: authority.clone(),
            status: *status,
        },
    };
    Some(Route {
        origin: RouteOrigin::VirtualService {
            name: format!("{}/{}", vs.resource.namespace, vs.resource.name),
            index: route.index,
            route_name: route.name.clone(),
        },
        matches,
        action,
        timeout: route.timeout,
        retry: route.retry.clone(),
        fault: route.fault.clone(),
        mirrors: route
            .mirrors
            .iter()
            .map(|m| Mirror {
                cluster: cluster_for(&m.dest, port, services),
                percentage: m.percentage,
            })
            .collect(),
        request_headers: route.request_headers.clone(),
        response_headers: route.response_headers.clone(),
        rewrite: route.rewrite.clone(),
    })
}
