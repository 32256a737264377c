//! ServiceEntry and WorkloadEntry.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::LabelSelector;

/// `spec` of a ServiceEntry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceEntrySpec {
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    #[serde(default)]
    pub(crate) addresses: Vec<String>,
    #[serde(default)]
    pub(crate) ports: Vec<ServicePort>,
    pub(crate) location: Option<SeLocation>,
    pub(crate) resolution: Option<SeResolution>,
    #[serde(default)]
    pub(crate) endpoints: Vec<WorkloadEntrySpec>,
    pub(crate) workload_selector: Option<LabelSelector>,
    #[serde(default)]
    pub(crate) subject_alt_names: Vec<String>,
    #[serde(default)]
    pub(crate) export_to: Vec<String>,
}

/// A service port.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServicePort {
    pub(crate) number: Option<u32>,
    pub(crate) protocol: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) target_port: Option<u32>,
}

/// `location`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum SeLocation {
    MeshExternal,
    MeshInternal,
}

/// `resolution`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum SeResolution {
    None,
    Static,
    Dns,
    DnsRoundRobin,
}

/// `spec` of a WorkloadEntry, also an inline ServiceEntry endpoint.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkloadEntrySpec {
    pub(crate) address: Option<String>,
    #[serde(default)]
    pub(crate) ports: BTreeMap<String, u32>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) network: Option<String>,
    pub(crate) locality: Option<String>,
    pub(crate) weight: Option<u32>,
    pub(crate) service_account: Option<String>,
}
