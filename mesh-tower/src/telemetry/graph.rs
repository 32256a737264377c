//! The service graph: who called whom in the last minute, with request rate, error rate and
//! latency percentiles per edge, computed in-process from the requests this process recorded.
//!
//! It is kept beside the metrics (not scraped from our own Prometheus text) as a ring of
//! fixed-length time windows per edge; each window counts requests, errors and a latency
//! histogram on Istio's duration buckets. Histograms rather than quantiles are kept so graphs
//! from several processes merge exactly ([`GraphData::merge`]); quantiles are interpolated
//! within a bucket, as Prometheus' `histogram_quantile` does.
//!
//! Both ends of a call may report it (`reporter="source"` from the client,
//! `"destination"` from the server); the merged view shows the source's report when there is
//! one, as Kiali does, and the destination's otherwise.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mesh_core::telemetry::names::{DURATION_BUCKETS_MS, UNKNOWN};
use mesh_core::telemetry::{PeerWorkload, Reporter, RequestRecord, bounded_name, bounded_str};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Number of latency buckets kept per window: Istio's bounds plus `+Inf`.
pub const LATENCY_BUCKETS: usize = DURATION_BUCKETS_MS.len() + 1;

/// A workload version: the graph's node, `namespace/workload/version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    /// Namespace.
    pub namespace: String,
    /// Workload name.
    pub workload: String,
    /// Version label.
    pub version: String,
}

impl NodeId {
    /// The node of a workload (bounded label values; `unknown` where not known).
    pub fn of(w: &PeerWorkload) -> Self {
        Self {
            namespace: bounded_name(w.namespace.as_deref()),
            workload: bounded_name(w.name.as_deref()),
            version: bounded_name(w.version.as_deref()),
        }
    }

    fn unknown() -> Self {
        Self {
            namespace: UNKNOWN.into(),
            workload: UNKNOWN.into(),
            version: UNKNOWN.into(),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.workload, self.version)
    }
}

/// A node of the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// `namespace/workload/version`.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Workload name.
    pub workload: String,
    /// Version.
    pub version: String,
}

/// One edge as one reporter saw it, over the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    /// `source->destination` (node ids).
    pub id: String,
    /// Who reported it.
    pub reporter: Reporter,
    /// Source node id.
    pub source: String,
    /// Destination node id.
    pub destination: String,
    /// Requests in the window.
    pub requests: u64,
    /// Failed requests in the window ([`RequestRecord::is_error`]).
    pub errors: u64,
    /// Requests per second over the window.
    pub rps: f64,
    /// `errors / requests` (0 when no requests).
    pub error_rate: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Latency histogram counts on Istio's duration buckets (last: above the largest bound).
    pub latency_buckets: Vec<u64>,
}

/// The graph as served on `/graph`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphData {
    /// Ids of the processes whose reports are included (merging skips duplicates).
    pub instances: Vec<String>,
    /// Length of the window the rates cover, seconds.
    pub window_seconds: f64,
    /// Nodes, sorted by id.
    pub nodes: Vec<GraphNode>,
    /// One edge per source → destination: the source's report if any, else the destination's.
    pub edges: Vec<GraphEdge>,
    /// Every report, per reporter: what [`GraphData::merge`] adds up.
    pub reported: Vec<GraphEdge>,
    /// Peers whose graph could not be fetched, with the reason.
    #[serde(default)]
    pub peer_errors: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
struct Counts {
    requests: u64,
    errors: u64,
    buckets: [u64; LATENCY_BUCKETS],
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: 0,
            buckets: [0; LATENCY_BUCKETS],
        }
    }
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.errors += o.errors;
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
    }
}

type EdgeKey = (Reporter, NodeId, NodeId);

/// An edge's key as the request path looks it up: the bounded node values borrowed from the
/// record, so a known edge is found without building its [`NodeId`]s. `EdgeKey` borrows as
/// `dyn EdgeView`, hashing and comparing alike (the reporter, then the six strings in order,
/// as the tuple and `NodeId`'s derived `Hash` feed them).
struct EdgeRef<'a> {
    reporter: Reporter,
    /// Source namespace, workload, version; destination namespace, workload, version.
    nodes: [&'a str; 6],
}

