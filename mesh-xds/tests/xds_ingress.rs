//! An Envoy sidecar whose traffic is not intercepted gets its inbound listeners from the
//! `Sidecar` resource's `ingress` listeners, as istiod builds them
//! (pilot/pkg/networking/core/listener_inbound.go `buildInboundChainConfigs`,
//! `inboundCustomListener`; cluster.go `buildInboundClustersFromSidecar`): over ADS from
//! `mesh xds serve` on 127.0.0.1, and from the pure translation for every mode. Envoy itself
//! takes them in `.ci/interop-sds.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Node, address, socket_address::PortSpecifier};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::ForwardClientCertDetails,
    http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, common_tls_context::ValidationContextType,
};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use mesh_core::model::{
    CaptureMode, DefaultEndpoint, InboundPolicy, IngressListener, MtlsMode, PeerAuthnPolicy,
    Protocol,
};
use mesh_xds::translate::{IngressNode, ingress_resources, type_url};
use prost::Message;
use support::control_plane::serve_dir;
use support::stream::{next, open};

const PORT: u16 = 15080;

fn files(capture: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: vm, namespace: shop}}
spec:
  workloadSelector: {{labels: {{app: vm}}}}
  ingress:
  - port: {{number: {PORT}, protocol: HTTP, name: http}}
    bind: 127.0.0.1
    defaultEndpoint: 127.0.0.1:8080
    captureMode: {capture}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: vm, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: vm}}}}
  mtls: {{mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: frontend-only, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: vm}}}}
  action: ALLOW
  rules: [{{from: [{{source: {{principals: [cluster.local/ns/shop/sa/frontend]}}}}]}}]
"
    )
}

fn s(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.into())),
    }
}

/// An Envoy node of shop with `labels`, and `INTERCEPTION_MODE` when given.
fn node(labels: &[(&str, &str)], interception: Option<&str>) -> Node {
    let mut fields = HashMap::from([("NAMESPACE".to_owned(), s("shop"))]);
    let labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), s(v)))
        .collect();
    fields.insert(
        "LABELS".into(),
        Value {
            kind: Some(Kind::StructValue(Struct { fields: labels })),
        },
    );
    if let Some(mode) = interception {
        fields.insert("INTERCEPTION_MODE".into(), s(mode));
    }
    Node {
        id: "sidecar~10.1.2.3~vm.shop~shop.svc.cluster.local".into(),
        metadata: Some(Struct { fields }),
        ..Default::default()
    }
}

async fn server(yaml: &str) -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vm.yaml"), yaml).unwrap();
    (serve_dir(dir.path()).await, dir)
}

/// The first state-of-the-world answer to a wildcard subscription of `type_url` as `node`.
async fn fetch<M: Message + Default>(addr: SocketAddr, node: Node, type_url: &str) -> Vec<M> {
    let request = DiscoveryRequest {
        node: Some(node),
        type_url: type_url.into(),
        ..Default::default()
    };
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut responses = client
        .stream_aggregated_resources(open([request]))
        .await
        .unwrap()
        .into_inner();
    let response = next(&mut responses).await.unwrap().unwrap();
    response
        .resources
        .iter()
        .map(|any| M::decode(any.value.as_slice()).unwrap())
        .collect()
}

