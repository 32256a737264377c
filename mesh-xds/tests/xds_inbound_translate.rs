//! Inbound listeners ↔ the inbound policy: Istio files → model → listener → model keeps every
//! port's mode and policies; istiod's own shapes decode; what mesh cannot honour is refused with
//! the field named.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, Listener, filter::ConfigType as FilterConfig,
};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, route::Action};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::google::protobuf::Any;
use mesh_core::model::{InboundPolicy, MtlsMode, SnapshotSource};
use mesh_core::{BuildContext, Workload, istio};
use mesh_xds::translate::{
    Decoded, ListenerRole, NodeKind, XdsResources, assemble, decode_listener, inbound_listener_for,
};
use prost::{Message, Name};

const FILES: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
  portLevelMtls:
    9090: {mode: DISABLE}
    9091: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-legacy, namespace: default}
spec:
  action: DENY
  rules:
  - from: [{source: {namespaces: [legacy, 'old-*'], notPrincipals: ['*/sa/migrator']}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/productpage], ipBlocks: [10.0.0.0/8]}
    - source: {namespaces: [monitoring]}
    to:
    - operation: {methods: [GET, POST], paths: ['/reviews/*', '*/health'], ports: ['9080']}
    when:
    - {key: 'request.headers[x-tenant]', values: [acme], notValues: [evil]}
    - {key: destination.port, values: ['9080']}
  - {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nothing-else, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
";

const PREFIX: &str = "xds.istio.io/grpc/lds/inbound/";

fn inbound_from_files() -> InboundPolicy {
    let ctx = BuildContext {
        workload: Workload::new("default", "reviews").labels([("app", "reviews")]),
        ..Default::default()
    };
    istio::load_str("security.yaml", FILES, &ctx)
        .unwrap_or_else(|e| panic!("{e}"))
        .inbound
}

fn reencode<M: Message + Default>(m: &M) -> M {
    M::decode(m.encode_to_vec().as_slice()).unwrap()
}

fn assembled(listeners: Vec<Listener>) -> InboundPolicy {
    let resources = XdsResources {
        listeners: listeners.iter().map(reencode).collect(),
        ..Default::default()
    };
    let decoded = Decoded::from_resources(&resources).unwrap_or_else(|e| panic!("{e}"));
    for l in decoded.listeners.values() {
        assert!(l.warnings.is_empty(), "our own output: {:?}", l.warnings);
    }
    assemble(
        &decoded,
        "1".into(),
        SnapshotSource::Xds {
            server: "test".into(),
        },
    )
    .inbound
}

#[test]
fn every_port_keeps_its_mode_and_policies() {
    let files = inbound_from_files();
    assert_eq!(files.authorization.len(), 3, "{files:#?}");
    for node in [NodeKind::ProxylessGrpc, NodeKind::Envoy] {
        let ports = [9080_u16, 9090, 9091];
        let listeners = ports
            .iter()
            .map(|p| inbound_listener_for(&files, &format!("{PREFIX}0.0.0.0:{p}"), node).unwrap())
            .collect();
        let back = assembled(listeners);
        for port in ports {
            assert_eq!(
                back.peer_authentication.mode_for(port),
                files.peer_authentication.mode_for(port),
                "{node:?} port {port}"
            );
            assert_eq!(
                back.authorization_for(Some(port)),
                files.authorization_for(Some(port)),
                "{node:?} port {port}"
            );
        }
        assert_eq!(back.peer_authentication.mode, MtlsMode::Strict);
        assert_eq!(back.authorization, files.authorization);
        assert!(back.port_authorization.is_empty());
    }
}

#[test]
fn modes_map_to_filter_chains_as_istiod_and_grpc_read_them() {
    let files = inbound_from_files();
    let chains = |port: u16| {
        inbound_listener_for(
            &files,
            &format!("{PREFIX}[::]:{port}"),
            NodeKind::ProxylessGrpc,
        )
        .unwrap()
        .filter_chains
    };
    let strict = chains(9080);
    assert_eq!(strict.len(), 1);
    assert!(strict[0].transport_socket.is_some());
    assert!(strict[0].filter_chain_match.is_none());
    let disable = chains(9090);
    assert_eq!(disable.len(), 1);
    assert!(disable[0].transport_socket.is_none());
    // PERMISSIVE: gRPC drops the `tls` chain (A36) and serves plaintext, as istiod's downgrade;
    // mesh takes both.
    let permissive = chains(9091);
    let protocols: Vec<_> = permissive
        .iter()
        .map(|c| {
            c.filter_chain_match
                .as_ref()
                .unwrap()
                .transport_protocol
                .as_str()
        })
        .collect();
    assert_eq!(protocols, ["tls", "raw_buffer"]);
    let l = inbound_listener_for(&files, &format!("{PREFIX}[::]:9080"), NodeKind::Envoy).unwrap();
    assert_eq!(l.name, format!("{PREFIX}[::]:9080"));
    assert!(
        inbound_listener_for(&files, &format!("{PREFIX}no-address"), NodeKind::Envoy).is_none()
    );
}

fn hcm_of(chain: &FilterChain) -> HttpConnectionManager {
    match &chain.filters[0].config_type {
        Some(FilterConfig::TypedConfig(a)) => {
            HttpConnectionManager::decode(a.value.as_slice()).unwrap()
        }
        _ => panic!("no typed config"),
    }
}

fn set_hcm(chain: &mut FilterChain, hcm: &HttpConnectionManager) {
    chain.filters = vec![Filter {
        name: "inbound-hcmmtls".into(),
        config_type: Some(FilterConfig::TypedConfig(Any {
            type_url: format!("type.googleapis.com/{}", HttpConnectionManager::full_name()),
            value: hcm.encode_to_vec(),
        })),
    }];
}

/// istiod's STRICT listener for a gRPC server: one chain named `inbound-mtls`, no metadata.
fn istiod_strict() -> Listener {
    let mut l = inbound_listener_for(
        &InboundPolicy {
            peer_authentication: mesh_core::model::PeerAuthnPolicy {
                mode: MtlsMode::Strict,
                ..Default::default()
            },
            ..Default::default()
        },
        &format!("{PREFIX}0.0.0.0:8080"),
        NodeKind::ProxylessGrpc,
    )
    .unwrap();
    l.metadata = None;
    let hcm = hcm_of(&l.filter_chains[0]);
    set_hcm(&mut l.filter_chains[0], &hcm);
    l
}

fn decode_err(l: &Listener) -> String {
    decode_listener(&reencode(l)).unwrap_err().to_string()
}

#[test]
fn istiod_shapes_decode() {
    let l = istiod_strict();
    let d = decode_listener(&l).unwrap();
    match d.role {
        ListenerRole::Inbound(i) => {
            assert_eq!(i.port, 8080);
            assert_eq!(i.mode, MtlsMode::Strict);
            assert!(i.authorization.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let mut plain = istiod_strict();
    plain.filter_chains[0].transport_socket = None;
    match decode_listener(&plain).unwrap().role {
        ListenerRole::Inbound(i) => assert_eq!(i.mode, MtlsMode::Disable),
        other => panic!("{other:?}"),
    }
}

#[test]
fn what_mesh_cannot_honour_is_refused_with_the_field() {
    // One-way TLS.
    let mut l = istiod_strict();
    let socket = l.filter_chains[0].transport_socket.as_mut().unwrap();
    let Some(SocketConfig::TypedConfig(any)) = &mut socket.config_type else {
        panic!()
    };
    let mut tls = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
    tls.require_client_certificate = None;
    any.value = tls.encode_to_vec();
    let e = decode_err(&l);
    assert!(
        e.contains("filter_chains[0].transport_socket.typed_config.require_client_certificate"),
        "{e}"
    );

    // A route that forwards.
    let mut l = istiod_strict();
    let mut hcm = hcm_of(&l.filter_chains[0]);
    let Some(RouteSpecifier::RouteConfig(rc)) = &mut hcm.route_specifier else {
        panic!()
    };
    rc.virtual_hosts[0].routes[0] = Route {
        action: Some(Action::Route(RouteAction::default())),
        ..rc.virtual_hosts[0].routes[0].clone()
    };
    set_hcm(&mut l.filter_chains[0], &hcm);
    let e = decode_err(&l);
    assert!(
        e.contains("route_config.virtual_hosts[0].routes[0].action"),
        "{e}"
    );
    assert!(e.contains("non_forwarding_action"), "{e}");

    // RDS.
    let mut l = istiod_strict();
    let mut hcm = hcm_of(&l.filter_chains[0]);
    hcm.route_specifier = Some(RouteSpecifier::Rds(Rds {
        route_config_name: "inbound".into(),
        ..Default::default()
    }));
    set_hcm(&mut l.filter_chains[0], &hcm);
    l.name = format!("{PREFIX}0.0.0.0:8080");
    let e = decode_err(&l);
    assert!(e.contains("route_specifier"), "{e}");

    // A transport protocol the chain does not speak.
    let mut l = istiod_strict();
    l.filter_chains[0].filter_chain_match = Some(Default::default());
    l.filter_chains[0]
        .filter_chain_match
        .as_mut()
        .unwrap()
        .transport_protocol = "raw_buffer".into();
    let e = decode_err(&l);
    assert!(e.contains("filter_chain_match.transport_protocol"), "{e}");

    // No port.
    let mut l = istiod_strict();
    l.address = None;
    let e = decode_err(&l);
    assert!(e.contains("address.socket_address.port_value"), "{e}");
}
