//! Authorization for inbound requests: Istio's AuthorizationPolicy, enforced before the
//! application sees the request.
//!
//! For each request, [`Authz`]:
//!
//! 1. normalises the request path ([`mesh_core::authz::normalize_path`], Istio's
//!    `DECODE_AND_MERGE_SLASHES`) and answers 400 to a malformed one;
//! 2. rewrites the request URI to the normalised path, so the application routes on exactly the
//!    path the policy judged (otherwise `/public/..%2Fadmin` could pass a policy as one path and
//!    reach the handler as another);
//! 3. reads the current policies with one atomic load of the snapshot (no lock), and evaluates
//!    them ([`mesh_core::authz::evaluate`]) with the peer identity ([`PeerInfo`]), addresses
//!    ([`RemoteAddr`], [`LocalAddr`]), authority, method, path and headers;
//! 4. on deny, answers like Envoy's RBAC filter without calling the application: HTTP 403 with
//!    body `RBAC: access denied`, or for gRPC an HTTP 200 trailers-only response with
//!    `grpc-status: 7` (PERMISSION_DENIED); the decision is logged with `tracing`.
//!
//! AUDIT matches are logged and recorded on the request as an [`Audit`] extension.
//!
//! [`PeerInfo`]: super::PeerInfo
//! [`RemoteAddr`]: super::RemoteAddr
//! [`LocalAddr`]: super::LocalAddr

mod body;
mod future;
mod layer;
mod reject;
mod service;

pub use body::AuthzBody;
pub use future::ResponseFuture;
pub use layer::AuthzLayer;
pub use service::{Audit, Authz};