fn hcm(chain: &FilterChain) -> HttpConnectionManager {
    match &chain.filters[0].config_type {
        Some(filter::ConfigType::TypedConfig(any)) => {
            HttpConnectionManager::decode(any.value.as_slice()).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

fn transport_protocols(l: &Listener) -> Vec<(String, bool)> {
    l.filter_chains
        .iter()
        .map(|c| {
            (
                c.filter_chain_match
                    .clone()
                    .unwrap_or_default()
                    .transport_protocol,
                c.transport_socket.is_some(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_envoy_node_gets_its_sidecar_ingress_listener_and_app_cluster() {
    let (addr, _dir) = server(&files("NONE")).await;
    let vm = node(&[("app", "vm")], None);
    let listeners: Vec<Listener> = fetch(addr, vm.clone(), type_url::LISTENER).await;
    let name = format!("127.0.0.1_{PORT}");
    let l = listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no {name} in {:?}",
                listeners.iter().map(|l| &l.name).collect::<Vec<_>>()
            )
        });
    let Some(address::Address::SocketAddress(sa)) = l.address.as_ref().unwrap().address.as_ref()
    else {
        panic!("{:?}", l.address)
    };
    assert_eq!(
        (sa.address.as_str(), sa.port_specifier.clone()),
        ("127.0.0.1", Some(PortSpecifier::PortValue(u32::from(PORT))))
    );
    // STRICT: one mutual-TLS chain; a plaintext connection matches none.
    assert_eq!(transport_protocols(l), [("tls".to_owned(), true)]);
    let chain = &l.filter_chains[0];
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &chain.transport_socket.as_ref().unwrap().config_type
    else {
        panic!()
    };
    let tls = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
    assert_eq!(tls.require_client_certificate.map(|b| b.value), Some(true));
    let common = tls.common_tls_context.unwrap();
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
    let Some(ValidationContextType::CombinedValidationContext(v)) = &common.validation_context_type
    else {
        panic!("{:?}", common.validation_context_type)
    };
    assert_eq!(
        v.validation_context_sds_secret_config
            .as_ref()
            .unwrap()
            .name,
        "ROOTCA"
    );
    // The caller's identity goes to the app; the policy is an RBAC filter; every request goes
    // to the app's cluster.
    let hcm = hcm(chain);
    assert_eq!(
        hcm.forward_client_cert_details,
        ForwardClientCertDetails::AppendForward as i32
    );
    assert!(hcm.set_current_client_cert_details.as_ref().unwrap().uri);
    let filters: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        filters,
        ["envoy.filters.http.rbac", "envoy.filters.http.router"]
    );
    let Some(RouteSpecifier::RouteConfig(rc)) = &hcm.route_specifier else {
        panic!()
    };
    let Some(Action::Route(action)) = &rc.virtual_hosts[0].routes[0].action else {
        panic!()
    };
    let cluster_name = format!("inbound|{PORT}||");
    assert_eq!(
        action.cluster_specifier,
        Some(ClusterSpecifier::Cluster(cluster_name.clone()))
    );

    let clusters: Vec<Cluster> = fetch(addr, vm, type_url::CLUSTER).await;
    let c = clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .expect("the app cluster");
    let endpoint = &c.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0];
    let Some(HostIdentifier::Endpoint(e)) = &endpoint.host_identifier else {
        panic!()
    };
    let Some(address::Address::SocketAddress(app)) = e.address.as_ref().unwrap().address.as_ref()
    else {
        panic!()
    };
    assert_eq!(
        (app.address.as_str(), app.port_specifier.clone()),
        ("127.0.0.1", Some(PortSpecifier::PortValue(8080)))
    );
}

/// istiod's `getBindToPort`: `captureMode: DEFAULT` binds only on a node that declares
/// `INTERCEPTION_MODE: NONE` (istiod's default is REDIRECT); a workload the Sidecar does not
/// select gets nothing (`doGetSidecarScope`).
#[tokio::test]
async fn only_selected_nodes_that_do_not_intercept_bind_the_port() {
    let (addr, _dir) = server(&files("DEFAULT")).await;
    let inbound = |listeners: Vec<Listener>| {
        listeners
            .into_iter()
            .filter(|l| l.name.ends_with(&format!("_{PORT}")))
            .count()
    };
    let redirect = node(&[("app", "vm")], None);
    assert_eq!(inbound(fetch(addr, redirect, type_url::LISTENER).await), 0);
    let none = node(&[("app", "vm")], Some("NONE"));
    assert_eq!(inbound(fetch(addr, none, type_url::LISTENER).await), 1);
    let other = node(&[("app", "other")], Some("NONE"));
    assert_eq!(inbound(fetch(addr, other, type_url::LISTENER).await), 0);
}

fn policy(mode: MtlsMode, endpoint: DefaultEndpoint, bind: Option<&str>) -> InboundPolicy {
    InboundPolicy {
        peer_authentication: PeerAuthnPolicy {
            mode,
            ..Default::default()
        },
        ingress: vec![IngressListener {
            port: PORT,
            protocol: Protocol::Grpc,
            name: "grpc".into(),
            bind: bind.map(|b| b.parse().unwrap()),
            capture_mode: CaptureMode::None,
            default_endpoint: endpoint,
            sidecar: "shop/vm".into(),
        }],
        ..Default::default()
    }
}

/// Every mode, bind and endpoint form, from the pure translation.
#[test]
fn modes_binds_and_endpoints_follow_istiod() {
    let node = IngressNode {
        ip: Some("10.1.2.3".parse().unwrap()),
        intercepted: false,
    };
    let loopback = DefaultEndpoint::Loopback {
        ipv6: false,
        port: 8080,
    };
    // PERMISSIVE: a TLS chain and a plaintext chain; DISABLE: plaintext only.
    let r = ingress_resources(&policy(MtlsMode::Permissive, loopback.clone(), None), node);
    assert_eq!(
        transport_protocols(&r.listeners[0]),
        [("tls".to_owned(), true), ("raw_buffer".to_owned(), false)]
    );
    let r = ingress_resources(&policy(MtlsMode::Disable, loopback.clone(), None), node);
    assert_eq!(
        transport_protocols(&r.listeners[0]),
        [("raw_buffer".to_owned(), false)]
    );
    // No bind: the node's global unicast IP (`getSidecarInboundBindIPs`); a loopback node IP
    // is not one, so the wildcard.
    assert_eq!(r.listeners[0].name, format!("10.1.2.3_{PORT}"));
    let local = IngressNode {
        ip: Some("127.0.0.1".parse().unwrap()),
        intercepted: false,
    };
    let r = ingress_resources(&policy(MtlsMode::Strict, loopback, None), local);
    assert_eq!(r.listeners[0].name, format!("0.0.0.0_{PORT}"));
    // A GRPC port: HTTP/2 to the app.
    let options = r.clusters[0]
        .typed_extension_protocol_options
        .values()
        .next()
        .unwrap();
    let options =
        envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions::decode(
            options.value.as_slice(),
        )
        .unwrap();
    assert!(format!("{options:?}").contains("Http2ProtocolOptions"));
    // 0.0.0.0:<port> is the node's own address.
    let instance = DefaultEndpoint::InstanceIp {
        ipv6: false,
        port: 7000,
    };
    let r = ingress_resources(&policy(MtlsMode::Strict, instance, Some("127.0.0.1")), node);
    let e = &r.clusters[0].load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0];
    let Some(HostIdentifier::Endpoint(e)) = &e.host_identifier else {
        panic!()
    };
    assert!(format!("{:?}", e.address).contains("10.1.2.3"), "{e:?}");
    // Captured by iptables: left out, and said why.
    let mut captured = policy(
        MtlsMode::Strict,
        DefaultEndpoint::Unix("/app.sock".into()),
        None,
    );
    captured.ingress[0].capture_mode = CaptureMode::Iptables;
    let r = ingress_resources(&captured, node);
    assert!(r.listeners.is_empty() && r.clusters.is_empty());
    assert!(r.skipped[0].contains("intercepted"), "{:?}", r.skipped);
}

/// An ISTIO_MUTUAL service of shop on port 8080.
const PAYMENT: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment, namespace: shop}
spec:
  hosts: [payment.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment, namespace: shop}
spec:
  host: payment.shop.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
";

/// Every SDS config source to `sds-grpc` (ISTIO_MUTUAL clusters, inbound listeners), as an
/// encoded TLS context names it: the `api_type`s found.
fn sds_api_types(r: &mesh_xds::translate::XdsResources) -> Vec<i32> {
    use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    fn types(
        common: &envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CommonTlsContext,
    ) -> Vec<i32> {
        let mut sources: Vec<_> = common
            .tls_certificate_sds_secret_configs
            .iter()
            .filter_map(|s| s.sds_config.clone())
            .collect();
        if let Some(ValidationContextType::CombinedValidationContext(c)) =
            &common.validation_context_type
        {
            sources.extend(
                c.validation_context_sds_secret_config
                    .iter()
                    .filter_map(|s| s.sds_config.clone()),
            );
        }
        sources
            .into_iter()
            .filter_map(|s| match s.config_source_specifier {
                Some(ConfigSourceSpecifier::ApiConfigSource(a)) => Some(a.api_type),
                _ => None,
            })
            .collect()
    }
    let typed = |s: &envoy_types::pb::envoy::config::core::v3::TransportSocket| match &s.config_type
    {
        Some(
            envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
                any,
            ),
        ) => any.clone(),
        None => panic!(),
    };
    let mut out = Vec::new();
    for c in &r.clusters {
        if let Some(s) = &c.transport_socket {
            let t = UpstreamTlsContext::decode(typed(s).value.as_slice()).unwrap();
            out.extend(types(&t.common_tls_context.unwrap()));
        }
    }
    for l in &r.listeners {
        for chain in &l.filter_chains {
            if let Some(s) = &chain.transport_socket {
                let t = DownstreamTlsContext::decode(typed(s).value.as_slice()).unwrap();
                out.extend(types(&t.common_tls_context.unwrap()));
            }
        }
    }
    out
}

