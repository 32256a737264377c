//! An Envoy sidecar's inbound listeners from the `Sidecar` resource's `ingress` listeners, as
//! istiod builds them for a proxy whose traffic is not intercepted (VMs, `captureMode: NONE`).
//!
//! For each [`IngressListener`] that binds its port (istiod's `getBindToPort`: `captureMode:
//! NONE`, or `DEFAULT` on a node whose `INTERCEPTION_MODE` is `NONE`), istiod's
//! `buildInboundChainConfigs` / `inboundCustomListener` (pilot/pkg/networking/core/
//! listener_inbound.go) give:
//!
//! - a listener `<bind>_<port>` bound on `<bind>:<port>` (the node's global unicast IP, else
//!   the wildcard, when `bind` is unset: `getSidecarInboundBindIPs`), direction INBOUND, with
//!   the TLS inspector;
//! - filter chains by the port's PeerAuthentication mode: STRICT one mutual-TLS chain matching
//!   `transport_protocol: tls` (a plaintext connection matches none and is closed); PERMISSIVE
//!   that chain and a plaintext one; DISABLE a plaintext one. The TLS chain takes the SDS
//!   certificate `default`, validates clients against the SDS `ROOTCA`, and requires a client
//!   certificate;
//! - in each chain an HTTP connection manager whose RBAC filters are the port's
//!   AuthorizationPolicies (the encoder the proxyless inbound listeners use), which appends the
//!   caller's identity to `x-forwarded-client-cert` (`APPEND_FORWARD` with subject, URI and DNS:
//!   istiod's default proxy headers, pilot/pkg/networking/util/proxy_headers.go), and routes
//!   every request to cluster `inbound|<port>||`;
//! - that cluster, STATIC, holding `defaultEndpoint` (`buildInboundClustersFromSidecar`,
//!   cluster.go: `127.0.0.1`/`::1` are the loopback, `0.0.0.0`/`::` the node's own address of
//!   that family or else the loopback, `unix://` a socket), speaking HTTP/2 for HTTP2 and GRPC
//!   ports.
//!
//! A listener that does not bind (captured by iptables) would be a chain of the virtual
//! inbound listener, which `mesh xds serve` does not build: it is left out and reported. The
//! outbound listeners of a node that does not intercept bind the loopback
//! ([`bind_outbound_to_loopback`]), as istiod binds them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{
    Address, Http2ProtocolOptions, Pipe, TrafficDirection, TransportSocket, address,
    transport_socket::ConfigType as SocketConfig,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
    filter::ConfigType as FilterConfig, listener_filter::ConfigType as ListenerFilterConfig,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
    http_connection_manager::{
        CodecType, ForwardClientCertDetails, RouteSpecifier, SetCurrentClientCertDetails,
    },
    http_filter::ConfigType as HttpFilterConfig,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, DownstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions as UpstreamHttpOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::pb::google::protobuf::BoolValue;
use mesh_core::model::{CaptureMode, DefaultEndpoint, InboundPolicy, IngressListener, MtlsMode};

use super::NodeKind;
use super::cluster::HTTP_OPTIONS;
use super::listener::{HCM, ROUTER};
use super::proto::{duration_to, pack, socket_address};
use super::rbac;
use super::tls::{TLS_SOCKET, identity_context};

/// The TLS inspector listener filter (it reads the transport protocol chains match on).
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
/// ALPN of istiod's inbound mutual-TLS HTTP chains (`ALPNDownstreamWithMxc`).
const INBOUND_ALPN: [&str; 3] = ["istio-peer-exchange", "h2", "http/1.1"];

/// What istiod reads from an Envoy node to place its inbound listeners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngressNode {
    /// The node's IP (Istio's node id, `sidecar~<ip>~…`), if any.
    pub ip: Option<IpAddr>,
    /// Whether its inbound traffic is intercepted (node metadata `INTERCEPTION_MODE`
    /// `REDIRECT` or `TPROXY`, istiod's default when unset); `NONE`: not intercepted.
    pub intercepted: bool,
}

