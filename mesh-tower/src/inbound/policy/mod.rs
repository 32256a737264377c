//! The per-request inbound policy: what a sidecar's inbound listener does to each request
//! before and after the application handles it, for apps that run their own listener.
//!
//! [`Inbound`] wraps the application (behind [`Authz`](super::authz::Authz), which it composes)
//! and, for each request:
//!
//! 1. **Trace context.** Reads `traceparent`/`tracestate` or B3 and continues the trace with a
//!    new span (or starts one), makes sure the request carries an `x-request-id`, and runs the
//!    handler inside [`trace::scope`](crate::trace::scope), so calls the handler makes through
//!    `MeshClient` continue the same trace and request id.
//! 2. **Metadata exchange.** Reads the caller's `x-envoy-peer-metadata` to label the source
//!    workload, strips it (and `-id`) before the application sees the request, and adds ours to
//!    the response, as Envoy's `istio.metadata_exchange` filter does.
//! 3. **Authorization.** [`Authz`](super::authz::Authz): path normalisation and
//!    AuthorizationPolicies; a refused request reaches no handler and is still recorded.
//! 4. **Telemetry.** When the response body ends (or is dropped), one
//!    [`RequestRecord`](mesh_core::telemetry::RequestRecord) with `reporter=destination` goes
//!    to [`Telemetry::record`](crate::telemetry::Telemetry::record): duration to the end of
//!    the body, request and response body bytes, status, `grpc-status` from the trailers (or
//!    the headers of a trailers-only response), `DC` if the client went away before the end,
//!    the principals, and `connection_security_policy=mutual_tls` when the request carries a
//!    verified [`PeerIdentity`](mesh_core::identity::PeerIdentity).
//!
//! **Destination service.** The model has no Kubernetes Service objects selecting this
//! workload, so the destination service is derived the way Kubernetes deployments name
//! services: `<canonical service>.<namespace>.svc.<domain suffix>` (the canonical service is
//! the `service.istio.io/canonical-name` label, else `app`, else the workload name) on the
//! port the connection arrived at ([`LocalAddr`](super::LocalAddr)). Override it with
//! [`InboundLayer::destination_service`] when the service is named otherwise.

mod body;
mod connection;
mod future;
mod layer;
mod service;

pub use body::{InboundBody, RequestBody};
pub(crate) use connection::{Connection, own_principal};
pub use future::ResponseFuture;
pub use layer::{DEFAULT_CLUSTER_ID, InboundLayer};
pub use service::Inbound;
