//! Sidecar.

use serde::Deserialize;

use super::super::decode::NotImplemented;
use super::LabelSelector;
use super::service_entry::ServicePort;

/// `spec` of a Sidecar.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SidecarSpec {
    pub(crate) workload_selector: Option<LabelSelector>,
    #[serde(default)]
    pub(crate) ingress: Vec<Option<IngressListenerSpec>>,
    pub(crate) egress: NotImplemented,
    pub(crate) outbound_traffic_policy: NotImplemented,
    pub(crate) inbound_connection_pool: NotImplemented,
}

/// `ingress[]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IngressListenerSpec {
    /// Istio's `SidecarPort`: the fields of a ServiceEntry port.
    pub(crate) port: Option<ServicePort>,
    pub(crate) bind: Option<String>,
    pub(crate) capture_mode: Option<CaptureModeSetting>,
    pub(crate) default_endpoint: Option<String>,
    pub(crate) tls: NotImplemented,
    pub(crate) connection_pool: NotImplemented,
}

/// `captureMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum CaptureModeSetting {
    Default,
    Iptables,
    None,
}
