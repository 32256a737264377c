//! One finished request, as plain facts: what the client and the server know when a request
//! ends. The metric labels ([`request_labels`](super::request_labels)), the access log and the
//! service graph are all computed from it, so every consumer sees the same request.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{RequestDetails, ResponseFlag};
use crate::Workload;
use crate::model::{ClusterName, ServiceKey};

/// Which side reported a request (Istio's `reporter` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reporter {
    /// The client side (`MeshClient`): `reporter="source"`.
    Source,
    /// The server side (`serve`): `reporter="destination"`.
    Destination,
}

impl Reporter {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

impl fmt::Display for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request protocol (Istio's `request_protocol` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestProtocol {
    /// HTTP/1.1 or HTTP/2 that is not gRPC.
    Http,
    /// gRPC (`content-type: application/grpc…`).
    Grpc,
}

impl RequestProtocol {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
        }
    }
}

/// Whether the connection was mutual TLS (Istio's `connection_security_policy` label).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityPolicy {
    /// Mutual TLS with a verified peer: `mutual_tls`.
    MutualTls,
    /// Plaintext: `none`.
    None,
    /// Not known (Istio's source reporter always says `unknown`).
    #[default]
    Unknown,
}

impl SecurityPolicy {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityPolicy::MutualTls => "mutual_tls",
            SecurityPolicy::None => "none",
            SecurityPolicy::Unknown => "unknown",
        }
    }
}

/// A workload as telemetry names it. Every field is optional: a fact not known is reported as
/// `unknown`. Build it from trusted sources only: this process's [`Workload`] config
/// ([`PeerWorkload::from_workload`]) or a peer's validated metadata
/// ([`PeerMetadata::workload`](super::PeerMetadata::workload)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct PeerWorkload {
    /// Workload name (`source_workload` / `destination_workload`).
    pub name: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// The `app` label.
    pub app: Option<String>,
    /// The `version` label.
    pub version: Option<String>,
    /// Istio's canonical service (`service.istio.io/canonical-name`, else `app`, else name).
    pub canonical_service: Option<String>,
    /// Istio's canonical revision (`service.istio.io/canonical-revision`, else `version`, else
    /// `latest`).
    pub canonical_revision: Option<String>,
    /// The cluster (Istio's `CLUSTER_ID`) it runs in.
    pub cluster: Option<String>,
}

/// Label holding Istio's canonical service name.
pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";
/// Label holding Istio's canonical revision.
pub const CANONICAL_REVISION_LABEL: &str = "service.istio.io/canonical-revision";

impl PeerWorkload {
    /// This process's workload, from config, running in `cluster_id` (Istio's default is
    /// `Kubernetes`).
    pub fn from_workload(workload: &Workload, cluster_id: &str) -> Self {
        Self::from_parts(
            &workload.name,
            &workload.namespace,
            &workload.labels,
            Some(cluster_id),
        )
    }

    pub(super) fn from_parts(
        name: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        cluster: Option<&str>,
    ) -> Self {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let label = |k: &str| labels.get(k).and_then(|v| non_empty(v));
        let app = label("app").or_else(|| label("app.kubernetes.io/name"));
        let version = label("version").or_else(|| label("app.kubernetes.io/version"));
        let canonical_service = label(CANONICAL_NAME_LABEL)
            .or_else(|| app.clone())
            .or_else(|| non_empty(name));
        let canonical_revision = label(CANONICAL_REVISION_LABEL)
            .or_else(|| version.clone())
            .or_else(|| Some("latest".to_owned()));
        Self {
            name: non_empty(name),
            namespace: non_empty(namespace),
            app,
            version,
            canonical_service,
            canonical_revision,
            cluster: cluster.and_then(non_empty),
        }
    }
}

/// Everything known about one finished request. Plain data: the client and the server fill it
/// in, then hand it to the telemetry recorder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRecord {
    /// Which side reports it.
    pub reporter: Reporter,
    /// When the request's headers arrived (server) or were sent (client).
    pub start: SystemTime,
    /// From start until the response ended (last body byte, or the error).
    pub duration: Duration,
    /// HTTP method.
    pub method: String,
    /// The request path as received, query included (access log only, never a label).
    pub path: String,
    /// The `:authority` / `Host` as received (access log only, never a label).
    pub authority: String,
    /// HTTP or gRPC.
    pub protocol: RequestProtocol,
    /// The HTTP status sent, or `None` when no response was sent (reported as `0`).
    pub response_code: Option<u16>,
    /// The gRPC status (`grpc-status` trailer or trailers-only header), for gRPC requests.
    pub grpc_status: Option<i32>,
    /// Why the request ended as it did.
    pub response_flags: Vec<ResponseFlag>,
    /// Request body bytes.
    pub request_bytes: u64,
    /// Response body bytes.
    pub response_bytes: u64,
    /// The calling workload.
    pub source: PeerWorkload,
    /// The caller's verified principal (`spiffe://…`), if mutual TLS.
    pub source_principal: Option<String>,
    /// The called workload.
    pub destination: PeerWorkload,
    /// The callee's verified principal, if mutual TLS.
    pub destination_principal: Option<String>,
    /// The service called, from the chosen cluster (never from the raw authority).
    pub destination_service: Option<ServiceKey>,
    /// The upstream cluster (client side).
    pub upstream_cluster: Option<ClusterName>,
    /// The upstream endpoint address (client side) or the peer's address (server side).
    pub peer_address: Option<String>,
    /// Mutual TLS or not.
    pub security: SecurityPolicy,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// Trace id (32 hex digits), if traced.
    pub trace_id: Option<String>,
    /// gRPC message counts and the access log's other facts.
    pub details: RequestDetails,
}

impl RequestRecord {
    /// A record with the given reporter and start, and nothing else known yet.
    pub fn new(reporter: Reporter, start: SystemTime) -> Self {
        Self {
            reporter,
            start,
            duration: Duration::ZERO,
            method: String::new(),
            path: String::new(),
            authority: String::new(),
            protocol: RequestProtocol::Http,
            response_code: None,
            grpc_status: None,
            response_flags: Vec::new(),
            request_bytes: 0,
            response_bytes: 0,
            source: PeerWorkload::default(),
            source_principal: None,
            destination: PeerWorkload::default(),
            destination_principal: None,
            destination_service: None,
            upstream_cluster: None,
            peer_address: None,
            security: SecurityPolicy::Unknown,
            request_id: None,
            trace_id: None,
            details: RequestDetails::default(),
        }
    }

    /// Whether the request failed: a 5xx, no response at all, or a gRPC status other than OK
    /// and the client-side codes (CANCELLED, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
    /// PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE, UNAUTHENTICATED).
    pub fn is_error(&self) -> bool {
        match self.response_code {
            None => return true,
            Some(c) if c >= 500 => return true,
            Some(_) => {}
        }
        match (self.protocol, self.grpc_status) {
            (RequestProtocol::Grpc, Some(s)) => matches!(s, 2 | 4 | 8 | 10 | 12 | 13 | 14 | 15),
            _ => false,
        }
    }
}
