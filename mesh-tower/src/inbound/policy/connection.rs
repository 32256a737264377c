//! What the inbound policy knows about one connection, computed once when the server accepts
//! it and shared by `Arc` with each of its requests: the addresses, the verified peer, the
//! principals, and the telemetry it resolved for earlier requests.
//!
//! A request's record is labelled by facts that, but for the status and the peer's metadata,
//! are the connection's. So the first request of each (peer metadata, status) combination
//! builds a record and resolves its metric handles and graph edge
//! ([`Telemetry::resolve`](crate::telemetry::Telemetry::resolve)); later ones find them here
//! by comparing a few values, and count with atomics. The cache is the connection's own (HTTP/2
//! streams of one connection may finish on several threads, hence its mutex): no lock is
//! shared between connections on the request path.
//!
//! A peer's metadata is read the same way: the connection remembers the last
//! `x-envoy-peer-metadata` value and the workload it named, so a peer sending the same bytes
//! on every request (they all do) costs one comparison per request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderMap;
use mesh_core::Mesh;
use mesh_core::identity::PeerIdentity;
use mesh_core::telemetry::{PeerWorkload, RequestProtocol, RequestRecord, ResponseFlag};

use crate::inbound::{LocalAddr, RemoteAddr};
use crate::telemetry::{LastPeer, RecordHandles, Telemetry};

/// Most (peer metadata, status) combinations whose telemetry a connection keeps; past it,
/// further combinations are looked up per request, as without the cache.
const MAX_RESOLVED: usize = 16;

/// One connection's facts; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) local: Option<SocketAddr>,
    /// The verified mutual-TLS peer; `None` on plaintext.
    pub(crate) peer: Option<PeerIdentity>,
    /// The peer's principal (`spiffe://…`), as records carry it.
    source_principal: Option<String>,
    /// Our own principal when the connection was accepted (mutual TLS only).
    destination_principal: Option<String>,
    /// The peer's address as records carry it.
    peer_address: Option<String>,
    /// The last `x-envoy-peer-metadata` value and the workload it named.
    metadata: LastPeer,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    resolved: Vec<(Key, RecordHandles)>,
    /// The gRPC message counters of requests by peer metadata (compared by identity).
    streams: Vec<(Option<Arc<PeerWorkload>>, StreamCounters)>,
}

/// The (request, response) gRPC message counters of a stream series, if gRPC's.
type StreamCounters = Option<(metrics::Counter, metrics::Counter)>;

/// What varies between the records of one connection's requests and labels them.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Key {
    /// The peer's workload; compared by identity (one `Arc` per metadata value seen).
    pub(super) source: Option<Arc<PeerWorkload>>,
    pub(super) protocol: RequestProtocol,
    pub(super) response_code: Option<u16>,
    pub(super) grpc_status: Option<i32>,
    pub(super) flags: Vec<ResponseFlag>,
}

impl Key {
    fn same(&self, other: &Key) -> bool {
        let source = match (&self.source, &other.source) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        source
            && self.protocol == other.protocol
            && self.response_code == other.response_code
            && self.grpc_status == other.grpc_status
            && self.flags == other.flags
    }
}

impl Connection {
    /// A connection from `remote` to `local`, with the peer `peer` verified by mutual TLS;
    /// `principal` is ours (the one the handshake presented).
    pub(crate) fn new(
        remote: Option<SocketAddr>,
        local: Option<SocketAddr>,
        peer: Option<PeerIdentity>,
        principal: Option<String>,
    ) -> Self {
        let mutual_tls = peer.is_some();
        Self {
            remote,
            local,
            source_principal: peer.as_ref().map(|p| p.spiffe_id().as_str().to_owned()),
            destination_principal: principal.filter(|_| mutual_tls),
            peer,
            peer_address: remote.map(|a| a.to_string()),
            metadata: LastPeer::default(),
            cache: Mutex::default(),
        }
    }

    /// The facts of a request served without [`serve`](crate::serve()) (the application runs
    /// the layer on its own server): read from its extensions, for this request alone.
    pub(super) fn of_request(ext: &http::Extensions, mesh: &Mesh) -> Self {
        Self::new(
            ext.get::<RemoteAddr>().map(|a| a.0),
            ext.get::<LocalAddr>().map(|a| a.0),
            ext.get::<PeerIdentity>().cloned(),
            own_principal(mesh),
        )
    }

    /// Whether the peer proved an identity by mutual TLS.
    pub(super) fn is_mutual_tls(&self) -> bool {
        self.peer.is_some()
    }

    /// The workload the peer's `x-envoy-peer-metadata` names (decoded through `telemetry`'s
    /// cache when it differs from the last value this connection saw); `None` when absent or
    /// refused. The caller decides whether the peer may be believed.
    pub(super) fn peer_workload(
        &self,
        headers: &HeaderMap,
        telemetry: &Telemetry,
    ) -> Option<Arc<PeerWorkload>> {
        self.metadata.workload(headers, telemetry)
    }

    /// The telemetry handles of `key`'s records, resolved by `resolve` (a record with those
    /// facts) the first time.
    pub(super) fn handles(
        &self,
        key: &Key,
        resolve: impl FnOnce() -> RecordHandles,
    ) -> RecordHandles {
        if let Some((_, h)) = self.lock().resolved.iter().find(|(k, _)| k.same(key)) {
            return h.clone();
        }
        let handles = resolve();
        if handles.is_reusable() {
            let mut cache = self.lock();
            if cache.resolved.len() < MAX_RESOLVED {
                cache.resolved.push((key.clone(), handles.clone()));
            }
        }
        handles
    }

    /// The gRPC message counters of the requests from `source` on this connection (their
    /// series are the peers' alone), resolved by `resolve` the first time.
    pub(super) fn stream_counters(
        &self,
        source: Option<&Arc<PeerWorkload>>,
        resolve: impl FnOnce() -> StreamCounters,
    ) -> StreamCounters {
        let same = |s: &Option<Arc<PeerWorkload>>| match (s, source) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if let Some((_, c)) = self.lock().streams.iter().find(|(s, _)| same(s)) {
            return c.clone();
        }
        let counters = resolve();
        let mut cache = self.lock();
        if cache.streams.len() < MAX_RESOLVED {
            cache.streams.push((source.cloned(), counters.clone()));
        }
        counters
    }

    /// Fills in the connection's facts of a server-side record.
    pub(super) fn describe(&self, record: &mut RequestRecord) {
        record.peer_address.clone_from(&self.peer_address);
        record.source_principal.clone_from(&self.source_principal);
        record
            .destination_principal
            .clone_from(&self.destination_principal);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Our principal (`spiffe://…`) with the current certificate; `None` without an identity.
pub(crate) fn own_principal(mesh: &Mesh) -> Option<String> {
    mesh.identity()
        .map(|id| id.current().credentials().spiffe_id().as_str().to_owned())
}
