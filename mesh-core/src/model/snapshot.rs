//! The snapshot: everything a workload needs to route, balance, secure and observe its calls.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::authz::AuthzPolicy;
use super::cluster::{Cluster, ClusterName};
use super::route::RouteConfiguration;
use crate::config::Diagnostic;

/// Where a snapshot came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SnapshotSource {
    /// Nothing loaded yet.
    Empty,
    /// Istio resource files.
    Files {
        /// The configured paths (files or directories).
        paths: Vec<PathBuf>,
    },
    /// An xDS control plane.
    Xds {
        /// The server's address.
        server: String,
    },
    /// Built in code.
    Static,
}

/// Mutual-TLS mode of an inbound port (PeerAuthentication `mtls.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Mutual TLS required.
    Strict,
    /// Mutual TLS and plaintext both accepted.
    Permissive,
    /// Plaintext only.
    Disable,
}

/// The PeerAuthentication that applies to this workload, already resolved (the most specific
/// policy wins: workload selector, then namespace, then root namespace, then PERMISSIVE).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerAuthnPolicy {
    /// Mode for ports without their own.
    pub mode: MtlsMode,
    /// Per-port modes (`portLevelMtls`).
    pub port_modes: BTreeMap<u16, MtlsMode>,
    /// The policy this came from (`namespace/name`), if any.
    pub source: Option<String>,
}

impl PeerAuthnPolicy {
    /// The mode on `port`.
    pub fn mode_for(&self, port: u16) -> MtlsMode {
        self.port_modes.get(&port).copied().unwrap_or(self.mode)
    }
}

impl Default for PeerAuthnPolicy {
    /// Istio's default: PERMISSIVE.
    fn default() -> Self {
        Self {
            mode: MtlsMode::Permissive,
            port_modes: BTreeMap::new(),
            source: None,
        }
    }
}

/// Inbound policy for this workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InboundPolicy {
    /// Mutual TLS.
    pub peer_authentication: PeerAuthnPolicy,
    /// AuthorizationPolicies selecting this workload (CUSTOM excluded).
    pub authorization: Vec<AuthzPolicy>,
    /// Ports whose policies differ from `authorization`: an xDS control plane sends one
    /// inbound listener per port, each with its own RBAC filters. Empty for files, where
    /// AuthorizationPolicies select workloads, not ports.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub port_authorization: BTreeMap<u16, Vec<AuthzPolicy>>,
    /// The inbound ports a proxy opens for this workload (the `Sidecar` resource's `ingress`
    /// listeners), in port order; empty when no Sidecar declares any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<super::ingress::IngressListener>,
}

impl InboundPolicy {
    /// The policies that judge a request to `port` (the connection's local port, when known).
    pub fn authorization_for(&self, port: Option<u16>) -> &[AuthzPolicy] {
        port.and_then(|p| self.port_authorization.get(&p))
            .unwrap_or(&self.authorization)
    }
}

/// An immutable, validated config. Readers hold an `Arc<Snapshot>`; a new one replaces it whole.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// Version: a content hash for files, the control plane's version for xDS.
    pub version: String,
    /// Where it came from.
    pub source: SnapshotSource,
    /// Outbound route configurations by port.
    pub routes: BTreeMap<u16, RouteConfiguration>,
    /// Clusters by name.
    pub clusters: BTreeMap<ClusterName, Arc<Cluster>>,
    /// Inbound policy for this workload.
    pub inbound: InboundPolicy,
    /// Warnings found while building (unimplemented fields, skipped kinds).
    pub warnings: Vec<Diagnostic>,
}

impl Snapshot {
    /// A snapshot with nothing in it.
    pub fn empty() -> Self {
        Self {
            version: String::new(),
            source: SnapshotSource::Empty,
            routes: BTreeMap::new(),
            clusters: BTreeMap::new(),
            inbound: InboundPolicy::default(),
            warnings: Vec::new(),
        }
    }

    /// The route configuration for an outbound port.
    pub fn route_config(&self, port: u16) -> Option<&RouteConfiguration> {
        self.routes.get(&port)
    }

    /// A cluster by name.
    pub fn cluster(&self, name: &ClusterName) -> Option<&Arc<Cluster>> {
        self.clusters.get(name)
    }
}
