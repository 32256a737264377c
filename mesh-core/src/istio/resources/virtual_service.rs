//! VirtualService.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::PortSelector;
use crate::istio::decode::NotImplemented;

/// `spec` of a VirtualService.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirtualServiceSpec {
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    #[serde(default)]
    pub(crate) gateways: Vec<String>,
    #[serde(default)]
    pub(crate) http: Vec<HttpRoute>,
    pub(crate) tls: NotImplemented,
    pub(crate) tcp: NotImplemented,
    #[serde(default)]
    pub(crate) export_to: Vec<String>,
}

/// `http[]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRoute {
    pub(crate) name: Option<String>,
    #[serde(rename = "match")]
    pub(crate) matches: Option<Vec<HttpMatchRequest>>,
    pub(crate) route: Option<Vec<HttpRouteDestination>>,
    pub(crate) redirect: Option<HttpRedirect>,
    pub(crate) direct_response: Option<HttpDirectResponse>,
    pub(crate) delegate: Option<Delegate>,
    pub(crate) rewrite: Option<HttpRewrite>,
    pub(crate) timeout: Option<String>,
    pub(crate) retries: Option<HttpRetry>,
    pub(crate) fault: Option<HttpFaultInjection>,
    pub(crate) mirror: Option<Destination>,
    pub(crate) mirror_percentage: Option<Percentage>,
    pub(crate) mirror_percent: Option<u32>,
    pub(crate) mirrors: Option<Vec<HttpMirrorPolicy>>,
    pub(crate) cors_policy: NotImplemented,
    pub(crate) headers: Option<Headers>,
}

/// `http[].delegate`: the VirtualService whose routes replace this entry.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Delegate {
    pub(crate) name: Option<String>,
    pub(crate) namespace: Option<String>,
}

/// Istio's `StringMatch`: one of exact, prefix, regex.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct StringMatchSpec {
    pub(crate) exact: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) regex: Option<String>,
}

/// `match[]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpMatchRequest {
    pub(crate) name: Option<String>,
    pub(crate) uri: Option<StringMatchSpec>,
    pub(crate) scheme: NotImplemented,
    pub(crate) method: Option<StringMatchSpec>,
    pub(crate) authority: Option<StringMatchSpec>,
    pub(crate) headers: Option<BTreeMap<String, StringMatchSpec>>,
    pub(crate) port: Option<u32>,
    pub(crate) source_labels: Option<BTreeMap<String, String>>,
    pub(crate) gateways: Option<Vec<String>>,
    pub(crate) query_params: Option<BTreeMap<String, StringMatchSpec>>,
    pub(crate) ignore_uri_case: Option<bool>,
    pub(crate) without_headers: Option<BTreeMap<String, StringMatchSpec>>,
    pub(crate) source_namespace: Option<String>,
    pub(crate) stat_prefix: NotImplemented,
}

/// `destination`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Destination {
    pub(crate) host: Option<String>,
    pub(crate) subset: Option<String>,
    pub(crate) port: Option<PortSelector>,
}

/// `route[]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct HttpRouteDestination {
    pub(crate) destination: Option<Destination>,
    pub(crate) weight: Option<i64>,
    pub(crate) headers: Option<Headers>,
}

/// `headers`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Headers {
    pub(crate) request: Option<HeaderOperations>,
    pub(crate) response: Option<HeaderOperations>,
}

/// `headers.request` / `headers.response`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct HeaderOperations {
    #[serde(default)]
    pub(crate) set: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) add: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) remove: Vec<String>,
}

/// `redirect`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRedirect {
    pub(crate) uri: Option<String>,
    pub(crate) authority: Option<String>,
    pub(crate) port: NotImplemented,
    pub(crate) derive_port: NotImplemented,
    pub(crate) scheme: NotImplemented,
    pub(crate) redirect_code: Option<u32>,
}

/// `directResponse`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct HttpDirectResponse {
    pub(crate) status: Option<u32>,
    pub(crate) body: Option<HttpBody>,
}

/// `directResponse.body`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct HttpBody {
    pub(crate) string: Option<String>,
    pub(crate) bytes: NotImplemented,
}

/// `rewrite`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRewrite {
    pub(crate) uri: Option<String>,
    pub(crate) authority: Option<String>,
    pub(crate) uri_regex_rewrite: NotImplemented,
}

/// `retries`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRetry {
    pub(crate) attempts: Option<i64>,
    pub(crate) per_try_timeout: Option<String>,
    pub(crate) retry_on: Option<String>,
    pub(crate) retry_remote_localities: NotImplemented,
    pub(crate) retry_ignore_previous_hosts: NotImplemented,
    pub(crate) backoff: Option<String>,
}

/// `fault`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct HttpFaultInjection {
    pub(crate) delay: Option<FaultDelaySpec>,
    pub(crate) abort: Option<FaultAbortSpec>,
}

/// `fault.delay`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FaultDelaySpec {
    pub(crate) fixed_delay: Option<String>,
    pub(crate) exponential_delay: NotImplemented,
    pub(crate) percentage: Option<Percentage>,
    pub(crate) percent: Option<i64>,
}

/// `fault.abort`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FaultAbortSpec {
    pub(crate) http_status: Option<i64>,
    pub(crate) grpc_status: Option<String>,
    pub(crate) http2_error: NotImplemented,
    pub(crate) percentage: Option<Percentage>,
}

/// `{ value: 10.0 }`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Percentage {
    pub(crate) value: Option<f64>,
}

/// `mirrors[]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct HttpMirrorPolicy {
    pub(crate) destination: Option<Destination>,
    pub(crate) percentage: Option<Percentage>,
}
