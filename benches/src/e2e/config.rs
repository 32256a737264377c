//! The names and Istio configs of the end-to-end arms: one client workload calling one greeter
//! workload, both in namespace `bench`, over ISTIO_MUTUAL with a STRICT PeerAuthentication and
//! an AuthorizationPolicy enforced. `sidecar-tax` writes these for its child processes; the
//! in-process benchmarks load them directly.

/// The mesh's trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";
/// Namespace of both workloads.
pub const NAMESPACE: &str = "bench";
/// The client's service account.
pub const CLIENT_SA: &str = "client";
/// The greeter's service account.
pub const GREETER_SA: &str = "greeter";

/// The authority every call carries (what the mesh and Envoy route on).
pub const ORIGIN: &str = "http://greeter:50051";
/// The path of the plain-HTTP echo call.
pub const ECHO_PATH: &str = "/echo";

/// The server-side config of the gRPC arm: STRICT mutual TLS, and only `client` may call the
/// greeter's methods.
pub const SERVER_YAML: &str = r#"apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: bench}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: greeter, namespace: bench}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/bench/sa/client"]}}]
    to: [{operation: {paths: ["/helloworld.Greeter/*"]}}]
"#;

/// The server-side config of the plain-HTTP arm: the same policies, the rule naming the echo
/// path instead of the gRPC service.
pub const SERVER_HTTP_YAML: &str = r#"apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: bench}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: greeter, namespace: bench}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/bench/sa/client"]}}]
    to: [{operation: {paths: ["/echo"]}}]
"#;

/// The client-side config of the gRPC arm: the greeter service (ISTIO_MUTUAL, least request) and
/// a route to it, the server listening on `port`.
pub fn client_yaml(port: u16) -> String {
    service_yaml(port, "grpc", "GRPC")
}

/// The client-side config of the plain-HTTP arm: the same service, route and policies on an
/// `HTTP2` port, so mesh speaks HTTP/2 upstream as the bare hyper arm does.
pub fn client_http_yaml(port: u16) -> String {
    service_yaml(port, "http2", "HTTP2")
}

fn service_yaml(port: u16, port_name: &str, protocol: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: greeter, namespace: bench}}
spec:
  hosts: [greeter.bench.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 50051, name: {port_name}, protocol: {protocol}}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{{port_name}: {port}}}, serviceAccount: greeter}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter, namespace: bench}}
spec:
  host: greeter.bench.svc.cluster.local
  trafficPolicy:
    tls: {{mode: ISTIO_MUTUAL}}
    loadBalancer: {{simple: LEAST_REQUEST}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: greeter, namespace: bench}}
spec:
  hosts: [greeter]
  http:
  - route: [{{destination: {{host: greeter.bench.svc.cluster.local, port: {{number: 50051}}}}}}]
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gRPC arm's client config is byte for byte what `sidecar-tax` always generated.
    #[test]
    fn grpc_service_keeps_its_port_name() {
        let yaml = client_yaml(4242);
        assert!(yaml.contains("ports: [{number: 50051, name: grpc, protocol: GRPC}]"));
        assert!(yaml.contains("ports: {grpc: 4242}"));
        let http = client_http_yaml(4242);
        assert!(http.contains("ports: [{number: 50051, name: http2, protocol: HTTP2}]"));
        assert!(http.contains("ports: {http2: 4242}"));
    }
}