impl<'a> EdgeRef<'a> {
    fn of(r: &'a RequestRecord) -> Self {
        let (s, d) = (&r.source, &r.destination);
        Self {
            reporter: r.reporter,
            nodes: [
                bounded_str(s.namespace.as_deref()),
                bounded_str(s.name.as_deref()),
                bounded_str(s.version.as_deref()),
                bounded_str(d.namespace.as_deref()),
                bounded_str(d.name.as_deref()),
                bounded_str(d.version.as_deref()),
            ],
        }
    }
}

trait EdgeView {
    fn reporter(&self) -> Reporter;
    fn nodes(&self) -> [&str; 6];
}

impl EdgeView for EdgeRef<'_> {
    fn reporter(&self) -> Reporter {
        self.reporter
    }
    fn nodes(&self) -> [&str; 6] {
        self.nodes
    }
}

impl EdgeView for EdgeKey {
    fn reporter(&self) -> Reporter {
        self.0
    }
    fn nodes(&self) -> [&str; 6] {
        let (_, s, d) = self;
        [
            &s.namespace,
            &s.workload,
            &s.version,
            &d.namespace,
            &d.workload,
            &d.version,
        ]
    }
}

impl Hash for dyn EdgeView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.reporter().hash(state);
        for n in self.nodes() {
            n.hash(state);
        }
    }
}

impl PartialEq for dyn EdgeView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.reporter() == other.reporter() && self.nodes() == other.nodes()
    }
}

impl Eq for dyn EdgeView + '_ {}

impl<'a> Borrow<dyn EdgeView + 'a> for EdgeKey {
    fn borrow(&self) -> &(dyn EdgeView + 'a) {
        self
    }
}

/// Windows settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphWindow {
    /// Length of one window.
    pub slot: Duration,
    /// Windows kept (the graph covers `slot × slots`).
    pub slots: u32,
}

impl Default for GraphWindow {
    /// Six windows of ten seconds: the last minute.
    fn default() -> Self {
        Self {
            slot: Duration::from_secs(10),
            slots: 6,
        }
    }
}

/// The in-process service graph. Cheap to clone; all clones share the data.
#[derive(Clone, Debug)]
pub struct ServiceGraph {
    inner: Arc<Mutex<Inner>>,
    instance: Arc<str>,
    window: GraphWindow,
    max_edges: usize,
    epoch: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    edges: HashMap<EdgeKey, VecDeque<(u64, Counts)>>,
}

impl Default for ServiceGraph {
    fn default() -> Self {
        Self::new(GraphWindow::default())
    }
}

impl ServiceGraph {
    /// A graph over `window`, with a random instance id, keeping at most 1,000 edges (further
    /// edges are folded into `unknown → unknown`).
    pub fn new(window: GraphWindow) -> Self {
        let id: u64 = rand::rng().random();
        Self {
            inner: Arc::default(),
            instance: format!("{id:016x}").into(),
            window: GraphWindow {
                slot: window.slot.max(Duration::from_millis(1)),
                slots: window.slots.max(1),
            },
            max_edges: 1_000,
            epoch: Instant::now(),
        }
    }

