//! Istio's standard request metrics through the `metrics` facade, with handles registered once
//! per label set and cached, so the request path only looks a handle up and increments it
//! (linkerd's pattern: register the family once, hand out cheap per-label handles).
//!
//! The cache is bounded. Label values are bounded by construction
//! ([`request_labels`](mesh_core::telemetry::request_labels)), but a peer can still choose its
//! own workload name; once `capacity` distinct label sets are cached, new ones are recorded with
//! the peer-chosen values collapsed to `unknown`
//! ([`RequestLabels::without_peer_values`]), and `mesh_telemetry_label_overflow_total` counts
//! them. The number of series is therefore at most `capacity` plus the (config-bounded) sets
//! without peer values.
//!
//! [`RequestMetrics::record_request`] finds the handles by the record itself: a second,
//! equally bounded cache maps the record's [`LabelKey`] (the facts its labels are computed from,
//! hashed in place) to the handles of its label set, so a request whose combination was seen
//! before builds no label strings at all; the labels are computed only on a miss.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, PoisonError, RwLock};

use mesh_core::telemetry::names::{
    REQUEST_BYTES, REQUEST_DURATION_MILLISECONDS, REQUESTS_TOTAL, RESPONSE_BYTES,
};
use mesh_core::telemetry::{LabelKey, RequestLabels, RequestRecord, request_labels};
use metrics::{Counter, Histogram, Label};

/// Counter of requests recorded with peer-chosen label values dropped.
pub const LABEL_OVERFLOW_TOTAL: &str = "mesh_telemetry_label_overflow_total";

/// Default number of distinct label sets cached before peer-chosen values collapse.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The four standard request metrics, one handle set per label set. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    handles: RwLock<HashMap<RequestLabels, Arc<Handles>>>,
    by_record: RwLock<RecordCache>,
    overflow: Counter,
}

/// Handles by [`LabelKey`]: buckets keyed by the record's hash (keyed SipHash, so a peer cannot
/// aim collisions), each holding the keys that hash alike. Holds only label sets that are
/// themselves in `handles` (never an overflowed one, whose every request must count), at most
/// `capacity` keys.
#[derive(Debug, Default)]
struct RecordCache {
    hasher: RandomState,
    buckets: HashMap<u64, Vec<(LabelKey, Arc<Handles>)>>,
    len: usize,
}

impl RecordCache {
    fn get(&self, hash: u64, record: &RequestRecord) -> Option<&Arc<Handles>> {
        self.buckets
            .get(&hash)?
            .iter()
            .find(|(k, _)| k.matches(record))
            .map(|(_, h)| h)
    }
}

#[derive(Debug)]
struct Handles {
    requests: Counter,
    duration_ms: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl Handles {
    fn register(labels: &RequestLabels) -> Self {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(k, v.to_owned()))
            .collect();
        Self {
            requests: metrics::counter!(REQUESTS_TOTAL, labels.clone()),
            duration_ms: metrics::histogram!(REQUEST_DURATION_MILLISECONDS, labels.clone()),
            request_bytes: metrics::histogram!(REQUEST_BYTES, labels.clone()),
            response_bytes: metrics::histogram!(RESPONSE_BYTES, labels),
        }
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl RequestMetrics {
    /// Metrics caching at most `capacity` label sets with peer-chosen values. Handles are
    /// registered with the recorder installed when a label set is first seen.
    pub fn with_capacity(capacity: usize) -> Self {
        metrics::describe_counter!(REQUESTS_TOTAL, "Requests handled, by reporter");
        metrics::describe_histogram!(
            REQUEST_DURATION_MILLISECONDS,
            metrics::Unit::Milliseconds,
            "Request duration"
        );
        metrics::describe_histogram!(REQUEST_BYTES, metrics::Unit::Bytes, "Request body size");
        metrics::describe_histogram!(RESPONSE_BYTES, metrics::Unit::Bytes, "Response body size");
        Self {
            inner: Arc::new(Inner {
                capacity,
                handles: RwLock::new(HashMap::new()),
                by_record: RwLock::new(RecordCache::default()),
                overflow: metrics::counter!(LABEL_OVERFLOW_TOTAL),
            }),
        }
    }

    /// Records one finished request under `labels` (from
    /// [`request_labels`](mesh_core::telemetry::request_labels)`(record)`).
    pub fn record(&self, labels: &RequestLabels, record: &RequestRecord) {
        let h = self.handles(labels);
        h.requests.increment(1);
        h.duration_ms.record(record.duration.as_secs_f64() * 1000.0);
        h.request_bytes.record(record.request_bytes as f64);
        h.response_bytes.record(record.response_bytes as f64);
    }

    /// Records one finished request under its labels
    /// ([`request_labels`](mesh_core::telemetry::request_labels)`(record)`), the same as
    /// [`record`](Self::record), computing the labels only when the record's label-determining
    /// facts were not seen before.
    pub fn record_request(&self, record: &RequestRecord) {
        let h = self.handles_for(record);
        h.requests.increment(1);
        h.duration_ms.record(record.duration.as_secs_f64() * 1000.0);
        h.request_bytes.record(record.request_bytes as f64);
        h.response_bytes.record(record.response_bytes as f64);
    }

    /// Distinct label sets registered so far.
    pub fn series(&self) -> usize {
        self.read().len()
    }

    fn handles_for(&self, record: &RequestRecord) -> Arc<Handles> {
        let hash = {
            let cache = self.by_record();
            let hash = cache.hasher.hash_one(RecordHash(record));
            if let Some(h) = cache.get(hash, record) {
                return h.clone();
            }
            hash
        };
        let labels = request_labels(record);
        let (h, cached) = self.lookup(&labels);
        if cached {
            let mut cache = self
                .inner
                .by_record
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if cache.len < self.inner.capacity && cache.get(hash, record).is_none() {
                cache
                    .buckets
                    .entry(hash)
                    .or_default()
                    .push((LabelKey::of(record), h.clone()));
                cache.len += 1;
            }
        }
        h
    }

    fn handles(&self, labels: &RequestLabels) -> Arc<Handles> {
        self.lookup(labels).0
    }

    /// The handles of `labels`, and whether they are `labels`' own (not an overflow's).
    fn lookup(&self, labels: &RequestLabels) -> (Arc<Handles>, bool) {
        if let Some(h) = self.read().get(labels) {
            return (h.clone(), true);
        }
        let mut map = self
            .inner
            .handles
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = map.get(labels) {
            return (h.clone(), true);
        }
        let (key, own) = if map.len() >= self.inner.capacity {
            self.inner.overflow.increment(1);
            let reduced = labels.without_peer_values();
            if let Some(h) = map.get(&reduced) {
                return (h.clone(), false);
            }
            (reduced, false)
        } else {
            (labels.clone(), true)
        };
        let h = Arc::new(Handles::register(&key));
        map.insert(key, h.clone());
        (h, own)
    }

    fn by_record(&self) -> std::sync::RwLockReadGuard<'_, RecordCache> {
        self.inner
            .by_record
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<RequestLabels, Arc<Handles>>> {
        self.inner
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hashes a record's label-determining facts ([`LabelKey::hash_record`]).
struct RecordHash<'a>(&'a RequestRecord);

impl std::hash::Hash for RecordHash<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        LabelKey::hash_record(self.0, state);
    }
}
