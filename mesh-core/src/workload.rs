//! Who this process is: the workload whose point of view every snapshot is built from.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::Locality;

/// The workload linking mesh: its namespace, service account, labels and locality.
///
/// Istio builds each proxy's config from that proxy's point of view (short hosts resolve in its
/// namespace, policies select it by labels, `sourceLabels` matches on it); mesh does the same.
///
/// ```
/// use mesh_core::Workload;
/// let w = Workload::new("default", "frontend").labels([("app", "frontend"), ("version", "v1")]);
/// assert_eq!(w.service_account, "frontend");
/// assert_eq!(w.labels["version"], "v1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// Workload name (`destination_workload` in telemetry); defaults to the service account.
    pub name: String,
    /// Service account, the `sa` of its SPIFFE identity.
    pub service_account: String,
    /// Labels (`app`, `version`, …), matched by workload selectors.
    pub labels: BTreeMap<String, String>,
    /// Where it runs, for locality-aware balancing.
    pub locality: Locality,
}

impl Workload {
    /// A workload in `namespace` running as `service_account`.
    pub fn new(namespace: impl Into<String>, service_account: impl Into<String>) -> Self {
        let service_account = service_account.into();
        Self {
            namespace: namespace.into(),
            name: service_account.clone(),
            service_account,
            labels: BTreeMap::new(),
            locality: Locality::default(),
        }
    }

    /// Adds labels.
    pub fn labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.labels
            .extend(labels.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets the workload name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the locality.
    pub fn locality(mut self, locality: Locality) -> Self {
        self.locality = locality;
        self
    }
}

impl Default for Workload {
    /// `default/default`, no labels.
    fn default() -> Self {
        Self::new("default", "default")
    }
}

/// Mesh-wide settings Istio keeps in its MeshConfig.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MeshSettings {
    /// DNS suffix of services (`cluster.local`).
    pub domain_suffix: String,
    /// SPIFFE trust domain (`cluster.local`).
    pub trust_domain: String,
    /// Other trust domains treated as this one in authorization (MeshConfig
    /// `trustDomainAliases`, for a trust-domain migration).
    pub trust_domain_aliases: Vec<String>,
    /// Namespace whose policies apply mesh-wide (`istio-system`).
    pub root_namespace: String,
    /// Namespace of resources that do not name one (`default`).
    pub default_namespace: String,
    /// `exportTo` of VirtualServices that give none (MeshConfig
    /// `defaultVirtualServiceExportTo`); empty means `*`.
    pub default_virtual_service_export_to: Vec<String>,
    /// `exportTo` of DestinationRules that give none (`defaultDestinationRuleExportTo`); empty
    /// means `*`.
    pub default_destination_rule_export_to: Vec<String>,
    /// `exportTo` of ServiceEntries that give none (`defaultServiceExportTo`); empty means `*`.
    pub default_service_export_to: Vec<String>,
    /// What the client does with a request for a host no resource declares (MeshConfig
    /// `outboundTrafficPolicy.mode`).
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// A folder of credentials for DestinationRule `tls.credentialName`, one sub-folder per
    /// name holding istiod's Secret keys as files (`<dir>/<name>/tls.crt`, `tls.key`, `ca.crt`,
    /// or `cert`, `key`, `cacert`); read when a snapshot is built. Secrets in the config files
    /// come first.
    pub credentials_dir: Option<std::path::PathBuf>,
}

/// Istio's `outboundTrafficPolicy.mode`: requests for hosts outside the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicy {
    /// Pass through: connect in plaintext to the host and port the request names, resolved by
    /// DNS (Istio's `PassthroughCluster`). Istio's default.
    #[default]
    AllowAny,
    /// Refuse with 502 (Istio's `BlackHoleCluster`).
    RegistryOnly,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            domain_suffix: "cluster.local".into(),
            trust_domain: "cluster.local".into(),
            trust_domain_aliases: Vec::new(),
            root_namespace: "istio-system".into(),
            default_namespace: "default".into(),
            default_virtual_service_export_to: Vec::new(),
            default_destination_rule_export_to: Vec::new(),
            default_service_export_to: Vec::new(),
            outbound_traffic_policy: OutboundTrafficPolicy::AllowAny,
            credentials_dir: None,
        }
    }
}

/// The point of view a snapshot is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BuildContext {
    /// This workload.
    pub workload: Workload,
    /// Mesh-wide settings.
    pub settings: MeshSettings,
}
