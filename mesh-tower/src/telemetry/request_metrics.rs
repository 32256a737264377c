//! Istio's standard request metrics through the `metrics` facade, with handles registered once
//! per label set and cached, so the request path only looks a handle up and increments it
//! (linkerd's pattern: register the family once, hand out cheap per-label handles).
//!
//! The cache is bounded, in label sets and in bytes. Label values are bounded by construction
//! ([`request_labels`](mesh_core::telemetry::request_labels): short, restricted characters),
//! and a peer's metadata is only believed from a mutual-TLS peer, but an authenticated peer can
//! still choose its own workload name. Once `capacity` distinct label sets are cached, or their
//! estimated Prometheus exposition would pass `max_bytes`, new ones are recorded with the
//! peer-chosen values collapsed to `unknown` ([`RequestLabels::without_peer_values`]), and
//! `mesh_telemetry_label_overflow_total` counts them. The number of series and the size of
//! `/metrics` are therefore bounded by the limits plus the (config-bounded) sets without peer
//! values.
//!
//! Every series is one label set times up to 69 exposition lines (the request counter, the two
//! gRPC message counters of gRPC label sets, and three histograms on Istio's 19 buckets), so a
//! label set of ~700 label bytes is ~55 KB of `/metrics`: the byte
//! limit, not the count, is what keeps a scrape small when label values are long.
//!
//! [`RequestMetrics::record_request`] finds the handles by the record itself: a second,
//! equally bounded cache maps the record's [`LabelKey`] (the facts its labels are computed from,
//! hashed in place) to the handles of its label set, so a request whose combination was seen
//! before builds no label strings at all; the labels are computed only on a miss.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use mesh_core::telemetry::names::{
    BYTES_BUCKETS, DURATION_BUCKETS_MS, REQUEST_BYTES, REQUEST_DURATION_MILLISECONDS,
    REQUEST_MESSAGES_TOTAL, REQUESTS_TOTAL, RESPONSE_BYTES, RESPONSE_MESSAGES_TOTAL,
};
use mesh_core::telemetry::{
    LabelKey, RequestLabels, RequestProtocol, RequestRecord, request_labels,
};
use metrics::{Counter, Histogram, Label};

/// Counter of requests recorded with peer-chosen label values dropped.
pub const LABEL_OVERFLOW_TOTAL: &str = "mesh_telemetry_label_overflow_total";

/// Default number of distinct label sets cached before peer-chosen values collapse.
pub const DEFAULT_CAPACITY: usize = 2_000;

/// Default bound on the estimated Prometheus exposition of the cached label sets, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;

/// The four standard request metrics, one handle set per label set. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    max_bytes: usize,
    handles: RwLock<HashMap<RequestLabels, Arc<Handles>>>,
    /// Estimated exposition bytes of the label sets in `handles` (changed under its write lock).
    bytes: AtomicUsize,
    by_record: RwLock<RecordCache>,
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

/// The labels the gRPC message counters do not carry: Istio's stats filter adds a stream's
/// message deltas (istio/proxy `istio_stats.cc`, `IstioStatsFilter::reportHelper`, called
/// periodically and first thing in `log`) before `log` pushes these five tags, so
/// `istio_request_messages_total` and `istio_response_messages_total` are labelled by the peers
/// alone (its e2e expectation `testdata/metric/client_request_messages.yaml.tmpl`).
const PER_RESPONSE_LABELS: [&str; 5] = [
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

/// The gRPC message counters (request, response) of a label set, registered under its stream
/// labels (all but [`PER_RESPONSE_LABELS`]).
fn message_counters(labels: &[Label]) -> (Counter, Counter) {
    let stream: Vec<Label> = labels
        .iter()
        .filter(|l| !PER_RESPONSE_LABELS.contains(&l.key()))
        .cloned()
        .collect();
    (
        metrics::counter!(REQUEST_MESSAGES_TOTAL, stream.clone()),
        metrics::counter!(RESPONSE_MESSAGES_TOTAL, stream),
    )
}

#[derive(Debug)]
struct Handles {
    requests: Counter,
    duration_ms: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
    /// gRPC message counters: label sets of gRPC requests only, as Istio emits them.
    messages: Option<(Counter, Counter)>,
}

impl Handles {
    fn register(labels: &RequestLabels) -> Self {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(k, v.to_owned()))
            .collect();
        let grpc = labels
            .iter()
            .any(|l| l.key() == "request_protocol" && l.value() == "grpc");
        let messages = grpc.then(|| message_counters(&labels));
        Self {
            messages,
            requests: metrics::counter!(REQUESTS_TOTAL, labels.clone()),
            duration_ms: metrics::histogram!(REQUEST_DURATION_MILLISECONDS, labels.clone()),
            request_bytes: metrics::histogram!(REQUEST_BYTES, labels.clone()),
            response_bytes: metrics::histogram!(RESPONSE_BYTES, labels),
        }
    }
}

