//! Serde types of the Istio resources mesh reads, field for field as Istio's API spells them
//! (camelCase). Every Istio field is declared: the ones mesh implements with their types, the
//! others as [`NotImplemented`](super::decode::NotImplemented) so the translators can warn about
//! them. A field not declared here is not Istio's, and is refused.

mod authorization_policy;
mod destination_rule;
mod peer_authentication;
mod service_entry;
mod sidecar;
mod virtual_service;

use std::collections::BTreeMap;

use serde::Deserialize;

pub(crate) use authorization_policy::*;
pub(crate) use destination_rule::*;
pub(crate) use peer_authentication::*;
pub(crate) use service_entry::*;
pub(crate) use sidecar::*;
pub(crate) use virtual_service::*;

/// `selector` / `workloadSelector`: labels a workload must carry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkloadSelector {
    #[serde(default)]
    pub(crate) match_labels: BTreeMap<String, String>,
}

/// A workload selector under the name `labels` (ServiceEntry's `workloadSelector`).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct LabelSelector {
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
}

/// `{ number: 9080 }`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct PortSelector {
    pub(crate) number: Option<u32>,
}

/// Whether every label of `selector` is on `labels`.
pub(crate) fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
