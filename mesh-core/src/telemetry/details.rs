//! Facts of a request that are no metric label: gRPC message counts and what Istio's access
//! log prints besides the labels (user agent, `x-forwarded-for`, HTTP version, the local
//! address, the route, why the response is what it is).

use serde::Serialize;

/// The details of one request; every field is optional (`-` in the access log).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestDetails {
    /// gRPC messages sent by the client (`istio_request_messages_total`), gRPC requests only.
    pub request_messages: u64,
    /// gRPC messages sent by the server (`istio_response_messages_total`).
    pub response_messages: u64,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `x-forwarded-for`.
    pub forwarded_for: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`… (Envoy's `%PROTOCOL%`).
    pub http_version: Option<&'static str>,
    /// The local address of the connection: the server's listening address
    /// (`%DOWNSTREAM_LOCAL_ADDRESS%`) or the client's end of the upstream connection.
    pub local_address: Option<String>,
    /// The route's name (`%ROUTE_NAME%`).
    pub route_name: Option<String>,
    /// Why the response is what it is, in Envoy's words (`%RESPONSE_CODE_DETAILS%`:
    /// `via_upstream`, `rbac_access_denied_matched_policy[none]`, …) when the side that
    /// answered knows it; the access log derives it from the response flags otherwise.
    pub response_code_details: Option<String>,
}
