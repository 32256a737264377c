//! What an attempt's outcome means for retries: Envoy's `retry_on` conditions.

use http::{HeaderMap, StatusCode};
use mesh_core::model::{RetryOn, RetryPolicy};

/// How one attempt ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// A response arrived with this status, and, for gRPC, this `grpc-status` from the headers
    /// (a trailers-only response); streaming statuses in trailers arrive too late to retry.
    Response {
        status: StatusCode,
        grpc: Option<u16>,
    },
    /// The connection could not be made.
    ConnectFailure,
    /// The stream was refused before processing.
    RefusedStream,
    /// The stream or connection was reset after sending.
    Reset,
    /// The attempt's own timeout passed.
    PerTryTimeout,
}

impl Attempt {
    /// Reads a response's retry-relevant parts.
    pub(crate) fn from_response(status: StatusCode, headers: &HeaderMap) -> Self {
        // A `HeaderName`, not a `&str`: a string name is parsed on every lookup.
        let grpc = headers
            .get(crate::telemetry::GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Attempt::Response { status, grpc }
    }
}

/// Whether `policy` retries an attempt that ended like this.
pub(crate) fn should_retry(policy: &RetryPolicy, attempt: Attempt) -> bool {
    let on = &policy.retry_on;
    match attempt {
        Attempt::ConnectFailure => {
            on.connect_failure || on.server_error || on.gateway_error || on.reset
        }
        Attempt::RefusedStream => on.refused_stream || on.reset || on.server_error,
        Attempt::Reset => on.reset || on.server_error || on.gateway_error,
        // Envoy retries per-try timeouts under 5xx and gateway-error.
        Attempt::PerTryTimeout => on.server_error || on.gateway_error,
        Attempt::Response { status, grpc } => {
            let code = status.as_u16();
            (on.server_error && status.is_server_error())
                || (on.gateway_error && matches!(code, 502..=504))
                || (on.retriable_4xx && code == 409)
                || (on.retriable_status_codes && policy.retriable_status_codes.contains(&code))
                || grpc.is_some_and(|g| {
                    (on.grpc_cancelled && g == 1)
                        || (on.grpc_deadline_exceeded && g == 4)
                        || (on.grpc_resource_exhausted && g == 8)
                        || (on.grpc_internal && g == 13)
                        || (on.grpc_unavailable && g == 14)
                })
        }
    }
}

/// Whether `policy` may retry an attempt after its request went out: on a response, a reset, a
/// refused stream or a per-try timeout (every condition of [`should_retry`] but a connection
/// failure, whose request never left and comes back whole). Only then must the head be copied
/// before sending.
pub(crate) fn may_retry_after_sending(policy: &RetryPolicy) -> bool {
    let RetryOn {
        server_error,
        gateway_error,
        reset,
        connect_failure: _,
        refused_stream,
        retriable_4xx,
        retriable_status_codes,
        grpc_cancelled,
        grpc_deadline_exceeded,
        grpc_internal,
        grpc_resource_exhausted,
        grpc_unavailable,
    } = policy.retry_on;
    policy.attempts > 0
        && (server_error
            || gateway_error
            || reset
            || refused_stream
            || retriable_4xx
            || retriable_status_codes
            || grpc_cancelled
            || grpc_deadline_exceeded
            || grpc_internal
            || grpc_resource_exhausted
            || grpc_unavailable)
}

/// Whether the outcome counts as a failure of the endpoint for outlier detection, and whether
/// it is a gateway error (502/503/504 or a local connect failure).
pub(crate) fn endpoint_failure(attempt: Attempt) -> Option<bool> {
    match attempt {
        Attempt::Response { status, .. } if status.is_server_error() => {
            Some(matches!(status.as_u16(), 502..=504))
        }
        Attempt::Response { .. } => None,
        Attempt::ConnectFailure
        | Attempt::Reset
        | Attempt::RefusedStream
        | Attempt::PerTryTimeout => Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::model::RetryOn;
    use std::time::Duration;

    fn policy(on: RetryOn, codes: Vec<u16>) -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            retry_on: on,
            retriable_status_codes: codes,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
        }
    }

    fn resp(code: u16, grpc: Option<u16>) -> Attempt {
        Attempt::Response {
            status: StatusCode::from_u16(code).unwrap(),
            grpc,
        }
    }

    #[test]
    fn envoy_retry_on_semantics() {
        let five = policy(
            RetryOn {
                server_error: true,
                ..Default::default()
            },
            vec![],
        );
        assert!(should_retry(&five, resp(500, None)));
        assert!(should_retry(&five, Attempt::Reset));
        assert!(!should_retry(&five, resp(404, None)));
        assert!(
            !should_retry(&five, resp(200, Some(14))),
            "gRPC codes need their own conditions"
        );

        let gateway = policy(
            RetryOn {
                gateway_error: true,
                ..Default::default()
            },
            vec![],
        );
        assert!(should_retry(&gateway, resp(503, None)));
        assert!(!should_retry(&gateway, resp(500, None)));

        let istio_default = policy(
            RetryOn {
                connect_failure: true,
                refused_stream: true,
                grpc_unavailable: true,
                grpc_cancelled: true,
                retriable_status_codes: true,
                ..Default::default()
            },
            vec![503],
        );
        assert!(should_retry(&istio_default, Attempt::ConnectFailure));
        assert!(should_retry(&istio_default, Attempt::RefusedStream));
        assert!(should_retry(&istio_default, resp(503, None)));
        assert!(should_retry(&istio_default, resp(200, Some(14))));
        assert!(should_retry(&istio_default, resp(200, Some(1))));
        assert!(!should_retry(&istio_default, resp(500, None)));
        assert!(!should_retry(&istio_default, Attempt::Reset));
        assert!(!should_retry(&istio_default, resp(200, Some(13))));
        assert!(
            may_retry_after_sending(&istio_default),
            "503, unavailable: after sending"
        );
        let connect_only = policy(
            RetryOn {
                connect_failure: true,
                ..Default::default()
            },
            vec![],
        );
        assert!(!may_retry_after_sending(&connect_only));
        assert!(may_retry_after_sending(&five));
        assert!(!may_retry_after_sending(&RetryPolicy {
            attempts: 0,
            ..five.clone()
        }));

        let four = policy(
            RetryOn {
                retriable_4xx: true,
                ..Default::default()
            },
            vec![],
        );
        assert!(should_retry(&four, resp(409, None)));
        assert!(!should_retry(&four, resp(400, None)));
    }

    #[test]
    fn outlier_failures() {
        assert_eq!(endpoint_failure(resp(503, None)), Some(true));
        assert_eq!(endpoint_failure(resp(500, None)), Some(false));
        assert_eq!(endpoint_failure(resp(200, Some(14))), None);
        assert_eq!(endpoint_failure(Attempt::ConnectFailure), Some(true));
    }
}
