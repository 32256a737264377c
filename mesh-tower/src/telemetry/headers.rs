//! Reading a request's telemetry facts from HTTP headers, and writing ours: the small pieces
//! the client and the server both need to fill in a
//! [`RequestRecord`](mesh_core::telemetry::RequestRecord).

use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use mesh_core::telemetry::{
    PEER_METADATA_HEADER, PEER_METADATA_ID_HEADER, PeerMetadata, PeerWorkload, RequestProtocol,
};

/// The metadata exchange headers as names built at compile time: a lookup by one hashes it
/// without parsing it first.
pub(crate) const PEER_METADATA: HeaderName = HeaderName::from_static(PEER_METADATA_HEADER);
const PEER_METADATA_ID: HeaderName = HeaderName::from_static(PEER_METADATA_ID_HEADER);
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// gRPC when `content-type` is `application/grpc` or `application/grpc+…`/`;…`.
pub fn request_protocol(headers: &HeaderMap) -> RequestProtocol {
    let grpc = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.strip_prefix("application/grpc")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
        });
    if grpc {
        RequestProtocol::Grpc
    } else {
        RequestProtocol::Http
    }
}

/// The `grpc-status` of a trailers block or a trailers-only response's headers.
pub fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

/// Adds our `x-envoy-peer-metadata` and `x-envoy-peer-metadata-id` (the client to requests, the
/// server to responses). Encode `metadata` once at start-up and pass the values here.
pub fn insert_peer_metadata(headers: &mut HeaderMap, encoded: &HeaderValue, id: &HeaderValue) {
    // Room for both at once: a map that is full grows once, not once per header. (If it
    // cannot grow, neither insert can, and `insert` reports it.)
    let _ = headers.try_reserve(2);
    headers.insert(PEER_METADATA, encoded.clone());
    headers.insert(PEER_METADATA_ID, id.clone());
}

/// The header values for [`insert_peer_metadata`]; `None` if they are not valid header values
/// (a label value with a newline, say).
pub fn peer_metadata_headers(
    metadata: &PeerMetadata,
    domain_suffix: &str,
) -> Option<(HeaderValue, HeaderValue)> {
    Some((
        HeaderValue::try_from(metadata.encode()).ok()?,
        HeaderValue::try_from(metadata.id(domain_suffix)).ok()?,
    ))
}

/// The peer's workload from its `x-envoy-peer-metadata`, validated for labels; `None` when
/// absent or refused (the refusal is logged at debug level: peers are not trusted).
pub fn peer_workload(headers: &HeaderMap) -> Option<PeerWorkload> {
    let raw = headers.get(PEER_METADATA)?;
    match PeerMetadata::decode(raw.as_bytes()) {
        Ok(md) => Some(md.workload()),
        Err(e) => {
            tracing::debug!(error = %e, "ignoring the peer's metadata");
            None
        }
    }
}

/// Removes the metadata exchange headers, so they are not passed on to the application (the
/// server, from requests) or to the caller (the client, from responses), as Envoy strips them.
pub fn remove_peer_metadata(headers: &mut HeaderMap) {
    headers.remove(PEER_METADATA);
    headers.remove(PEER_METADATA_ID);
}
