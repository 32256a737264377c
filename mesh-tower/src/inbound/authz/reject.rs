//! Refusals of the authorization layer, answered through [`crate::reply`], the one place that
//! maps mesh's own answers to HTTP and gRPC.

use bytes::Bytes;
use http::Response;

use super::body::AuthzBody;
use crate::reply::LocalReply;

/// Why a request is answered locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The request path cannot be normalised: 400.
    BadPath,
    /// A policy denied it: 403, or gRPC PERMISSION_DENIED.
    Denied,
}

/// The response for `refusal`: HTTP 400/403, or for gRPC a trailers-only PERMISSION_DENIED /
/// INTERNAL.
pub(super) fn respond<B>(refusal: Refusal, grpc: bool) -> Response<AuthzBody<B>> {
    let reply = match refusal {
        Refusal::BadPath => LocalReply::invalid_path(),
        Refusal::Denied => LocalReply::denied(),
    };
    reply.into_response_with(grpc, |bytes: Bytes| AuthzBody::local(bytes))
}