    /// This process' instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn slot_of(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since / self.window.slot.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Adds a finished request at `now`.
    pub fn record(&self, r: &RequestRecord, now: Instant) {
        let ms = r.duration.as_secs_f64() * 1000.0;
        let bucket = DURATION_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(DURATION_BUCKETS_MS.len());
        let slot = self.slot_of(now);
        let oldest = slot.saturating_sub(u64::from(self.window.slots) - 1);
        let count = |windows: &mut VecDeque<(u64, Counts)>| {
            while windows.front().is_some_and(|(s, _)| *s < oldest) {
                windows.pop_front();
            }
            if windows.back().is_none_or(|(s, _)| *s != slot) {
                windows.push_back((slot, Counts::default()));
            }
            if let Some((_, c)) = windows.back_mut() {
                c.requests += 1;
                c.errors += u64::from(r.is_error());
                c.buckets[bucket] += 1;
            }
        };
        let view = EdgeRef::of(r);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // A known edge: found by the borrowed view, no node strings built.
        if let Some(windows) = inner.edges.get_mut(&view as &dyn EdgeView) {
            count(windows);
            return;
        }
        let mut key = (
            r.reporter,
            NodeId::of(&r.source),
            NodeId::of(&r.destination),
        );
        if inner.edges.len() >= self.max_edges {
            inner
                .edges
                .retain(|_, w| w.back().is_some_and(|(s, _)| *s >= oldest));
            if inner.edges.len() >= self.max_edges {
                key = (r.reporter, NodeId::unknown(), NodeId::unknown());
            }
        }
        count(inner.edges.entry(key).or_default());
    }

    /// The graph over the windows ending at `now`.
    pub fn snapshot(&self, now: Instant) -> GraphData {
        let slot = self.slot_of(now);
        let oldest = slot.saturating_sub(u64::from(self.window.slots) - 1);
        let covered = now
            .saturating_duration_since(self.epoch)
            .min(self.window.slot * self.window.slots)
            .as_secs_f64()
            .max(1.0);
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reported = Vec::new();
        for ((reporter, src, dst), windows) in &inner.edges {
            let mut c = Counts::default();
            for (_, w) in windows.iter().filter(|(s, _)| *s >= oldest) {
                c.add(w);
            }
            if c.requests > 0 {
                reported.push(edge(*reporter, src, dst, &c, c.requests as f64 / covered));
            }
        }
        drop(inner);
        GraphData::from_reported(
            vec![self.instance.to_string()],
            (self.window.slot * self.window.slots).as_secs_f64(),
            reported,
        )
    }
}

fn edge(reporter: Reporter, src: &NodeId, dst: &NodeId, c: &Counts, rps: f64) -> GraphEdge {
    GraphEdge {
        id: format!("{src}->{dst}"),
        reporter,
        source: src.to_string(),
        destination: dst.to_string(),
        requests: c.requests,
        errors: c.errors,
        rps,
        error_rate: if c.requests == 0 {
            0.0
        } else {
            c.errors as f64 / c.requests as f64
        },
        p50_ms: quantile(&c.buckets, 0.5),
        p99_ms: quantile(&c.buckets, 0.99),
        latency_buckets: c.buckets.to_vec(),
    }
}

/// The `q` quantile of a histogram on Istio's duration buckets, interpolated linearly within
/// its bucket; the largest bound when it falls above it.
pub fn quantile(buckets: &[u64], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (seen + n) as f64 >= rank {
            let Some(&upper) = DURATION_BUCKETS_MS.get(i) else {
                return DURATION_BUCKETS_MS[DURATION_BUCKETS_MS.len() - 1];
            };
            let lower = if i == 0 {
                0.0
            } else {
                DURATION_BUCKETS_MS[i - 1]
            };
            let into = (rank - seen as f64) / n as f64;
            return lower + (upper - lower) * into;
        }
        seen += n;
    }
    DURATION_BUCKETS_MS[DURATION_BUCKETS_MS.len() - 1]
}

impl GraphData {
    /// A graph from per-reporter edges: nodes and the one-edge-per-pair view are derived.
    pub fn from_reported(
        instances: Vec<String>,
        window_seconds: f64,
        reported: Vec<GraphEdge>,
    ) -> Self {
        let mut reported = reported;
        reported.sort_by(|a, b| (&a.id, a.reporter.as_str()).cmp(&(&b.id, b.reporter.as_str())));
        let mut nodes = BTreeMap::new();
        let mut view: BTreeMap<String, GraphEdge> = BTreeMap::new();
        for e in &reported {
            for id in [&e.source, &e.destination] {
                nodes.entry(id.clone()).or_insert_with(|| node(id));
            }
            let replace = match view.get(&e.id) {
                None => true,
                Some(v) => v.reporter != Reporter::Source && e.reporter == Reporter::Source,
            };
            if replace {
                view.insert(e.id.clone(), e.clone());
            }
        }
        Self {
            instances,
            window_seconds,
            nodes: nodes.into_values().collect(),
            edges: view.into_values().collect(),
            reported,
            peer_errors: Vec::new(),
        }
    }

