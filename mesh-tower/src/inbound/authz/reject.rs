//! The local responses: one place that maps a refusal to HTTP and gRPC.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use super::body::AuthzBody;

/// Why a request is answered locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The request path cannot be normalised: 400.
    BadPath,
    /// A policy denied it: 403, or gRPC PERMISSION_DENIED.
    Denied,
}

/// gRPC's PERMISSION_DENIED.
const GRPC_PERMISSION_DENIED: &str = "7";
/// gRPC's INTERNAL, for a request gRPC itself would refuse as malformed.
const GRPC_INTERNAL: &str = "13";
/// Envoy's RBAC filter body, so clients and dashboards read a mesh denial the same way.
const RBAC_DENIED: &str = "RBAC: access denied";
const BAD_PATH: &str = "Bad Request: invalid request path";

/// Whether the request is gRPC (`content-type: application/grpc`, `application/grpc+proto`, …).
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The response for `refusal`; gRPC requests get a trailers-only response (HTTP 200 with
/// `grpc-status` in the headers and no body), as the gRPC HTTP/2 protocol specifies.
pub(super) fn respond<B>(refusal: Refusal, grpc: bool) -> Response<AuthzBody<B>> {
    let (status, grpc_status, message) = match refusal {
        Refusal::BadPath => (StatusCode::BAD_REQUEST, GRPC_INTERNAL, BAD_PATH),
        Refusal::Denied => (StatusCode::FORBIDDEN, GRPC_PERMISSION_DENIED, RBAC_DENIED),
    };
    let mut response = if grpc {
        let mut r = Response::new(AuthzBody::local(""));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from_static(grpc_status));
        h.insert("grpc-message", HeaderValue::from_static(message));
        r
    } else {
        let mut r = Response::new(AuthzBody::local(message));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r
    };
    response.extensions_mut().insert(refusal_marker(refusal));
    response
}

/// Marks a locally answered response, so an access log can tell it from the application's.
fn refusal_marker(refusal: Refusal) -> LocalReply {
    LocalReply(match refusal {
        Refusal::BadPath => "invalid_path",
        Refusal::Denied => "rbac_access_denied",
    })
}

/// Response extension: the response was written by the authorization layer, not the
/// application; holds Envoy-style details (`rbac_access_denied`, `invalid_path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalReply(pub &'static str);