/// The inbound listeners and clusters of an Envoy node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngressResources {
    /// One listener per bound ingress port.
    pub listeners: Vec<Listener>,
    /// One `inbound|<port>||` cluster per listener.
    pub clusters: Vec<Cluster>,
    /// Why ingress listeners were left out, one line each.
    pub skipped: Vec<String>,
}

/// The inbound listeners and clusters for the ingress listeners of `inbound`, secured and
/// authorized by its PeerAuthentication and AuthorizationPolicies, for an Envoy `node`.
pub fn ingress_resources(inbound: &InboundPolicy, node: IngressNode) -> IngressResources {
    let mut out = IngressResources::default();
    for l in &inbound.ingress {
        // istiod's `getBindToPort`.
        let binds = match l.capture_mode {
            CaptureMode::Default => !node.intercepted,
            CaptureMode::None => true,
            CaptureMode::Iptables => false,
        };
        if !binds {
            out.skipped.push(format!(
                "Sidecar {} ingress port {}: its traffic is intercepted (captureMode {:?}, node interception {}), which needs the virtual inbound listener mesh xds serve does not build; set captureMode: NONE or node metadata INTERCEPTION_MODE: NONE",
                l.sidecar,
                l.port,
                l.capture_mode,
                if node.intercepted { "REDIRECT" } else { "NONE" }
            ));
            continue;
        }
        let cluster = format!("inbound|{}||", l.port);
        out.listeners.push(listener(l, &cluster, inbound, node));
        out.clusters.push(app_cluster(l, &cluster, node));
    }
    out
}

/// Binds the outbound listeners of a node whose traffic is not intercepted on the loopback, as
/// istiod does (`buildSidecarOutboundListeners`: with interception NONE, `bind.binds =
/// actualLocalHosts`): `0.0.0.0_<port>` becomes `127.0.0.1_<port>` on `127.0.0.1`, so the
/// application calls its services on localhost and the ports stay free on the node's own
/// address for its inbound listeners. Call it before adding the inbound listeners.
pub fn bind_outbound_to_loopback(listeners: &mut [Listener]) {
    for l in listeners {
        let Some(address::Address::SocketAddress(sa)) =
            l.address.as_mut().and_then(|a| a.address.as_mut())
        else {
            continue;
        };
        let Some(port) = l.name.strip_prefix("0.0.0.0_") else {
            continue;
        };
        if sa.address != "0.0.0.0" || l.api_listener.is_some() {
            continue;
        }
        sa.address = Ipv4Addr::LOCALHOST.to_string();
        l.name = format!("{}_{port}", Ipv4Addr::LOCALHOST);
    }
}

/// istiod's `getSidecarInboundBindIPs`: the node's global unicast IP, else the wildcard.
fn bind_address(l: &IngressListener, node: IngressNode) -> IpAddr {
    if let Some(bind) = l.bind {
        return bind;
    }
    match node.ip {
        Some(ip) if is_global_unicast(ip) => ip,
        Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// Go's `IP.IsGlobalUnicast`: not unspecified, loopback, multicast or link-local (private
/// addresses are global unicast).
fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

fn listener(
    l: &IngressListener,
    cluster: &str,
    inbound: &InboundPolicy,
    node: IngressNode,
) -> Listener {
    let bind = bind_address(l, node);
    let name = format!("{bind}_{}", l.port);
    let mode = inbound.peer_authentication.mode_for(l.port);
    let policies = inbound.authorization_for(Some(l.port));
    let h2 = l.protocol.requires_h2();
    let chain = |protocol: &str, socket: Option<TransportSocket>| FilterChain {
        name: name.clone(),
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: protocol.to_owned(),
            ..Default::default()
        }),
        filters: vec![Filter {
            name: HCM.to_owned(),
            config_type: Some(FilterConfig::TypedConfig(pack(&hcm(
                &name, cluster, l.port, h2, policies,
            )))),
        }],
        transport_socket: socket,
        ..Default::default()
    };
    let filter_chains = match mode {
        MtlsMode::Strict => vec![chain("tls", Some(mutual_tls()))],
        MtlsMode::Permissive => vec![chain("tls", Some(mutual_tls())), chain("raw_buffer", None)],
        MtlsMode::Disable => vec![chain("raw_buffer", None)],
    };
    Listener {
        name: name.clone(),
        address: Some(socket_address(bind.to_string(), l.port)),
        traffic_direction: TrafficDirection::Inbound as i32,
        listener_filters: vec![ListenerFilter {
            name: TLS_INSPECTOR.to_owned(),
            config_type: Some(ListenerFilterConfig::TypedConfig(pack(
                &TlsInspector::default(),
            ))),
            ..Default::default()
        }],
        continue_on_listener_filters_timeout: true,
        filter_chains,
        ..Default::default()
    }
}

