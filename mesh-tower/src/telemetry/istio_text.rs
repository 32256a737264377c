//! Istio's default access log line: the `EnvoyTextLogFormat` istiod gives every sidecar when
//! `meshConfig.accessLogFile` is set and no format is (istio `pilot/pkg/model/telemetry_logging.go`):
//!
//! ```text
//! [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
//! %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
//! "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
//! %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
//! %REQUESTED_SERVER_NAME% %ROUTE_NAME%
//! ```
//!
//! (one line). A value not known is `-`, as Envoy prints it. Where mesh differs: the path is
//! logged without its query string (secrets in queries stay out of logs), and there is no
//! `x-envoy-upstream-service-time` (the server is in-process), no connection termination
//! details and no transport failure reason (`-`).
//!
//! The server's `UPSTREAM_CLUSTER_RAW` is Istio's inbound cluster, `inbound|<port>||`; its
//! `UPSTREAM_HOST` is `-` (the application is in the same process, not at an address).

use std::fmt::Write as _;

use mesh_core::telemetry::{Reporter, RequestRecord, ResponseFlag};

use super::access_log::{log_path, rfc3339};

/// Envoy's `%PROTOCOL%` for an HTTP version.
pub fn http_version_name(v: http::Version) -> Option<&'static str> {
    match v {
        http::Version::HTTP_09 => Some("HTTP/0.9"),
        http::Version::HTTP_10 => Some("HTTP/1.0"),
        http::Version::HTTP_11 => Some("HTTP/1.1"),
        http::Version::HTTP_2 => Some("HTTP/2"),
        http::Version::HTTP_3 => Some("HTTP/3"),
        _ => None,
    }
}

/// The request headers the access log prints, into `r.details`.
pub fn note_request_headers(r: &mut RequestRecord, headers: &http::HeaderMap) {
    let text = |name: http::header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    r.details.user_agent = text(http::header::USER_AGENT);
    r.details.forwarded_for = text(http::HeaderName::from_static("x-forwarded-for"));
}

/// `%RESPONSE_CODE_DETAILS%` of a response whose answering side did not say: from the response
/// flag, in Envoy's words (`envoy/stream_info/stream_info.h`, `ResponseCodeDetailValues`), or
/// `via_upstream` for an answer from the application.
pub fn response_code_details(r: &RequestRecord) -> &str {
    if let Some(d) = &r.details.response_code_details {
        return d;
    }
    match r.response_flags.last() {
        None if r.response_code.is_none() => "-",
        None | Some(ResponseFlag::DelayInjected) => "via_upstream",
        Some(ResponseFlag::NoRoute) => "route_not_found",
        Some(ResponseFlag::NoHealthyUpstream) => "no_healthy_upstream",
        Some(ResponseFlag::UpstreamOverflow) => "upstream_reset_before_response_started{overflow}",
        Some(ResponseFlag::UpstreamRequestTimeout) => "response_timeout",
        Some(
            ResponseFlag::UpstreamConnectionFailure | ResponseFlag::UpstreamRetryLimitExceeded,
        ) => "upstream_reset_before_response_started{connection_failure}",
        Some(ResponseFlag::UpstreamConnectionTermination) => {
            "upstream_reset_before_response_started{connection_termination}"
        }
        Some(ResponseFlag::UpstreamRemoteReset) => {
            "upstream_reset_before_response_started{remote_reset}"
        }
        Some(ResponseFlag::FaultInjected) => "fault_filter_abort",
        Some(ResponseFlag::DownstreamConnectionTermination) => "downstream_remote_disconnect",
    }
}

/// The response flags as Envoy prints them: `-`, or codes joined by commas.
pub fn flags_text(r: &RequestRecord) -> String {
    if r.response_flags.is_empty() {
        return "-".to_owned();
    }
    r.response_flags
        .iter()
        .map(|f| f.code())
        .collect::<Vec<_>>()
        .join(",")
}

/// The request in Istio's default text format (no trailing newline).
pub fn istio_text_line(r: &RequestRecord) -> String {
    let dash = |v: Option<&str>| match v {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "-".to_owned(),
    };
    let d = &r.details;
    let server = r.reporter == Reporter::Destination;
    let (upstream_host, cluster, upstream_local, downstream_local, downstream_remote) = if server {
        let port = r.destination_service.as_ref().map_or(0, |s| s.port);
        (
            None,
            Some(format!("inbound|{port}||")),
            None,
            d.local_address.as_deref(),
            r.peer_address.as_deref(),
        )
    } else {
        (
            r.peer_address.as_deref(),
            r.upstream_cluster.as_ref().map(ToString::to_string),
            d.local_address.as_deref(),
            None,
            None,
        )
    };
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "[{}] \"{} {} {}\" {} {} {} - \"-\" {} {} {} - \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} - {}",
        rfc3339(r.start),
        dash(Some(&r.method)),
        dash(Some(&log_path(&r.path))),
        dash(d.http_version),
        r.response_code.unwrap_or(0),
        flags_text(r),
        response_code_details(r),
        r.request_bytes,
        r.response_bytes,
        r.duration.as_millis(),
        dash(d.forwarded_for.as_deref()),
        dash(d.user_agent.as_deref()),
        dash(r.request_id.as_deref()),
        dash(Some(&r.authority)),
        dash(upstream_host),
        dash(cluster.as_deref()),
        dash(upstream_local),
        dash(downstream_local),
        dash(downstream_remote),
        // `%REQUESTED_SERVER_NAME%` is `-` above: the SNI is not part of the record.
        dash(d.route_name.as_deref().or(server.then_some("default"))),
    );
    out
}
