//! Arm C's Envoy pair, configured as Istio configures its sidecars (istio-proxy's bootstrap and
//! the listeners, routes and clusters istiod pushes, written as static resources):
//!
//! - client side: an outbound HTTP listener for `greeter:50051` (virtual host per service
//!   name, route to `outbound|50051||greeter.bench.svc.cluster.local`, Istio's default retry
//!   policy), and that cluster with ISTIO_MUTUAL TLS: the workload's SPIFFE certificate, Istio's
//!   SNI and ALPN, the peer's SPIFFE URI SAN matched, HTTP/2 upstream, least request;
//! - server side: an inbound listener requiring a client certificate from the mesh's roots,
//!   an RBAC filter equal to the AuthorizationPolicy of arm B (principal and path), XFCC like
//!   Istio, and `inbound|50051||` to the application over h2c.
//!
//! Both run the HTTP filters Istio runs that upstream Envoy has (gRPC stats, fault, CORS,
//! router). Istio's own `istio.stats` and metadata-exchange filters are not in upstream Envoy,
//! so this pair does a little less work per request than real istio-proxy.

use std::path::Path;

use crate::setup::{CLIENT_SA, GREETER_SA, NAMESPACE, TRUST_DOMAIN};

const OUTBOUND_CLUSTER: &str = "outbound|50051||greeter.bench.svc.cluster.local";

fn tls_files(dir: &Path, sa: &str) -> (String, String, String) {
    let d = dir.join(sa);
    (
        d.join("cert-chain.pem").display().to_string(),
        d.join("key.pem").display().to_string(),
        d.join("root-cert.pem").display().to_string(),
    )
}

/// HTTP filters of an Istio sidecar available in upstream Envoy, then `rbac` (inbound only).
fn http_filters(rbac: Option<&str>) -> String {
    let mut out = String::from(
        r#"          - name: envoy.filters.http.grpc_stats
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig
              emit_filter_state: true
              stats_for_all_methods: false
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
          - name: envoy.filters.http.cors
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors
"#,
    );
    if let Some(rbac) = rbac {
        out.push_str(rbac);
    }
    out.push_str(
        r#"          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
    );
    out
}

/// The client-side sidecar: outbound listener on `listen_port`, ISTIO_MUTUAL to
/// `upstream_port` (the server-side sidecar).
pub fn client_bootstrap(dir: &Path, listen_port: u16, upstream_port: u16) -> String {
    let (cert, key, roots) = tls_files(dir, CLIENT_SA);
    let filters = http_filters(None);
    format!(
        r#"node:
  id: sidecar~127.0.0.1~{CLIENT_SA}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local
  cluster: {CLIENT_SA}.{NAMESPACE}
static_resources:
  listeners:
  - name: 0.0.0.0_50051
    address:
      socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}
    traffic_direction: OUTBOUND
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound_0.0.0.0_50051
          codec_type: AUTO
          use_remote_address: false
          generate_request_id: true
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: KEEP_UNCHANGED
          stream_idle_timeout: 0s
          route_config:
            name: "50051"
            validate_clusters: false
            virtual_hosts:
            - name: greeter.{NAMESPACE}.svc.cluster.local:50051
              domains: ["greeter.{NAMESPACE}.svc.cluster.local", "greeter.{NAMESPACE}.svc.cluster.local:50051", "greeter", "greeter:50051", "greeter.{NAMESPACE}", "greeter.{NAMESPACE}:50051"]
              routes:
              - name: default
                match: {{prefix: /}}
                decorator: {{operation: "greeter.{NAMESPACE}.svc.cluster.local:50051/*"}}
                route:
                  cluster: "{OUTBOUND_CLUSTER}"
                  timeout: 0s
                  max_stream_duration: {{max_stream_duration: 0s, grpc_timeout_header_max: 0s}}
                  retry_policy:
                    retry_on: connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes
                    num_retries: 2
                    retry_host_predicate: [{{name: envoy.retry_host_predicates.previous_hosts, typed_config: {{"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}}}]
                    host_selection_retry_max_attempts: 5
                    retriable_status_codes: [503]
          http_filters:
{filters}  clusters:
  - name: "{OUTBOUND_CLUSTER}"
    type: STATIC
    connect_timeout: 10s
    lb_policy: LEAST_REQUEST
    circuit_breakers:
      thresholds: [{{max_connections: 4294967295, max_pending_requests: 4294967295, max_requests: 4294967295, max_retries: 4294967295}}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: "{OUTBOUND_CLUSTER}"
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}}}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: outbound_.50051_._.greeter.{NAMESPACE}.svc.cluster.local
        common_tls_context:
          alpn_protocols: [istio-peer-exchange, istio]
          tls_params: {{tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}}
          tls_certificates:
          - certificate_chain: {{filename: "{cert}"}}
            private_key: {{filename: "{key}"}}
          validation_context:
            trusted_ca: {{filename: "{roots}"}}
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: {{exact: "spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{GREETER_SA}"}}
"#
    )
}

/// The server-side sidecar: inbound mTLS listener on `listen_port`, to the application on
/// `app_port`.
pub fn server_bootstrap(dir: &Path, listen_port: u16, app_port: u16) -> String {
    let (cert, key, roots) = tls_files(dir, GREETER_SA);
    let rbac = format!(
        r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  ns[{NAMESPACE}]-policy[greeter]-rule[0]:
                    permissions:
                    - and_rules: {{rules: [{{or_rules: {{rules: [{{url_path: {{path: {{prefix: /helloworld.Greeter/}}}}}}]}}}}]}}
                    principals:
                    - and_ids: {{ids: [{{or_ids: {{ids: [{{authenticated: {{principal_name: {{exact: "spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{CLIENT_SA}"}}}}}}]}}}}]}}
"#
    );
    let filters = http_filters(Some(&rbac));
    format!(
        r#"node:
  id: sidecar~127.0.0.1~{GREETER_SA}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local
  cluster: {GREETER_SA}.{NAMESPACE}
static_resources:
  listeners:
  - name: virtualInbound
    address:
      socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}
    traffic_direction: INBOUND
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_params: {{tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}}
            tls_certificates:
            - certificate_chain: {{filename: "{cert}"}}
              private_key: {{filename: "{key}"}}
            validation_context:
              trusted_ca: {{filename: "{roots}"}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound_0.0.0.0_50051
          codec_type: AUTO
          use_remote_address: false
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: KEEP_UNCHANGED
          stream_idle_timeout: 0s
          forward_client_cert_details: APPEND_FORWARD
          set_current_client_cert_details: {{subject: true, dns: true, uri: true}}
          route_config:
            name: "inbound|50051||"
            validate_clusters: false
            virtual_hosts:
            - name: "inbound|http|50051"
              domains: ["*"]
              routes:
              - name: default
                match: {{prefix: /}}
                decorator: {{operation: "greeter.{NAMESPACE}.svc.cluster.local:50051/*"}}
                route:
                  cluster: "inbound|50051||"
                  timeout: 0s
                  max_stream_duration: {{max_stream_duration: 0s, grpc_timeout_header_max: 0s}}
          http_filters:
{filters}  clusters:
  - name: "inbound|50051||"
    type: STATIC
    connect_timeout: 10s
    circuit_breakers:
      thresholds: [{{max_connections: 4294967295, max_pending_requests: 4294967295, max_requests: 4294967295, max_retries: 4294967295}}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: "inbound|50051||"
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {app_port}}}}}}}
"#
    )
}
