//! Inbound listeners: the server side of a proxyless workload (gRFC A36), as istiod's gRPC
//! generator writes them.
//!
//! A workload that serves on `ip:port` asks for the listener named by its bootstrap's
//! `server_listener_resource_name_template` (Istio: `xds.istio.io/grpc/lds/inbound/ip:port`).
//! The listener's filter chains say how connections are secured, and the HTTP connection
//! manager of each chain carries the RBAC filters that authorize requests:
//!
//! | filter chains | [`MtlsMode`] |
//! | --- | --- |
//! | one, with a `DownstreamTlsContext` requiring client certificates | STRICT |
//! | one, plaintext | DISABLE |
//! | a TLS chain matching `transport_protocol: tls` and a plaintext one | PERMISSIVE |
//!
//! gRPC only takes the plaintext chain of the PERMISSIVE form (it drops chains that match a
//! transport protocol other than `raw_buffer`), which is what istiod does for gRPC servers, so
//! one listener serves gRPC as istiod would and mesh as the files would. Every chain must carry
//! the same RBAC policies: mesh applies one set per port. The route configuration is inline and
//! every route is `non_forwarding_action`: a server routes to itself.
//!
//! What xDS has no field for travels in the listener's `mesh` metadata: the order of the
//! AuthorizationPolicies (RBAC keeps them in a map), so Istio files → model → xDS → model is
//! lossless.

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::{
    TransportSocket, address, socket_address::PortSpecifier,
    transport_socket::ConfigType as SocketConfig,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, filter::ConfigType as FilterConfig,
};
use envoy_types::pb::envoy::config::route::v3::{
    NonForwardingAction, Route, RouteConfiguration, RouteMatch, VirtualHost, route::Action,
    route_match::PathSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager::RouteSpecifier,
    http_filter::ConfigType as HttpFilterConfig,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, DownstreamTlsContext,
};
use envoy_types::pb::google::protobuf::{BoolValue, value::Kind};
use mesh_core::model::{AuthzAction, AuthzPolicy, InboundPolicy, MtlsMode};

use super::NodeKind;
use super::error::{Scope, XdsError};
use super::listener::{HCM, ROUTER, chain_hcm, report_unused};
use super::meta;
use super::proto::{as_str, list_value, pack, socket_address, string_value, unpack};
use super::rbac;
use super::tls::{TLS_SOCKET, identity_context, names_identity_certificate};

/// The prefix of Istio's inbound listener names (`server_listener_resource_name_template`
/// `xds.istio.io/grpc/lds/inbound/%s`).
pub const INBOUND_PREFIX: &str = "xds.istio.io/grpc/lds/inbound/";

/// A validated inbound listener.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundListener {
    /// The port served.
    pub port: u16,
    /// How connections are secured.
    pub mode: MtlsMode,
    /// The policies that authorize its requests.
    pub authorization: Vec<AuthzPolicy>,
}

/// Whether `l` is a server listener: named with Istio's inbound prefix, or bound with a filter
/// chain whose connection manager carries its routes inline (a proxy's outbound listeners
/// name RDS).
pub(crate) fn is_inbound(l: &Listener) -> bool {
    if l.api_listener.is_some() {
        return false;
    }
    if l.name.starts_with(INBOUND_PREFIX) {
        return true;
    }
    let scope = Scope::new(super::ResourceKind::Listener, "");
    l.filter_chains.first().is_some_and(|c| {
        chain_hcm(c, "", &scope)
            .is_ok_and(|(h, _)| matches!(h.route_specifier, Some(RouteSpecifier::RouteConfig(_))))
    })
}