/// A node on incremental ADS gets its SDS config sources incremental too (`DELTA_GRPC`), in
/// its ISTIO_MUTUAL clusters and its inbound listeners; istiod's `GRPC` otherwise.
#[test]
fn sds_sources_follow_the_nodes_ads_protocol() {
    use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
    let yaml = PAYMENT;
    let ctx = mesh_core::BuildContext {
        workload: mesh_core::Workload::new("shop", "vm"),
        ..Default::default()
    };
    let snapshot = mesh_core::istio::load_str("shop.yaml", yaml, &ctx).unwrap();
    let mut r = mesh_xds::translate::to_resources(&snapshot, mesh_xds::translate::NodeKind::Envoy);
    let ingress = ingress_resources(
        &policy(
            MtlsMode::Strict,
            DefaultEndpoint::Loopback {
                ipv6: false,
                port: 8080,
            },
            None,
        ),
        IngressNode::default(),
    );
    r.listeners.extend(ingress.listeners);
    let sotw = sds_api_types(&r);
    assert_eq!(sotw, [ApiType::Grpc as i32; 4], "istiod's GRPC: {sotw:?}");
    mesh_xds::translate::sds_over_delta(&mut r);
    assert_eq!(sds_api_types(&r), [ApiType::DeltaGrpc as i32; 4]);
}

/// istiod's `buildSidecarOutboundListeners` with interception NONE: outbound listeners bind
/// the loopback (`127.0.0.1_<port>`), leaving the node's own address to its inbound listeners.
#[test]
fn outbound_listeners_of_a_node_that_does_not_intercept_bind_the_loopback() {
    let ctx = mesh_core::BuildContext {
        workload: mesh_core::Workload::new("shop", "vm"),
        ..Default::default()
    };
    let snapshot = mesh_core::istio::load_str("shop.yaml", PAYMENT, &ctx).unwrap();
    let mut r = mesh_xds::translate::to_resources(&snapshot, mesh_xds::translate::NodeKind::Envoy);
    assert_eq!(r.listeners[0].name, "0.0.0.0_8080");
    mesh_xds::translate::bind_outbound_to_loopback(&mut r.listeners);
    assert_eq!(r.listeners[0].name, "127.0.0.1_8080");
    let Some(address::Address::SocketAddress(sa)) =
        r.listeners[0].address.as_ref().unwrap().address.as_ref()
    else {
        panic!()
    };
    assert_eq!(sa.address, "127.0.0.1");
}
