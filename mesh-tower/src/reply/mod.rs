//! Answers mesh gives itself, mapped to HTTP or gRPC in one place.
//!
//! When mesh ends a request without the application or upstream answering (no route, no healthy
//! endpoint, overflow, timeout, fault abort, authorization denied) it answers as Envoy does, so
//! dashboards and clients read it the same way: an HTTP status and a short body, or, for gRPC,
//! HTTP 200 with `grpc-status` and `grpc-message` in a trailers-only response.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use mesh_core::telemetry::ResponseFlag;

/// gRPC status codes mesh answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum GrpcCode {
    /// 1
    Cancelled = 1,
    /// 2
    Unknown = 2,
    /// 4
    DeadlineExceeded = 4,
    /// 7
    PermissionDenied = 7,
    /// 8
    ResourceExhausted = 8,
    /// 12
    Unimplemented = 12,
    /// 13
    Internal = 13,
    /// 14
    Unavailable = 14,
    /// 16
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The gRPC spec's mapping of an HTTP status to a gRPC code, for when an HTTP status must be
    /// told to a gRPC client.
    pub fn from_http(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502 | 503 | 504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        }
    }
}

/// A reply mesh makes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status for HTTP clients.
    pub status: StatusCode,
    /// gRPC status code for gRPC clients (a number, since fault injection may name any code).
    pub grpc_status: u16,
    /// Short human text.
    pub message: String,
    /// The response flag recorded in telemetry.
    pub flag: Option<ResponseFlag>,
    /// Envoy-style response code details (`rbac_access_denied`, `no_route`, …).
    pub details: &'static str,
}

/// Response extension on every reply mesh made itself, with its Envoy-style details, so access
/// logs and metrics can tell it from the application's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseDetails(pub &'static str);

impl LocalReply {
    /// A reply for `flag` with the status DESIGN.md's table gives it.
    pub fn for_flag(flag: ResponseFlag, message: impl Into<String>) -> Self {
        use GrpcCode::{Cancelled, DeadlineExceeded, Unavailable, Unimplemented};
        let (status, grpc, details) = match flag {
            ResponseFlag::NoRoute => (StatusCode::NOT_FOUND, Unimplemented, "route_not_found"),
            ResponseFlag::UpstreamRequestTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                DeadlineExceeded,
                "upstream_response_timeout",
            ),
            ResponseFlag::DownstreamConnectionTermination => (
                StatusCode::BAD_REQUEST,
                Cancelled,
                "downstream_remote_disconnect",
            ),
            ResponseFlag::NoHealthyUpstream => (
                StatusCode::SERVICE_UNAVAILABLE,
                Unavailable,
                "no_healthy_upstream",
            ),
            ResponseFlag::UpstreamOverflow => {
                (StatusCode::SERVICE_UNAVAILABLE, Unavailable, "overflow")
            }
            ResponseFlag::FaultInjected | ResponseFlag::DelayInjected => (
                StatusCode::SERVICE_UNAVAILABLE,
                Unavailable,
                "fault_filter_abort",
            ),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                Unavailable,
                "upstream_reset_before_response_started",
            ),
        };
        Self {
            status,
            grpc_status: grpc as u16,
            message: message.into(),
            flag: Some(flag),
            details,
        }
    }

    /// A fault-injection abort with the configured status: an HTTP status (told to gRPC clients
    /// through the gRPC spec's mapping) or a gRPC code.
    pub fn fault_abort(http: Option<StatusCode>, grpc: Option<u16>) -> Self {
        let status = http.unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Self {
            status,
            grpc_status: grpc.unwrap_or(GrpcCode::from_http(status) as u16),
            message: "fault filter abort".into(),
            flag: Some(ResponseFlag::FaultInjected),
            details: "fault_filter_abort",
        }
    }

    /// Authorization denied: 403 / PERMISSION_DENIED, with the body of Envoy's RBAC filter.
    pub fn denied() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            grpc_status: GrpcCode::PermissionDenied as u16,
            message: "RBAC: access denied".into(),
            flag: None,
            details: "rbac_access_denied",
        }
    }

    /// A request path that cannot be normalised: 400 / INTERNAL (what gRPC answers for a
    /// malformed request).
    pub fn invalid_path() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            grpc_status: GrpcCode::Internal as u16,
            message: "Bad Request: invalid request path".into(),
            flag: None,
            details: "invalid_path",
        }
    }

    /// The HTTP or gRPC response, as the request's protocol asks.
    pub fn into_response<B: From<Bytes>>(self, grpc: bool) -> Response<B> {
        self.into_response_with(grpc, B::from)
    }

    /// The HTTP or gRPC response, with the body made by `body` from the reply's bytes.
    pub fn into_response_with<B>(self, grpc: bool, body: impl FnOnce(Bytes) -> B) -> Response<B> {
        let mut response = if grpc {
            let mut r = Response::new(body(Bytes::new()));
            let headers = r.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from(self.grpc_status));
            if let Ok(v) = HeaderValue::from_str(&percent_encode(&self.message)) {
                headers.insert("grpc-message", v);
            }
            r
        } else {
            let mut r = Response::new(body(Bytes::from(self.message)));
            *r.status_mut() = self.status;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            r
        };
        if let Some(flag) = self.flag {
            response.extensions_mut().insert(flag);
        }
        response
            .extensions_mut()
            .insert(ResponseDetails(self.details));
        response
    }
}

/// Whether a request is gRPC (`content-type: application/grpc…`).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except `%` stays as is.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_replies_are_trailers_only() {
        let r: Response<Bytes> =
            LocalReply::for_flag(ResponseFlag::NoHealthyUpstream, "no healthy upstream")
                .into_response(true);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(
            r.extensions().get::<ResponseFlag>(),
            Some(&ResponseFlag::NoHealthyUpstream)
        );
        let r: Response<Bytes> =
            LocalReply::for_flag(ResponseFlag::NoRoute, "no route").into_response(false);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.body(), "no route");
        let r: Response<Bytes> =
            LocalReply::for_flag(ResponseFlag::UpstreamRequestTimeout, "timeout 100%")
                .into_response(true);
        assert_eq!(r.headers()["grpc-status"], "4");
        assert_eq!(r.headers()["grpc-message"], "timeout 100%25");
    }
}
