//! The fields of Kubernetes `Service`, `EndpointSlice`, `Endpoints`, `Pod` and `Node` that istiod's
//! Kubernetes registry reads, as `kubectl get -o yaml` writes them. Everything else in those
//! objects (status conditions, managed fields, container specs, …) is Kubernetes' business and
//! is not reported.

use serde::Deserialize;
use serde_json::Value;

/// `v1 Service`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServiceObject {
    pub(crate) spec: ServiceSpec,
}

/// `Service.spec`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ServiceSpec {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(rename = "clusterIP")]
    pub(crate) cluster_ip: Option<String>,
    pub(crate) external_name: Option<String>,
    pub(crate) ports: Vec<ServicePort>,
    pub(crate) internal_traffic_policy: Option<String>,
}

/// `Service.spec.ports[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ServicePort {
    pub(crate) name: Option<String>,
    pub(crate) port: Option<i64>,
    pub(crate) protocol: Option<String>,
    pub(crate) app_protocol: Option<String>,
    /// A number or a container port name.
    pub(crate) target_port: Option<Value>,
}

/// `discovery.k8s.io/v1 EndpointSlice`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct EndpointSliceObject {
    pub(crate) address_type: Option<String>,
    pub(crate) endpoints: Vec<SliceEndpoint>,
    pub(crate) ports: Vec<EndpointPort>,
}

/// `EndpointSlice.endpoints[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SliceEndpoint {
    pub(crate) addresses: Vec<String>,
    pub(crate) conditions: Conditions,
    pub(crate) target_ref: Option<ObjectReference>,
}

/// `EndpointSlice.endpoints[].conditions`; an absent condition counts as true.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Conditions {
    pub(crate) ready: Option<bool>,
}

/// A port of an EndpointSlice or of an Endpoints subset.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EndpointPort {
    pub(crate) name: Option<String>,
    pub(crate) port: Option<i64>,
    pub(crate) protocol: Option<String>,
}

/// `targetRef` of an endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ObjectReference {
    pub(crate) kind: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) namespace: Option<String>,
}

/// `v1 Endpoints` (legacy).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EndpointsObject {
    pub(crate) subsets: Vec<EndpointSubset>,
}

/// `Endpoints.subsets[]`: `notReadyAddresses` are not read, as they receive no traffic.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EndpointSubset {
    pub(crate) addresses: Vec<EndpointAddress>,
    pub(crate) ports: Vec<EndpointPort>,
}

/// `Endpoints.subsets[].addresses[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct EndpointAddress {
    pub(crate) ip: Option<String>,
    pub(crate) target_ref: Option<ObjectReference>,
}

/// `v1 Pod`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PodObject {
    pub(crate) spec: PodSpec,
    pub(crate) status: PodStatus,
}

/// `Pod.status`: its addresses, to find the pod of an endpoint without `targetRef`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PodStatus {
    #[serde(rename = "podIP")]
    pub(crate) pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub(crate) pod_ips: Vec<PodIp>,
}

/// `Pod.status.podIPs[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PodIp {
    pub(crate) ip: Option<String>,
}

/// `Pod.spec`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PodSpec {
    pub(crate) service_account_name: Option<String>,
    /// The node the scheduler put the pod on, whose labels give its locality.
    pub(crate) node_name: Option<String>,
}

/// `v1 Node`: only its labels (in the metadata) are read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NodeObject {}