/// The four metrics of one label set, resolved by [`RequestMetrics::resolve`]: recording
/// through them increments a counter and three histograms, with no lookup. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MetricHandles {
    handles: Arc<Handles>,
    overflow: bool,
}

impl MetricHandles {
    /// Counts a gRPC request's messages each way (label sets that are not gRPC have no
    /// message counters).
    pub fn count_messages(&self, request: u64, response: u64) {
        if let Some((req, resp)) = &self.handles.messages {
            req.increment(request);
            resp.increment(response);
        }
    }

    /// Counts one finished request.
    pub fn record(&self, duration: Duration, request_bytes: u64, response_bytes: u64) {
        let h = &self.handles;
        h.requests.increment(1);
        h.duration_ms.record(duration.as_secs_f64() * 1000.0);
        h.request_bytes.record(request_bytes as f64);
        h.response_bytes.record(response_bytes as f64);
    }

    /// Whether these are the overflow's handles (the label set was not admitted): such handles
    /// must not be kept, each request is looked up (and counted as an overflow) again.
    pub fn is_overflow(&self) -> bool {
        self.overflow
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::with_limits(DEFAULT_CAPACITY, DEFAULT_MAX_BYTES)
    }
}

/// Lines one label set adds to the exposition: a counter, then per histogram its buckets,
/// `+Inf`, `_sum` and `_count`.
/// (Two more for the gRPC message counters, counted for every set.)
const LINES_PER_SET: usize = 3 + (DURATION_BUCKETS_MS.len() + 3) + 2 * (BYTES_BUCKETS.len() + 3);

/// Per line beyond the labels: the longest metric name with its `_bucket` suffix, braces,
/// an `le` label and a value.
const LINE_OVERHEAD: usize = 48 + 2 + 16 + 24;

/// The estimated Prometheus exposition of one label set, in bytes: each label costs
/// `key="value",`, values escaped at most twice their length.
fn exposition_bytes(labels: &RequestLabels) -> usize {
    let label_bytes: usize = labels.iter().map(|(k, v)| k.len() + 2 * v.len() + 4).sum();
    LINES_PER_SET * (label_bytes + LINE_OVERHEAD)
}

