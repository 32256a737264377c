//! Istio's HTTP metadata exchange: how two proxies tell each other who they are, so both can
//! label a request with the other side's workload.
//!
//! Each side sends two headers: `x-envoy-peer-metadata-id` (an opaque node id) and
//! `x-envoy-peer-metadata`, the base64 of a protobuf `google.protobuf.Struct` holding the
//! node's metadata under Istio's keys (`NAME`, `NAMESPACE`, `WORKLOAD_NAME`, `CLUSTER_ID`,
//! `LABELS`, …). The client adds them to requests, the server to responses. mesh speaks the same
//! format, so it exchanges metadata with Envoy sidecars too.
//!
//! A peer's metadata is unauthenticated input: it is size-limited before decoding, every field
//! is optional, and [`PeerMetadata::workload`] keeps only values that pass the label rules.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::Message as _;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

use super::labels::bounded_name;
use super::record::PeerWorkload;
use crate::Workload;

/// Header carrying the base64 protobuf metadata.
pub const PEER_METADATA_HEADER: &str = "x-envoy-peer-metadata";
/// Header carrying the peer's node id.
pub const PEER_METADATA_ID_HEADER: &str = "x-envoy-peer-metadata-id";
/// Largest `x-envoy-peer-metadata` value accepted, in bytes.
pub const MAX_ENCODED_LEN: usize = 8 * 1024;

const NAME: &str = "NAME";
const NAMESPACE: &str = "NAMESPACE";
const WORKLOAD_NAME: &str = "WORKLOAD_NAME";
const CLUSTER_ID: &str = "CLUSTER_ID";
const LABELS: &str = "LABELS";
const SERVICE_ACCOUNT: &str = "SERVICE_ACCOUNT";
const MESH_ID: &str = "MESH_ID";
const APP_CONTAINERS: &str = "APP_CONTAINERS";

/// Why a peer's metadata header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerMetadataError {
    /// Longer than [`MAX_ENCODED_LEN`].
    #[error("peer metadata is {0} bytes, more than the {MAX_ENCODED_LEN} accepted")]
    TooLong(usize),
    /// Not base64.
    #[error("peer metadata is not base64: {0}")]
    Base64(String),
    /// Not a protobuf `Struct`.
    #[error("peer metadata is not a protobuf Struct: {0}")]
    Protobuf(String),
}

/// A workload's metadata as exchanged between proxies. Fields not sent are empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    /// Instance name (`NAME`; a pod name in Kubernetes).
    pub name: String,
    /// Namespace (`NAMESPACE`).
    pub namespace: String,
    /// Workload name (`WORKLOAD_NAME`).
    pub workload_name: String,
    /// Cluster id (`CLUSTER_ID`).
    pub cluster_id: String,
    /// Service account (`SERVICE_ACCOUNT`).
    pub service_account: String,
    /// Mesh id (`MESH_ID`).
    pub mesh_id: String,
    /// Application container names (`APP_CONTAINERS`).
    pub app_containers: String,
    /// Workload labels (`LABELS`): `app`, `version`, canonical names, ….
    pub labels: BTreeMap<String, String>,
}

impl PeerMetadata {
    /// The metadata this process sends for `workload`, running in `cluster_id`.
    pub fn from_workload(workload: &Workload, cluster_id: &str) -> Self {
        Self {
            name: workload.name.clone(),
            namespace: workload.namespace.clone(),
            workload_name: workload.name.clone(),
            cluster_id: cluster_id.to_owned(),
            service_account: workload.service_account.clone(),
            mesh_id: String::new(),
            app_containers: String::new(),
            labels: workload.labels.clone(),
        }
    }

    /// The node id sent in `x-envoy-peer-metadata-id`, in Istio's
    /// `sidecar~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local` shape (mesh knows no pod IP, so
    /// the IP part is `0.0.0.0`).
    pub fn id(&self, domain_suffix: &str) -> String {
        format!(
            "sidecar~0.0.0.0~{}.{}~{}.svc.{}",
            self.name, self.namespace, self.namespace, domain_suffix
        )
    }

    /// The `x-envoy-peer-metadata` header value: base64 of the protobuf `Struct`.
    pub fn encode(&self) -> String {
        let mut fields = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                fields.insert(k.to_owned(), string_value(v));
            }
        };
        put(NAME, &self.name);
        put(NAMESPACE, &self.namespace);
        put(WORKLOAD_NAME, &self.workload_name);
        put(CLUSTER_ID, &self.cluster_id);
        put(SERVICE_ACCOUNT, &self.service_account);
        put(MESH_ID, &self.mesh_id);
        put(APP_CONTAINERS, &self.app_containers);
        if !self.labels.is_empty() {
            let labels = Struct {
                fields: self
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), string_value(v)))
                    .collect(),
            };
            fields.insert(
                LABELS.to_owned(),
                Value {
                    kind: Some(Kind::StructValue(labels)),
                },
            );
        }
        STANDARD.encode(Struct { fields }.encode_to_vec())
    }

    /// Decodes a peer's `x-envoy-peer-metadata` value. Keys that are missing or not strings
    /// are left empty; unknown keys are ignored.
    pub fn decode(header: &[u8]) -> Result<Self, PeerMetadataError> {
        if header.len() > MAX_ENCODED_LEN {
            return Err(PeerMetadataError::TooLong(header.len()));
        }
        let bytes = STANDARD
            .decode(header)
            .map_err(|e| PeerMetadataError::Base64(e.to_string()))?;
        let st = Struct::decode(bytes.as_slice())
            .map_err(|e| PeerMetadataError::Protobuf(e.to_string()))?;
        let get = |k: &str| match st.fields.get(k).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
        let labels = match st.fields.get(LABELS).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StructValue(l)) => l
                .fields
                .iter()
                .filter_map(|(k, v)| match &v.kind {
                    Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
                    _ => None,
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(Self {
            name: get(NAME),
            namespace: get(NAMESPACE),
            workload_name: get(WORKLOAD_NAME),
            cluster_id: get(CLUSTER_ID),
            service_account: get(SERVICE_ACCOUNT),
            mesh_id: get(MESH_ID),
            app_containers: get(APP_CONTAINERS),
            labels,
        })
    }

    /// The peer as telemetry labels it, keeping only values that pass the label rules (short,
    /// `[A-Za-z0-9._-]`); the rest are `None`, reported as `unknown`.
    pub fn workload(&self) -> PeerWorkload {
        let keep = |v: Option<String>| v.filter(|v| bounded_name(Some(v)) == *v);
        let w = PeerWorkload::from_parts(
            &self.workload_name,
            &self.namespace,
            &self.labels,
            Some(&self.cluster_id),
        );
        PeerWorkload {
            name: keep(w.name),
            namespace: keep(w.namespace),
            app: keep(w.app),
            version: keep(w.version),
            canonical_service: keep(w.canonical_service),
            canonical_revision: keep(w.canonical_revision),
            cluster: keep(w.cluster),
        }
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}
