//! Envoy bootstraps shaped like the configuration istiod gives a sidecar, with static
//! resources and certificate files instead of xDS and SDS.
//!
//! - [`inbound`]: Istio's `virtualInbound` listener with one mutual-TLS HTTP chain for a service
//!   port: client certificate required and verified against the root, Istio's downstream ALPN
//!   list, an HTTP connection manager that appends `x-forwarded-client-cert` with the caller's
//!   URI SAN (as Istio does) and routes to the local app through cluster `inbound|<port>||`.
//! - [`outbound`]: Istio's `0.0.0.0_<port>` HTTP listener for an application's plaintext calls,
//!   routing to cluster `outbound|<port>||<host>`, an `ISTIO_MUTUAL` upstream: the sidecar's
//!   certificate, the root, the server's SPIFFE ID as a URI SAN match, Istio's SNI and ALPN.
//!
//! Everything binds 127.0.0.1 port 0; see [`super::Envoy::listener`].

use std::net::SocketAddr;

use mesh_core::identity::IdentityFiles;
use serde_json::{Value, json};

/// Name of the inbound listener, as in Istio.
pub const INBOUND_LISTENER: &str = "virtualInbound";

/// ALPN Istio's inbound mutual-TLS chains accept (`ALPNDownstreamWithMxc` plus the IDs
/// istio-proxy's sidecars send for HTTP).
pub const INBOUND_ALPN: [&str; 6] = [
    "istio-peer-exchange",
    "h2",
    "http/1.1",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];

/// ALPN an Istio `ISTIO_MUTUAL` HTTP/1.1 cluster offers (`ALPNInMeshWithMxc`).
pub const OUTBOUND_ALPN_HTTP1: [&str; 2] = ["istio-peer-exchange", "istio"];

/// ALPN an Istio `ISTIO_MUTUAL` HTTP/2 cluster offers (`ALPNInMeshH2WithMxc`).
pub const OUTBOUND_ALPN_HTTP2: [&str; 3] = ["istio-peer-exchange", "istio", "h2"];

/// A sidecar receiving mutual TLS on a service port for a local plaintext app.
#[derive(Clone, Debug)]
pub struct Inbound<'a> {
    /// The service port (names the chain, cluster and stats, as in Istio).
    pub port: u16,
    /// The local application, plaintext HTTP/1.1.
    pub app: SocketAddr,
    /// The sidecar's identity (Istio's file layout).
    pub certs: &'a IdentityFiles,
}

/// A sidecar sending an application's plaintext calls to a mesh service over `ISTIO_MUTUAL`.
#[derive(Clone, Debug)]
pub struct Outbound<'a> {
    /// The destination's host name (`<svc>.<ns>.svc.cluster.local`).
    pub host: &'a str,
    /// The destination's service port.
    pub port: u16,
    /// The destination endpoint.
    pub endpoint: SocketAddr,
    /// The SPIFFE ID the destination must present (`spiffe://…`).
    pub server_identity: &'a str,
    /// HTTP/2 upstream (Istio: `GRPC`/`HTTP2` ports, or `h2UpgradePolicy`); else HTTP/1.1.
    pub http2: bool,
    /// The sidecar's identity (Istio's file layout).
    pub certs: &'a IdentityFiles,
}

impl Outbound<'_> {
    /// The listener's name, as in Istio.
    pub fn listener_name(&self) -> String {
        format!("0.0.0.0_{}", self.port)
    }

    /// The cluster's name, as in Istio.
    pub fn cluster_name(&self) -> String {
        format!("outbound|{}||{}", self.port, self.host)
    }

    /// The SNI Istio sends to an in-mesh upstream (no subset).
    pub fn sni(&self) -> String {
        format!("outbound_.{}_._.{}", self.port, self.host)
    }
}