impl RequestMetrics {
    /// Metrics caching at most `capacity` label sets with peer-chosen values (and
    /// [`DEFAULT_MAX_BYTES`] of exposition). Handles are registered with the recorder installed
    /// when a label set is first seen.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_limits(capacity, DEFAULT_MAX_BYTES)
    }

    /// Metrics caching at most `capacity` label sets with peer-chosen values, and no more than
    /// `max_bytes` of their estimated Prometheus exposition.
    pub fn with_limits(capacity: usize, max_bytes: usize) -> Self {
        metrics::describe_counter!(REQUESTS_TOTAL, "Requests handled, by reporter");
        metrics::describe_histogram!(
            REQUEST_DURATION_MILLISECONDS,
            metrics::Unit::Milliseconds,
            "Request duration"
        );
        metrics::describe_histogram!(REQUEST_BYTES, metrics::Unit::Bytes, "Request body size");
        metrics::describe_counter!(REQUEST_MESSAGES_TOTAL, "gRPC messages sent by clients");
        metrics::describe_counter!(RESPONSE_MESSAGES_TOTAL, "gRPC messages sent by servers");
        metrics::describe_histogram!(RESPONSE_BYTES, metrics::Unit::Bytes, "Response body size");
        metrics::describe_counter!(
            LABEL_OVERFLOW_TOTAL,
            "Requests recorded with peer-chosen label values dropped (label-set limit reached)"
        );
        Self {
            inner: Arc::new(Inner {
                capacity,
                max_bytes,
                handles: RwLock::new(HashMap::new()),
                bytes: AtomicUsize::new(0),
                by_record: RwLock::new(RecordCache::default()),
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
        let handles = self.resolve(record);
        handles.record(record.duration, record.request_bytes, record.response_bytes);
        handles.count_messages(
            record.details.request_messages,
            record.details.response_messages,
        );
    }

    /// The handles `record`'s requests are counted under, to keep and update without looking
    /// them up again (the server keeps them per connection): recording through them is the
    /// same as [`record_request`](Self::record_request) of a record with the same
    /// label-determining facts, as long as they are not [`MetricHandles::is_overflow`] (whose
    /// every request must be looked up, and so counted as an overflow, again).
    pub fn resolve(&self, record: &RequestRecord) -> MetricHandles {
        let (handles, own) = self.handles_for(record);
        MetricHandles {
            handles,
            overflow: !own,
        }
    }

    /// The gRPC message counters (request, response) of `record`'s stream series, for a call
    /// that reports its messages while it runs (before its response code and gRPC status are
    /// known, which these series do not carry); `None` when `record` is not gRPC. Only the two
    /// counters are registered, not the request metrics of a label set no request may end
    /// with. Once the label-set limit is reached, the peer-chosen values collapse to `unknown`
    /// as for the request metrics. Computes the labels: callers keep the result.
    pub fn stream_counters(&self, record: &RequestRecord) -> Option<(Counter, Counter)> {
        if record.protocol != RequestProtocol::Grpc {
            return None;
        }
        let mut labels = request_labels(record);
        if self.read().len() >= self.inner.capacity {
            metrics::counter!(LABEL_OVERFLOW_TOTAL).increment(1);
            labels = labels.without_peer_values();
        }
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(k, v.to_owned()))
            .collect();
        Some(message_counters(&labels))
    }

    /// Distinct label sets registered so far.
    pub fn series(&self) -> usize {
        self.read().len()
    }

    /// The estimated Prometheus exposition of the registered label sets, in bytes.
    pub fn estimated_bytes(&self) -> usize {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// The handles of `record`'s label set, and whether they are its own (not an overflow's).
    fn handles_for(&self, record: &RequestRecord) -> (Arc<Handles>, bool) {
        let hash = {
            let cache = self.by_record();
            let hash = cache.hasher.hash_one(RecordHash(record));
            if let Some(h) = cache.get(hash, record) {
                return (h.clone(), true);
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
        (h, cached)
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
        let cost = exposition_bytes(labels);
        let bytes = self.inner.bytes.load(Ordering::Relaxed);
        let full =
            map.len() >= self.inner.capacity || bytes.saturating_add(cost) > self.inner.max_bytes;
        let (key, own) = if full {
            // Resolved through the recorder in force now, like every other handle, not the one
            // present when these metrics were built.
            metrics::counter!(LABEL_OVERFLOW_TOTAL).increment(1);
            let reduced = labels.without_peer_values();
            if let Some(h) = map.get(&reduced) {
                return (h.clone(), false);
            }
            (reduced, false)
        } else {
            (labels.clone(), true)
        };
        let h = Arc::new(Handles::register(&key));
        self.inner
            .bytes
            .fetch_add(exposition_bytes(&key), Ordering::Relaxed);
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
