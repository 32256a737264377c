//! PeerAuthentication.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::WorkloadSelector;

/// `spec` of a PeerAuthentication.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PeerAuthenticationSpec {
    pub(crate) selector: Option<WorkloadSelector>,
    pub(crate) mtls: Option<MutualTls>,
    pub(crate) port_level_mtls: Option<BTreeMap<String, MutualTls>>,
}

/// `mtls`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct MutualTls {
    pub(crate) mode: Option<MtlsModeSetting>,
}

/// `mtls.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum MtlsModeSetting {
    Unset,
    Disable,
    Permissive,
    Strict,
}