/// The mesh's mutual TLS: the SDS certificate `default`, clients verified against `ROOTCA`.
fn mutual_tls() -> TransportSocket {
    let mut common = identity_context(NodeKind::Envoy, CertificateValidationContext::default());
    common.alpn_protocols = INBOUND_ALPN.iter().map(|p| (*p).to_owned()).collect();
    TransportSocket {
        name: TLS_SOCKET.to_owned(),
        config_type: Some(SocketConfig::TypedConfig(pack(&DownstreamTlsContext {
            common_tls_context: Some(common),
            require_client_certificate: Some(BoolValue { value: true }),
            ..Default::default()
        }))),
    }
}

/// The connection manager of an inbound chain: RBAC, then the router to the application.
fn hcm(
    name: &str,
    cluster: &str,
    port: u16,
    h2: bool,
    policies: &[mesh_core::model::AuthzPolicy],
) -> HttpConnectionManager {
    let mut http_filters = rbac::rbac_filters(policies, NodeKind::Envoy);
    http_filters.push(HttpFilter {
        name: ROUTER.to_owned(),
        config_type: Some(HttpFilterConfig::TypedConfig(pack(&Router::default()))),
        ..Default::default()
    });
    HttpConnectionManager {
        stat_prefix: format!("inbound_{name}"),
        codec_type: CodecType::Auto as i32,
        forward_client_cert_details: ForwardClientCertDetails::AppendForward as i32,
        set_current_client_cert_details: Some(SetCurrentClientCertDetails {
            subject: Some(BoolValue { value: true }),
            uri: true,
            dns: true,
            ..Default::default()
        }),
        http2_protocol_options: h2.then(Http2ProtocolOptions::default),
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: cluster.to_owned(),
            virtual_hosts: vec![VirtualHost {
                name: format!("inbound|http|{port}"),
                domains: vec!["*".into()],
                routes: vec![Route {
                    name: "default".into(),
                    r#match: Some(RouteMatch {
                        path_specifier: Some(PathSpecifier::Prefix("/".into())),
                        ..Default::default()
                    }),
                    action: Some(Action::Route(RouteAction {
                        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_owned())),
                        // istiod disables the route timeout on inbound routes.
                        timeout: Some(duration_to(std::time::Duration::ZERO)),
                        ..Default::default()
                    })),
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

/// The application's address (`buildInboundClustersFromSidecar`).
fn app_address(endpoint: &DefaultEndpoint, node: IngressNode) -> Address {
    let loopback = |ipv6: bool| -> IpAddr {
        if ipv6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    };
    match endpoint {
        DefaultEndpoint::Loopback { ipv6, port } => {
            socket_address(loopback(*ipv6).to_string(), *port)
        }
        DefaultEndpoint::InstanceIp { ipv6, port } => {
            let ip = node
                .ip
                .filter(|ip| ip.is_ipv6() == *ipv6)
                .unwrap_or_else(|| loopback(*ipv6));
            socket_address(ip.to_string(), *port)
        }
        DefaultEndpoint::Unix(path) => Address {
            address: Some(address::Address::Pipe(Pipe {
                path: path.display().to_string(),
                mode: 0,
            })),
        },
    }
}

fn app_cluster(l: &IngressListener, name: &str, node: IngressNode) -> Cluster {
    let protocol = if l.protocol.requires_h2() {
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Default::default())
    };
    let options = UpstreamHttpOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(protocol),
            },
        )),
        ..Default::default()
    };
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(duration_to(std::time::Duration::from_secs(10))),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: Some(app_address(&l.default_endpoint, node)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        typed_extension_protocol_options: [(HTTP_OPTIONS.to_owned(), pack(&options))]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}