/// A bootstrap for an inbound sidecar.
pub fn inbound(config: &Inbound<'_>) -> Value {
    let port = config.port;
    let cluster = format!("inbound|{port}||");
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": format!("inbound_0.0.0.0_{port}"),
        "codec_type": "AUTO",
        "forward_client_cert_details": "APPEND_FORWARD",
        "set_current_client_cert_details": {"subject": true, "dns": true, "uri": true},
        "route_config": {
            "name": cluster,
            "virtual_hosts": [{
                "name": format!("inbound|http|{port}"),
                "domains": ["*"],
                "routes": [{
                    "name": "default",
                    "match": {"prefix": "/"},
                    "route": {"cluster": cluster, "timeout": "0s"},
                }],
            }],
        },
        "http_filters": [router()],
    });
    let tls = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": true,
        "common_tls_context": {
            "alpn_protocols": INBOUND_ALPN,
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
            "tls_certificates": [certificate(config.certs)],
            "validation_context": {"trusted_ca": file(&config.certs.roots)},
        },
    });
    let listener = json!({
        "name": INBOUND_LISTENER,
        "address": loopback(0),
        "listener_filters": [{
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
            },
        }],
        // Mutual TLS only (STRICT): a plaintext connection matches no chain and is closed.
        "filter_chains": [{
            "name": format!("0.0.0.0_{port}"),
            "filter_chain_match": {"transport_protocol": "tls"},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm,
            }],
        }],
    });
    let app = json!({
        "name": cluster,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": endpoint(&cluster, config.app),
    });
    bootstrap("inbound", listener, app)
}

/// A bootstrap for an outbound sidecar.
pub fn outbound(config: &Outbound<'_>) -> Value {
    let cluster = config.cluster_name();
    let host = config.host;
    let port = config.port;
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": format!("outbound_0.0.0.0_{port}"),
        "codec_type": "AUTO",
        "route_config": {
            "name": port.to_string(),
            "virtual_hosts": [{
                "name": format!("{host}:{port}"),
                "domains": [host, format!("{host}:{port}")],
                "routes": [{
                    "name": "default",
                    "match": {"prefix": "/"},
                    "route": {"cluster": cluster, "timeout": "0s"},
                }],
            }],
        },
        "http_filters": [router()],
    });
    let listener = json!({
        "name": config.listener_name(),
        "address": loopback(0),
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm,
            }],
        }],
    });
    let (alpn, protocol): (&[&str], Value) = if config.http2 {
        (&OUTBOUND_ALPN_HTTP2, json!({"http2_protocol_options": {}}))
    } else {
        (&OUTBOUND_ALPN_HTTP1, json!({"http_protocol_options": {}}))
    };
    let tls = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": config.sni(),
        "common_tls_context": {
            "alpn_protocols": alpn,
            "tls_certificates": [certificate(config.certs)],
            "validation_context": {
                "trusted_ca": file(&config.certs.roots),
                "match_typed_subject_alt_names": [{
                    "san_type": "URI",
                    "matcher": {"exact": config.server_identity},
                }],
            },
        },
    });
    let upstream = json!({
        "name": cluster,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": endpoint(&cluster, config.endpoint),
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": protocol,
            },
        },
    });
    bootstrap("outbound", listener, upstream)
}

fn bootstrap(role: &str, listener: Value, cluster: Value) -> Value {
    json!({
        "node": {"id": format!("sidecar~127.0.0.1~{role}.mesh-interop~mesh-interop.svc.cluster.local"), "cluster": role},
        "admin": {"address": loopback(0)},
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
    })
}

fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
}

fn certificate(certs: &IdentityFiles) -> Value {
    json!({"certificate_chain": file(&certs.cert_chain), "private_key": file(&certs.key)})
}

fn file(path: &std::path::Path) -> Value {
    json!({"filename": path.to_string_lossy()})
}

fn loopback(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

fn endpoint(cluster: &str, addr: SocketAddr) -> Value {
    json!({
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()},
        }}}]}],
    })
}
