//! Retry policies (`http[].retries`) and Istio's default for routes without one.

use std::time::Duration;

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::super::parse_duration_at;
use crate::model::{RetryOn, RetryPolicy};

/// Istio's default retry policy for routes without `retries`: 2 attempts on connect failures,
/// refused streams, gRPC UNAVAILABLE and CANCELLED, and HTTP 503; backoff 25 ms to 250 ms.
pub(crate) fn default_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        per_try_timeout: None,
        retry_on: default_retry_on(),
        retriable_status_codes: vec![503],
        backoff_base: Duration::from_millis(25),
        backoff_max: Duration::from_millis(250),
    }
}

fn default_retry_on() -> RetryOn {
    RetryOn {
        connect_failure: true,
        refused_stream: true,
        grpc_unavailable: true,
        grpc_cancelled: true,
        retriable_status_codes: true,
        ..RetryOn::default()
    }
}

pub(super) fn retries(
    rt: &r::HttpRetry,
    f: &Field,
    report: &mut Reporter<'_>,
) -> Option<RetryPolicy> {
    report.unimplemented(&rt.retry_remote_localities, &f.key("retryRemoteLocalities"));
    report.unimplemented(
        &rt.retry_ignore_previous_hosts,
        &f.key("retryIgnorePreviousHosts"),
    );
    let mut policy = default_retry();
    let attempts = match rt.attempts {
        None => 2,
        Some(a) if a < 0 => {
            report.error(&f.key("attempts"), "attempts must not be negative");
            return None;
        }
        Some(a) => u32::try_from(a).unwrap_or(u32::MAX),
    };
    policy.attempts = attempts;
    if let Some(t) = &rt.per_try_timeout {
        let d = parse_duration_at(t, &f.key("perTryTimeout"), report);
        if d.is_some_and(|d| d < Duration::from_millis(1)) {
            report.error(&f.key("perTryTimeout"), "must be at least 1ms");
        }
        policy.per_try_timeout = d;
    }
    if let Some(b) = &rt.backoff
        && let Some(d) = parse_duration_at(b, &f.key("backoff"), report)
    {
        policy.backoff_base = d;
        policy.backoff_max = d.saturating_mul(10);
    }
    if let Some(on) = &rt.retry_on {
        let (retry_on, codes) = retry_on(on, &f.key("retryOn"), report);
        policy.retry_on = retry_on;
        policy.retriable_status_codes = codes;
    }
    (attempts > 0).then_some(policy)
}

fn retry_on(s: &str, field: &Field, report: &mut Reporter<'_>) -> (RetryOn, Vec<u16>) {
    let mut on = RetryOn::default();
    let mut codes = Vec::new();
    for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match token {
            "5xx" => on.server_error = true,
            "gateway-error" => on.gateway_error = true,
            "reset" => on.reset = true,
            "connect-failure" => on.connect_failure = true,
            "refused-stream" => on.refused_stream = true,
            "retriable-4xx" => on.retriable_4xx = true,
            "retriable-status-codes" => on.retriable_status_codes = true,
            "cancelled" => on.grpc_cancelled = true,
            "deadline-exceeded" => on.grpc_deadline_exceeded = true,
            "internal" => on.grpc_internal = true,
            "resource-exhausted" => on.grpc_resource_exhausted = true,
            "unavailable" => on.grpc_unavailable = true,
            "envoy-ratelimited"
            | "retriable-headers"
            | "reset-before-request"
            | "http3-post-connect-failure" => {
                report.warn(
                    field,
                    format!("retry condition {token:?} is not implemented; ignored"),
                );
            }
            code => match code.parse::<u16>() {
                Ok(c @ 100..=599) => {
                    on.retriable_status_codes = true;
                    if !codes.contains(&c) {
                        codes.push(c);
                    }
                }
                _ => report.error(field, format!("unknown retry condition {token:?}")),
            },
        }
    }
    (on, codes)
}