    /// Merges graphs from several processes: reports of the same reporter and pair are added up
    /// (histograms bucket by bucket, rates summed); a graph whose instances were all seen
    /// already is skipped, so listing a process twice does not double its traffic.
    pub fn merge(parts: impl IntoIterator<Item = GraphData>) -> GraphData {
        let mut instances: Vec<String> = Vec::new();
        let mut window_seconds: f64 = 0.0;
        let mut peer_errors = Vec::new();
        let mut sums: BTreeMap<(String, &'static str), (GraphEdge, Counts)> = BTreeMap::new();
        for part in parts {
            peer_errors.extend(part.peer_errors);
            if !part.instances.is_empty() && part.instances.iter().all(|i| instances.contains(i)) {
                continue;
            }
            instances.extend(part.instances.into_iter().filter(|i| !i.is_empty()));
            window_seconds = window_seconds.max(part.window_seconds);
            for e in part.reported {
                let mut c = Counts {
                    requests: e.requests,
                    errors: e.errors,
                    ..Counts::default()
                };
                for (dst, src) in c.buckets.iter_mut().zip(&e.latency_buckets) {
                    *dst = *src;
                }
                let key = (e.id.clone(), e.reporter.as_str());
                match sums.get_mut(&key) {
                    Some((acc, acc_c)) => {
                        acc.rps += e.rps;
                        acc_c.add(&c);
                    }
                    None => {
                        sums.insert(key, (e, c));
                    }
                }
            }
        }
        instances.sort();
        instances.dedup();
        let reported = sums
            .into_values()
            .map(|(e, c)| {
                let src = parse_node(&e.source);
                let dst = parse_node(&e.destination);
                edge(e.reporter, &src, &dst, &c, e.rps)
            })
            .collect();
        let mut merged = Self::from_reported(instances, window_seconds, reported);
        merged.peer_errors = peer_errors;
        merged
    }
}

fn parse_node(id: &str) -> NodeId {
    let mut parts = id.splitn(3, '/');
    let mut next = || parts.next().unwrap_or(UNKNOWN).to_owned();
    NodeId {
        namespace: next(),
        workload: next(),
        version: next(),
    }
}

fn node(id: &str) -> GraphNode {
    let n = parse_node(id);
    GraphNode {
        id: id.to_owned(),
        namespace: n.namespace,
        workload: n.workload,
        version: n.version,
    }
}

#[cfg(test)]
mod edge_key_tests {
    use std::hash::BuildHasher;
    use std::time::SystemTime;

    use super::*;

    /// The borrowed view of a record and the owned key built from it hash and compare alike,
    /// including values collapsed to `unknown`.
    #[test]
    fn view_and_key_agree() {
        let mut r = RequestRecord::new(Reporter::Source, SystemTime::UNIX_EPOCH);
        r.source.namespace = Some("shop".into());
        r.source.name = Some("frontend".into());
        r.destination.version = Some("not a valid name".into());
        let key: EdgeKey = (
            r.reporter,
            NodeId::of(&r.source),
            NodeId::of(&r.destination),
        );
        let view = EdgeRef::of(&r);
        let state = std::hash::RandomState::new();
        assert_eq!(state.hash_one(&key), state.hash_one(&view as &dyn EdgeView));
        assert!(*Borrow::<dyn EdgeView>::borrow(&key) == *(&view as &dyn EdgeView));
        let mut other = r.clone();
        other.reporter = Reporter::Destination;
        assert!(*Borrow::<dyn EdgeView>::borrow(&key) != *(&EdgeRef::of(&other) as &dyn EdgeView));
    }
}
