//! Telemetry vocabulary shared by the client and server sides.
//!
//! - [`ResponseFlag`]: Envoy's response flags.
//! - [`names`]: Istio's standard metric names, labels and histogram buckets.
//! - [`grpc_status_name`] / [`grpc_status_code`]: gRPC status codes by name.
//! - [`RequestRecord`]: the facts of one finished request, filled in by the client or server.
//! - [`request_labels`]: the bounded label set of a request ([`RequestLabels`]).
//! - [`LabelKey`]: the facts those labels are computed from, to look cached labels up by record.
//! - [`PeerMetadata`]: Istio's `x-envoy-peer-metadata` exchange, so each side learns the other's
//!   workload; [`principal_namespace`]: what a peer's certificate says when it sent none.
//!
//! Recording (the `metrics` facade, the access log, the service graph) lives in
//! `mesh_tower::telemetry`; this module is pure.

mod details;
mod flags;
mod grpc_frames;
mod grpc_status;
mod label_key;
mod labels;
pub mod names;
mod peer_metadata;
mod peer_principal;
mod record;

#[cfg(test)]
mod tests;

pub use details::RequestDetails;
pub use flags::ResponseFlag;
pub use grpc_frames::GrpcFrameCounter;
pub use grpc_status::{grpc_status_code, grpc_status_name};
pub use label_key::LabelKey;
pub use labels::{
    MAX_NAME_LEN, MAX_PRINCIPAL_LEN, RequestLabels, bounded_name, bounded_str, request_labels,
};
pub use peer_metadata::{
    MAX_ENCODED_LEN, PEER_METADATA_HEADER, PEER_METADATA_ID_HEADER, PeerMetadata, PeerMetadataError,
};
pub use peer_principal::{principal_namespace, principal_service_account};
pub use record::{
    CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL, PeerWorkload, Reporter, RequestProtocol,
    RequestRecord, SecurityPolicy,
};
