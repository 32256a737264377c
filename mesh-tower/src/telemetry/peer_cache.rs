//! Peers' decoded `x-envoy-peer-metadata`, cached by the header's bytes.
//!
//! Every request (server side) and every response (client side) carries the other end's
//! metadata: base64 of a protobuf `Struct`, a few hundred bytes. Decoding it is the costliest
//! part of filling in a record, yet a peer sends the same bytes on every call. The cache maps the
//! exact bytes to the validated [`PeerWorkload`], so a known peer costs a hash and a lookup.
//!
//! Bounded: at most [`PEER_CACHE_CAPACITY`] distinct values (each at most
//! [`MAX_ENCODED_LEN`](mesh_core::telemetry::MAX_ENCODED_LEN) bytes); past that, new values are
//! decoded on every request, as without the cache. Values that fail to decode are never cached,
//! so each is still refused (and logged) per request.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use arc_swap::ArcSwapOption;
use http::{HeaderMap, HeaderValue};
use mesh_core::telemetry::{PEER_METADATA_HEADER, PeerWorkload};

use super::peer_workload;

/// Most distinct peer metadata values cached.
pub const PEER_CACHE_CAPACITY: usize = 256;

/// Decoded workloads by the exact header value that named them.
type Workloads = HashMap<Box<[u8]>, Arc<PeerWorkload>>;

/// Decoded peer metadata by header value. Cheap to clone; clones share the cache.
#[derive(Clone, Debug, Default)]
pub struct PeerMetadataCache {
    workloads: Arc<RwLock<Workloads>>,
}

impl PeerMetadataCache {
    /// [`peer_workload`]`(headers)`, decoding a given header value once.
    pub fn peer_workload(&self, headers: &HeaderMap) -> Option<PeerWorkload> {
        self.peer_workload_shared(headers).map(Arc::unwrap_or_clone)
    }

    /// [`peer_workload`]`(headers)` as the cache holds it: a hit copies no string.
    pub fn peer_workload_shared(&self, headers: &HeaderMap) -> Option<Arc<PeerWorkload>> {
        let raw = headers.get(PEER_METADATA_HEADER)?.as_bytes();
        if let Some(w) = self
            .workloads
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(raw)
        {
            return Some(w.clone());
        }
        let w = Arc::new(peer_workload(headers)?);
        let mut map = self
            .workloads
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() < PEER_CACHE_CAPACITY {
            map.entry(raw.into()).or_insert_with(|| w.clone());
        }
        Some(w)
    }

    /// Distinct values cached.
    pub fn len(&self) -> usize {
        self.workloads
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The last `x-envoy-peer-metadata` value one peer sent (on a server connection, or from a
/// client's endpoint) and the workload it named (`None`: refused). A peer sends the same bytes
/// on every message, so comparing them spares the cache's hash of a few hundred bytes. Read
/// without a lock: the requests of one endpoint share it.
#[derive(Debug, Default)]
pub(crate) struct LastPeer(ArcSwapOption<(HeaderValue, Option<Arc<PeerWorkload>>)>);

impl LastPeer {
    /// The workload `headers` name: the last one when their value is the same, else decoded
    /// through `telemetry`'s cache and remembered.
    pub(crate) fn workload(
        &self,
        headers: &HeaderMap,
        telemetry: &super::Telemetry,
    ) -> Option<Arc<PeerWorkload>> {
        let raw = headers.get(super::PEER_METADATA)?;
        if let Some((last, workload)) = self.0.load().as_deref()
            && last.as_bytes() == raw.as_bytes()
        {
            return workload.clone();
        }
        let workload = telemetry.peer_workload_shared(headers);
        self.0
            .store(Some(Arc::new((raw.clone(), workload.clone()))));
        workload
    }
}
