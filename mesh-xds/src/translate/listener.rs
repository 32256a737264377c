//! LDS: listeners whose HTTP connection manager names an RDS route configuration.
//!
//! Proxyless gRPC clients (and mesh) ask for API listeners named by their target, `host:port`;
//! Envoy gets one listener per outbound port, `0.0.0.0_<port>`, bound on that port, as istiod's
//! per-port outbound listeners.

use envoy_types::pb::envoy::config::listener::v3::{
    ApiListener, Filter, FilterChain, Listener, filter::ConfigType as FilterConfig,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager::RouteSpecifier,
    http_filter::ConfigType as HttpFilterConfig,
};
use mesh_core::config::Diagnostic;

use super::error::{ResourceKind, Scope, XdsError};
use super::inbound::{self, InboundListener};
use super::proto::{pack, socket_address, unpack};
use super::route::FAULT_FILTER;
use super::tls::ads_source;

pub(crate) const HCM: &str = "envoy.filters.network.http_connection_manager";
pub(crate) const ROUTER: &str = "envoy.filters.http.router";

/// A validated listener.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedListener {
    /// Listener name.
    pub name: String,
    /// What it configures.
    pub role: ListenerRole,
    /// Warnings.
    pub warnings: Vec<Diagnostic>,
}

/// What a listener configures: outbound routing, or this workload's server side.
#[derive(Clone, Debug, PartialEq)]
pub enum ListenerRole {
    /// Calls to a port: which route configuration serves them.
    Outbound {
        /// The outbound port it stands for: from `host:port` API listener names, the bound
        /// address, or a numeric route-configuration name.
        port: u16,
        /// The RDS route configuration it uses.
        route_config_name: String,
    },
    /// A port this workload serves on (gRFC A36).
    Inbound(InboundListener),
}

impl DecodedListener {
    /// The RDS route configuration an outbound listener names.
    pub fn route_config_name(&self) -> Option<&str> {
        match &self.role {
            ListenerRole::Outbound {
                route_config_name, ..
            } => Some(route_config_name),
            ListenerRole::Inbound(_) => None,
        }
    }
}

fn hcm(route_config_name: &str, stat_prefix: &str) -> HttpConnectionManager {
    let filter = |name: &str, any| HttpFilter {
        name: name.to_owned(),
        config_type: Some(HttpFilterConfig::TypedConfig(any)),
        ..Default::default()
    };
    HttpConnectionManager {
        stat_prefix: stat_prefix.to_owned(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_source()),
            route_config_name: route_config_name.to_owned(),
        })),
        http_filters: vec![
            filter(FAULT_FILTER, pack(&HttpFault::default())),
            filter(ROUTER, pack(&Router::default())),
        ],
        ..Default::default()
    }
}

/// An API listener for a proxyless client's target `host:port`.
pub(crate) fn api_listener(name: &str, route_config_name: &str) -> Listener {
    Listener {
        name: name.to_owned(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack(&hcm(route_config_name, name))),
        }),
        ..Default::default()
    }
}

/// Envoy's outbound listener for a port.
pub(crate) fn port_listener(port: u16, route_config_name: &str) -> Listener {
    let name = format!("0.0.0.0_{port}");
    Listener {
        address: Some(socket_address("0.0.0.0", port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM.to_owned(),
                config_type: Some(FilterConfig::TypedConfig(pack(&hcm(
                    route_config_name,
                    &name,
                )))),
            }],
            ..Default::default()
        }],
        name,
        ..Default::default()
    }
}

fn port_of_name(name: &str) -> Option<u16> {
    name.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Reports the connection-manager fields mesh does not read (everything but the route
/// specifier, the HTTP filters and the stat prefix), such as gRPC's default
/// `common_http_protocol_options.max_stream_duration`.
pub(crate) fn report_unused(hcm: &HttpConnectionManager, path: &str, scope: &mut Scope) {
    let residual = HttpConnectionManager {
        stat_prefix: String::new(),
        route_specifier: None,
        http_filters: Vec::new(),
        ..hcm.clone()
    };
    scope.unsupported(path, &residual);
}

/// The HTTP connection manager of a filter chain, and its field path.
pub(crate) fn chain_hcm(
    chain: &FilterChain,
    at: &str,
    scope: &Scope,
) -> Result<(HttpConnectionManager, String), XdsError> {
    let (i, filter) = chain
        .filters
        .iter()
        .enumerate()
        .find(|(_, f)| {
            f.name == HCM
                || matches!(&f.config_type, Some(FilterConfig::TypedConfig(a)) if a.type_url.ends_with("HttpConnectionManager"))
        })
        .ok_or_else(|| scope.error(format!("{at}.filters"), "no HTTP connection manager"))?;
    let path = format!("{at}.filters[{i}].typed_config");
    match &filter.config_type {
        Some(FilterConfig::TypedConfig(a)) => {
            let hcm = unpack(a).map_err(|e| scope.error(&path, e))?;
            Ok((hcm, path))
        }
        _ => Err(scope.error(&path, "missing")),
    }
}

/// Decodes and validates one LDS resource.
pub fn decode_listener(l: &Listener) -> Result<DecodedListener, XdsError> {
    let mut scope = Scope::new(ResourceKind::Listener, l.name.clone());
    if inbound::is_inbound(l) {
        let decoded = inbound::decode(l, &mut scope)?;
        return Ok(DecodedListener {
            name: l.name.clone(),
            role: ListenerRole::Inbound(decoded),
            warnings: scope.warnings,
        });
    }
    let (manager, path, bound_port) = match (&l.api_listener, l.filter_chains.as_slice()) {
        (Some(api), _) => {
            let any = api
                .api_listener
                .as_ref()
                .ok_or_else(|| scope.error("api_listener.api_listener", "missing"))?;
            let hcm: HttpConnectionManager =
                unpack(any).map_err(|e| scope.error("api_listener.api_listener", e))?;
            (hcm, "api_listener.api_listener".to_owned(), None)
        }
        (None, [chain, rest @ ..]) => {
            if !rest.is_empty() {
                scope.warn("filter_chains", "only the first filter chain is used");
            }
            let (hcm, path) = chain_hcm(chain, "filter_chains[0]", &scope)?;
            let port = inbound::bound_port(l);
            (hcm, path, port)
        }
        (None, []) => {
            return Err(scope.error("api_listener", "neither an API listener nor a filter chain"));
        }
    };
    report_unused(&manager, &path, &mut scope);
    let rds = match &manager.route_specifier {
        Some(RouteSpecifier::Rds(r)) => r,
        Some(_) => {
            return Err(scope.error(format!("{path}.route_specifier"), "only RDS is supported"));
        }
        None => return Err(scope.error(format!("{path}.route_specifier"), "missing")),
    };
    if rds.route_config_name.is_empty() {
        return Err(scope.error(format!("{path}.rds.route_config_name"), "empty"));
    }
    for (i, f) in manager.http_filters.iter().enumerate() {
        if f.name != ROUTER && f.name != FAULT_FILTER && !f.is_optional {
            scope.warn(
                format!("{path}.http_filters[{i}]"),
                format!("filter {:?} not implemented; ignored", f.name),
            );
        }
    }
    let port = port_of_name(&l.name)
        .or(bound_port)
        .or_else(|| rds.route_config_name.parse().ok())
        .ok_or_else(|| scope.error("name", "cannot tell the port: expected host:port, a bound address, or a numeric route name"))?;
    Ok(DecodedListener {
        name: l.name.clone(),
        role: ListenerRole::Outbound {
            port,
            route_config_name: rds.route_config_name.clone(),
        },
        warnings: scope.warnings,
    })
}
