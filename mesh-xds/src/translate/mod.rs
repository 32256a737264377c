//! Translation between xDS resources and the mesh model, both ways, with no I/O.
//!
//! - xDS → model: each resource is decoded and validated on its own ([`decode_listener`],
//!   [`decode_route_configuration`], [`decode_cluster`], [`decode_load_assignment`]), so a bad
//!   resource is named in a NACK while the good ones of the same response are still used; then
//!   [`assemble`] joins a complete set into a [`Snapshot`]. Errors carry the resource and the
//!   field path: `cluster outbound|9080|v1|reviews.default.svc.cluster.local: lb_policy: …`.
//! - model → xDS: [`to_resources`] produces what istiod would send, for an Envoy sidecar or a
//!   proxyless gRPC client ([`NodeKind`]); [`api_listener_for`] and [`inbound_listener_for`] the
//!   listeners a proxyless client names (its targets, and its server side: the port's mutual-TLS
//!   mode as filter chains, its AuthorizationPolicies as RBAC filters); [`ingress_resources`]
//!   an Envoy sidecar's inbound listeners from the `Sidecar` resource's `ingress` listeners.
//!
//! Fields of a resource that mesh does not implement are reported as warning diagnostics (field
//! number and message type), never silently dropped. Whatever the model holds that xDS has no
//! field for (peak-EWMA balancing, locality failover settings, endpoint identities, the
//! VirtualService a route came from) travels in the `mesh` filter-metadata namespace, which
//! Envoy and gRPC ignore, so Istio files → model → xDS → model is lossless.
//!
//! [`Snapshot`]: mesh_core::model::Snapshot

// Deprecated xDS fields are still read: control planes still send them.
#![allow(deprecated)]

mod assemble;
mod cluster;
mod endpoints;
mod error;
mod inbound;
mod ingress;
mod listener;
mod meta;
pub(crate) mod proto;
mod rbac;
mod route;
mod sds_api;
mod tls;
mod upstream_options;

pub use assemble::{Decoded, api_listener_for, assemble, to_resources};
pub use cluster::{DecodedCluster, decode_cluster};
pub use endpoints::{DecodedEndpoints, decode_load_assignment};
pub use error::{ResourceKind, XdsError};
pub use inbound::{INBOUND_PREFIX, InboundListener, inbound_listener_for, not_serving};
pub use ingress::{IngressNode, IngressResources, bind_outbound_to_loopback, ingress_resources};
pub use listener::{DecodedListener, ListenerRole, decode_listener};
pub use route::{DecodedRouteConfiguration, decode_route_configuration};
pub use sds_api::sds_over_delta;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration as XdsRouteConfiguration;

/// Type URLs of the four resource types mesh speaks.
pub mod type_url {
    /// Listener (LDS).
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    /// RouteConfiguration (RDS).
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    /// Cluster (CDS).
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    /// ClusterLoadAssignment (EDS).
    pub const ENDPOINTS: &str =
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
}

/// Who the resources are for: Envoy binds listeners on ports; a proxyless gRPC client asks for
/// API listeners named `host:port` and reads certificates from its bootstrap's providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// An Envoy proxy.
    Envoy,
    /// A proxyless gRPC client (or a mesh workload), as Istio's `GENERATOR: grpc` nodes.
    ProxylessGrpc,
}

/// A full set of xDS resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct XdsResources {
    /// LDS.
    pub listeners: Vec<Listener>,
    /// RDS.
    pub route_configurations: Vec<XdsRouteConfiguration>,
    /// CDS.
    pub clusters: Vec<XdsCluster>,
    /// EDS.
    pub load_assignments: Vec<ClusterLoadAssignment>,
}

pub use tls::{CERT_DEFAULT, CERT_ROOTCA};

/// Istio's one certificate-provider instance name, holding both `default` and `ROOTCA`.
pub const CERT_INSTANCE: &str = "default";