/// The port of a listener's socket address.
pub(crate) fn bound_port(l: &Listener) -> Option<u16> {
    match l.address.as_ref()?.address.as_ref()? {
        address::Address::SocketAddress(s) => match s.port_specifier {
            Some(PortSpecifier::PortValue(p)) => u16::try_from(p).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// How one filter chain secures its connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tls,
    Plaintext,
}

/// Decodes an inbound listener.
pub(crate) fn decode(l: &Listener, scope: &mut Scope) -> Result<InboundListener, XdsError> {
    let port = bound_port(l).ok_or_else(|| {
        scope.error(
            "address.socket_address.port_value",
            "an inbound listener needs the port it serves",
        )
    })?;
    let chains: Vec<(String, &FilterChain)> = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("filter_chains[{i}]"), c))
        .chain(
            l.default_filter_chain
                .iter()
                .map(|c| ("default_filter_chain".to_owned(), c)),
        )
        .collect();
    if chains.is_empty() {
        return Err(scope.error("filter_chains", "an inbound listener needs a filter chain"));
    }
    if !l.listener_filters.is_empty() {
        scope.warn(
            "listener_filters",
            "listener filters are not implemented; ignored",
        );
    }
    let mut transports = Vec::new();
    let mut policies: Option<(String, Vec<AuthzPolicy>)> = None;
    for (at, chain) in &chains {
        let transport = chain_transport(chain, at, scope)?;
        transports.push(transport);
        let chain_policies = chain_policies(chain, at, scope)?;
        match &policies {
            None => policies = Some((at.clone(), chain_policies)),
            Some((first, p)) if *p != chain_policies => {
                return Err(scope.error(
                    format!("{at}.filters"),
                    format!(
                        "its RBAC policies differ from those of {first}; mesh applies one set of policies per port"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let tls = transports.contains(&Transport::Tls);
    let plaintext = transports.contains(&Transport::Plaintext);
    let mode = match (tls, plaintext) {
        (true, true) => MtlsMode::Permissive,
        (true, false) => MtlsMode::Strict,
        _ => MtlsMode::Disable,
    };
    let decoded = policies.map(|(_, p)| p).unwrap_or_default();
    Ok(InboundListener {
        port,
        mode,
        authorization: restore_order(decoded, l),
    })
}

/// Whether `chain` is TLS (mutual, with the workload identity) or plaintext, checked against
/// its `transport_protocol` match.
fn chain_transport(
    chain: &FilterChain,
    at: &str,
    scope: &mut Scope,
) -> Result<Transport, XdsError> {
    let transport = match &chain.transport_socket {
        None => Transport::Plaintext,
        Some(socket) => {
            downstream_tls(socket, &format!("{at}.transport_socket"), scope)?;
            Transport::Tls
        }
    };
    if let Some(m) = &chain.filter_chain_match {
        let expected = match m.transport_protocol.as_str() {
            "" => None,
            "tls" => Some(Transport::Tls),
            "raw_buffer" => Some(Transport::Plaintext),
            other => {
                return Err(scope.error(
                    format!("{at}.filter_chain_match.transport_protocol"),
                    format!(
                        "{other:?} is not a transport protocol: expected \"tls\" or \"raw_buffer\""
                    ),
                ));
            }
        };
        if expected.is_some_and(|e| e != transport) {
            return Err(scope.error(
                format!("{at}.filter_chain_match.transport_protocol"),
                "the chain's transport socket does not match its transport protocol",
            ));
        }
        let residual = FilterChainMatch {
            transport_protocol: String::new(),
            ..m.clone()
        };
        scope.unsupported(&format!("{at}.filter_chain_match"), &residual);
    }
    Ok(transport)
}

/// Checks a chain's TLS: mutual, with the workload identity.
fn downstream_tls(socket: &TransportSocket, at: &str, scope: &mut Scope) -> Result<(), XdsError> {
    let path = format!("{at}.typed_config");
    let context: DownstreamTlsContext = match &socket.config_type {
        Some(SocketConfig::TypedConfig(any)) => unpack(any).map_err(|e| scope.error(&path, e))?,
        None => return Err(scope.error(&path, "missing")),
    };
    if !context.require_client_certificate.is_some_and(|b| b.value) {
        return Err(scope.error(
            format!("{path}.require_client_certificate"),
            "TLS without client certificates is not supported: a mesh server verifies its peers",
        ));
    }
    let common = context.common_tls_context.clone().unwrap_or_default();
    if !names_identity_certificate(&common) {
        return Err(scope.error(
            format!("{path}.common_tls_context"),
            "no workload certificate: expected the certificate `default` (SDS or a provider instance)",
        ));
    }
    let residual = DownstreamTlsContext {
        common_tls_context: None,
        require_client_certificate: None,
        ..context
    };
    scope.unsupported(&path, &residual);
    Ok(())
}

/// A chain's policies, from its connection manager's RBAC filters; checks that its routes
/// only stay on this server.
fn chain_policies(
    chain: &FilterChain,
    at: &str,
    scope: &mut Scope,
) -> Result<Vec<AuthzPolicy>, XdsError> {
    let (hcm, path) = chain_hcm(chain, at, scope)?;
    report_unused(&hcm, &path, scope);
    match &hcm.route_specifier {
        Some(RouteSpecifier::RouteConfig(rc)) => {
            for (v, vh) in rc.virtual_hosts.iter().enumerate() {
                for (r, route) in vh.routes.iter().enumerate() {
                    if !matches!(route.action, Some(Action::NonForwardingAction(_))) {
                        return Err(scope.error(
                            format!("{path}.route_config.virtual_hosts[{v}].routes[{r}].action"),
                            "a server's routes must be non_forwarding_action (gRFC A36)",
                        ));
                    }
                }
            }
        }
        _ => {
            return Err(scope.error(
                format!("{path}.route_specifier"),
                "an inbound listener carries its route configuration inline",
            ));
        }
    }
    let filters_path = format!("{path}.http_filters");
    let policies = rbac::decode_rbac_filters(&hcm.http_filters, &filters_path, scope)?;
    for (i, f) in hcm.http_filters.iter().enumerate() {
        if f.name != ROUTER && !rbac::is_rbac(f) && !f.is_optional {
            scope.warn(
                format!("{filters_path}[{i}]"),
                format!(
                    "filter {:?} not implemented on inbound listeners; ignored",
                    f.name
                ),
            );
        }
    }
    Ok(policies)
}

/// Puts decoded policies back in the order the `mesh` metadata lists (the RBAC policy map has
/// none). Without that metadata (another control plane), the decoder's order stands.
fn restore_order(mut decoded: Vec<AuthzPolicy>, l: &Listener) -> Vec<AuthzPolicy> {
    let Some(Kind::ListValue(list)) =
        meta::field(l.metadata.as_ref(), meta::MESH, "authz").and_then(|v| v.kind.as_ref())
    else {
        return decoded;
    };
    // A stable sort: what the list does not name keeps its place after what it does.
    decoded.sort_by_key(|p| {
        list.values
            .iter()
            .position(|v| as_str(v) == Some(p.name.as_str()))
            .unwrap_or(usize::MAX)
    });
    decoded
}

/// Refuses every request on the port of `name`, a server listener that was asked for and does
/// not exist: gRFC A36's "not serving", failing closed rather than serving without the control
/// plane's security. Ports are read from the `ip:port` tail of the name; a name without one
/// changes nothing.
pub fn not_serving(inbound: &mut InboundPolicy, name: &str) {
    let Some(port) = name
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
    else {
        return;
    };
    inbound.port_authorization.insert(
        port,
        vec![AuthzPolicy {
            name: format!("xds: listener {name} does not exist"),
            action: AuthzAction::Allow,
            rules: Vec::new(),
        }],
    );
}

/// The inbound listener named `name` (`<prefix>ip:port`) for a workload whose inbound policy is
/// `inbound`, as served to `node`; `None` when the name holds no socket address.
pub fn inbound_listener_for(
    inbound: &InboundPolicy,
    name: &str,
    node: NodeKind,
) -> Option<Listener> {
    let addr: SocketAddr = name.rsplit('/').next()?.parse().ok()?;
    Some(inbound_listener(name, addr, inbound, node))
}

/// Builds the inbound listener for `addr`.
pub(crate) fn inbound_listener(
    name: &str,
    addr: SocketAddr,
    inbound: &InboundPolicy,
    node: NodeKind,
) -> Listener {
    let mode = inbound.peer_authentication.mode_for(addr.port());
    let policies = inbound.authorization_for(Some(addr.port()));
    let filters = || {
        let mut f = rbac::rbac_filters(policies, node);
        f.push(HttpFilter {
            name: ROUTER.to_owned(),
            config_type: Some(HttpFilterConfig::TypedConfig(pack(&Router::default()))),
            ..Default::default()
        });
        f
    };
    let tls = || TransportSocket {
        name: TLS_SOCKET.to_owned(),
        config_type: Some(SocketConfig::TypedConfig(pack(&DownstreamTlsContext {
            common_tls_context: Some(identity_context(
                node,
                CertificateValidationContext::default(),
            )),
            require_client_certificate: Some(BoolValue { value: true }),
            ..Default::default()
        }))),
    };
    let chain =
        |suffix: &str, protocol: Option<&str>, socket: Option<TransportSocket>| FilterChain {
            name: format!("inbound-{suffix}"),
            filter_chain_match: protocol.map(|p| FilterChainMatch {
                transport_protocol: p.to_owned(),
                ..Default::default()
            }),
            filters: vec![Filter {
                name: HCM.to_owned(),
                config_type: Some(FilterConfig::TypedConfig(pack(&server_hcm(filters())))),
            }],
            transport_socket: socket,
            ..Default::default()
        };
    let filter_chains = match mode {
        MtlsMode::Strict => vec![chain("mtls", None, Some(tls()))],
        MtlsMode::Disable => vec![chain("plaintext", None, None)],
        MtlsMode::Permissive => vec![
            chain("mtls", Some("tls"), Some(tls())),
            chain("plaintext", Some("raw_buffer"), None),
        ],
    };
    let order = policies
        .iter()
        .map(|p| string_value(p.name.clone()))
        .collect();
    Listener {
        name: name.to_owned(),
        address: Some(socket_address(addr.ip().to_string(), addr.port())),
        filter_chains,
        metadata: meta::metadata(vec![(
            meta::MESH,
            HashMap::from([("authz".to_owned(), list_value(order))]),
        )]),
        ..Default::default()
    }
}

/// A server's connection manager: every request stays here, through `filters`.
fn server_hcm(http_filters: Vec<HttpFilter>) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: "inbound".into(),
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: "inbound".into(),
            virtual_hosts: vec![VirtualHost {
                name: "inbound".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(PathSpecifier::Prefix("/".into())),
                        ..Default::default()
                    }),
                    action: Some(Action::NonForwardingAction(NonForwardingAction {})),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters,
        ..Default::default()
    }
}
