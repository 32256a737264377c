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
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use mesh_core::telemetry::names::{DURATION_BUCKETS_MS, UNKNOWN};
use mesh_core::telemetry::{
    PeerWorkload, Reporter, RequestProtocol, RequestRecord, SecurityPolicy, bounded_name,
    bounded_str,
};
use rand::Rng as _;

use super::code_counts::CodeCounts;
use super::health::{EdgeHealth, ResponseCode, codes_by_name, codes_from_names};
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

    /// The called node of a request: its destination workload when known; else, when the
    /// call was routed to a service (a client whose call got no answer, so no peer metadata),
    /// that service, as Kiali draws a service node for `destination_workload="unknown"`:
    /// the service's namespace, its host, and version [`SERVICE_NODE_VERSION`].
    pub fn destination_of(r: &RequestRecord) -> Self {
        let [namespace, workload, version] = destination_parts(r);
        Self {
            namespace: namespace.to_owned(),
            workload: workload.to_owned(),
            version: version.to_owned(),
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

/// The version of a service node (one no label value can take): the calls to it reached no
/// workload that said who it is.
pub const SERVICE_NODE_VERSION: &str = "*";

/// The destination node's namespace, workload and version, borrowed from the record.
fn destination_parts(r: &RequestRecord) -> [&str; 3] {
    let d = &r.destination;
    match (&d.name, &r.destination_service) {
        (None, Some(svc)) if r.reporter == Reporter::Source => [
            bounded_str(Some(&svc.namespace)),
            bounded_str(Some(&svc.host)),
            SERVICE_NODE_VERSION,
        ],
        _ => [
            bounded_str(d.namespace.as_deref()),
            bounded_str(d.name.as_deref()),
            bounded_str(d.version.as_deref()),
        ],
    }
}

/// What a node stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A workload version.
    #[default]
    Workload,
    /// A service whose calls reached no known workload ([`NodeId::destination_of`]).
    Service,
    /// A caller or callee nothing is known of.
    Unknown,
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
    /// Workload, service or unknown.
    #[serde(default)]
    pub kind: NodeKind,
    /// The app (Istio's canonical service) the workload is a version of: the map groups the
    /// versions of one app to show how its traffic splits. `unknown` when not known.
    #[serde(default)]
    pub app: String,
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
    /// Requests per response code (`"200"`, `"403"`, gRPC statuses by name: `"OK"`,
    /// `"PERMISSION_DENIED"`; `"0"`: no response).
    #[serde(default)]
    pub response_codes: BTreeMap<String, u64>,
    /// Success, 4xx, denials and 5xx apart, and the status Kiali would give the edge.
    #[serde(default)]
    pub health: EdgeHealth,
    /// Requests made over mutual TLS with a verified peer (a principal on either side).
    #[serde(default)]
    pub mtls_requests: u64,
    /// Requests that were gRPC.
    #[serde(default)]
    pub grpc_requests: u64,
    /// The source's app (canonical service).
    #[serde(default)]
    pub source_app: String,
    /// The destination's app (canonical service; the service's short name for a service node).
    #[serde(default)]
    pub destination_app: String,
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

#[derive(Clone, Debug)]
struct Counts {
    requests: u64,
    errors: u64,
    buckets: [u64; LATENCY_BUCKETS],
    codes: BTreeMap<ResponseCode, u64>,
    mtls: u64,
    grpc: u64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: 0,
            buckets: [0; LATENCY_BUCKETS],
            codes: BTreeMap::new(),
            mtls: 0,
            grpc: 0,
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
        self.mtls += o.mtls;
        self.grpc += o.grpc;
        for (code, n) in &o.codes {
            *self.codes.entry(*code).or_insert(0) += n;
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
        let s = &r.source;
        let [dns, dname, dversion] = destination_parts(r);
        Self {
            reporter: r.reporter,
            nodes: [
                bounded_str(s.namespace.as_deref()),
                bounded_str(s.name.as_deref()),
                bounded_str(s.version.as_deref()),
                dns,
                dname,
                dversion,
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
///
/// The map of edges is locked only to find or add an edge ([`ServiceGraph::edge`]) and to read
/// the graph; counting a request on an edge already found ([`EdgeHandle::record`]) is a few
/// atomic additions, so a server that keeps each connection's edge takes no process-wide lock
/// per request.
#[derive(Clone, Debug)]
pub struct ServiceGraph {
    edges: Arc<RwLock<HashMap<EdgeKey, Arc<Edge>>>>,
    /// Each node's app (canonical service), noted when an edge is first seen.
    apps: Arc<Mutex<HashMap<NodeId, String>>>,
    instance: Arc<str>,
    clock: Clock,
    max_edges: usize,
}

/// The window arithmetic an edge handle needs, copied into each.
#[derive(Clone, Copy, Debug)]
struct Clock {
    window: GraphWindow,
    epoch: Instant,
}

impl Clock {
    fn slot_of(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since / self.window.slot.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The oldest window still covered at `slot`.
    fn oldest(&self, slot: u64) -> u64 {
        slot.saturating_sub(u64::from(self.window.slots) - 1)
    }
}

/// One edge's counts: a ring of `slots` windows, each tagged with the window it counts.
#[derive(Debug)]
struct Edge {
    windows: Box<[Window]>,
}

/// One window of an edge. `tag` is the window's number plus one (zero: never used), or
/// [`CLAIMED`] while the first request of a new window clears the counts of the one it
/// replaces in the ring.
#[derive(Debug, Default)]
struct Window {
    tag: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
    mtls: AtomicU64,
    grpc: AtomicU64,
    /// Requests per response code, counted without a lock.
    codes: CodeCounts,
}

/// The tag of a window being cleared.
const CLAIMED: u64 = u64::MAX;

impl Window {
    /// The window counted here; `None` when none is, or it is being cleared.
    fn window(&self) -> Option<u64> {
        match self.tag.load(Ordering::Acquire) {
            0 | CLAIMED => None,
            tag => Some(tag - 1),
        }
    }
}

impl Edge {
    fn new(slots: u32) -> Self {
        Self {
            windows: (0..slots.max(1)).map(|_| Window::default()).collect(),
        }
    }

    /// Counts one request in window `slot`. A window `slots` or more older than the one its
    /// ring position holds is out of every graph already, and is not counted.
    fn add(&self, slot: u64, bucket: usize, error: bool, facts: &EdgeFacts) {
        let len = self.windows.len() as u64;
        let Some(w) = self.windows.get((slot % len) as usize) else {
            return;
        };
        let tag = slot.saturating_add(1).min(CLAIMED - 1);
        let mut spins = 0u32;
        loop {
            let seen = w.tag.load(Ordering::Acquire);
            if seen == tag {
                break;
            }
            if seen == CLAIMED {
                // Another request is clearing this window: a few stores.
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            if seen > tag {
                return;
            }
            if w.tag
                .compare_exchange(seen, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                w.requests.store(0, Ordering::Relaxed);
                w.errors.store(0, Ordering::Relaxed);
                for b in &w.buckets {
                    b.store(0, Ordering::Relaxed);
                }
                w.mtls.store(0, Ordering::Relaxed);
                w.grpc.store(0, Ordering::Relaxed);
                w.codes.clear();
                w.tag.store(tag, Ordering::Release);
                break;
            }
        }
        w.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            w.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(b) = w.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        if facts.mtls {
            w.mtls.fetch_add(1, Ordering::Relaxed);
        }
        if facts.grpc {
            w.grpc.fetch_add(1, Ordering::Relaxed);
        }
        w.codes.add(facts.code);
    }

    /// The counts of the windows from `oldest` on.
    fn counts(&self, oldest: u64) -> Counts {
        let mut c = Counts::default();
        for w in self.windows.iter() {
            if w.window().is_none_or(|s| s < oldest) {
                continue;
            }
            c.requests += w.requests.load(Ordering::Relaxed);
            c.errors += w.errors.load(Ordering::Relaxed);
            for (a, b) in c.buckets.iter_mut().zip(&w.buckets) {
                *a += b.load(Ordering::Relaxed);
            }
            c.mtls += w.mtls.load(Ordering::Relaxed);
            c.grpc += w.grpc.load(Ordering::Relaxed);
            w.codes.add_to(&mut c.codes);
        }
        c
    }

    /// Whether any window from `oldest` on was counted in.
    fn is_recent(&self, oldest: u64) -> bool {
        self.windows.iter().any(|w| {
            w.tag.load(Ordering::Acquire) == CLAIMED || w.window().is_some_and(|s| s >= oldest)
        })
    }
}

/// One edge of a [`ServiceGraph`], found once ([`ServiceGraph::edge`]) and then counted into
/// with atomics only. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EdgeHandle {
    edge: Arc<Edge>,
    clock: Clock,
    folded: bool,
    facts: EdgeFacts,
}

/// What a handle's requests share beyond their edge (a function of the label-determining
/// facts it was resolved for): their response code, whether they were mutual TLS, gRPC.
#[derive(Clone, Copy, Debug)]
struct EdgeFacts {
    code: ResponseCode,
    mtls: bool,
    grpc: bool,
}

impl EdgeFacts {
    fn of(r: &RequestRecord) -> Self {
        Self {
            code: ResponseCode::of(r),
            mtls: r.security == SecurityPolicy::MutualTls
                || r.source_principal.is_some()
                || r.destination_principal.is_some(),
            grpc: r.protocol == RequestProtocol::Grpc,
        }
    }
}

impl EdgeHandle {
    /// Counts a request that took `duration` and failed or not
    /// ([`RequestRecord::is_error`]), finished at `now`.
    pub fn record(&self, duration: Duration, error: bool, now: Instant) {
        let ms = duration.as_secs_f64() * 1000.0;
        let bucket = DURATION_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(DURATION_BUCKETS_MS.len());
        self.edge
            .add(self.clock.slot_of(now), bucket, error, &self.facts);
    }

    /// Whether the graph was full and this is the `unknown → unknown` edge the request was
    /// folded into: such a handle must not be kept, each request is looked up again (room may
    /// have been made).
    pub fn is_folded(&self) -> bool {
        self.folded
    }
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
            edges: Arc::default(),
            apps: Arc::default(),
            instance: format!("{id:016x}").into(),
            clock: Clock {
                window: GraphWindow {
                    slot: window.slot.max(Duration::from_millis(1)),
                    slots: window.slots.max(1),
                },
                epoch: Instant::now(),
            },
            max_edges: 1_000,
        }
    }

    /// This process' instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Adds a finished request at `now`.
    pub fn record(&self, r: &RequestRecord, now: Instant) {
        self.edge(r, now).record(r.duration, r.is_error(), now);
    }

    /// The edge `r` is counted on (its reporter, source and destination), added if new; `now`
    /// tells which edges are stale when the graph is full. Edges a handle is kept for are never
    /// dropped to make room.
    pub fn edge(&self, r: &RequestRecord, now: Instant) -> EdgeHandle {
        let facts = EdgeFacts::of(r);
        let handle = |edge: &Arc<Edge>, folded| EdgeHandle {
            edge: edge.clone(),
            clock: self.clock,
            folded,
            facts,
        };
        let view = EdgeRef::of(r);
        // A known edge: found by the borrowed view, no node strings built.
        if let Some(edge) = self.read().get(&view as &dyn EdgeView) {
            return handle(edge, false);
        }
        let mut edges = self.edges.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(edge) = edges.get(&view as &dyn EdgeView) {
            return handle(edge, false);
        }
        let mut key = (r.reporter, NodeId::of(&r.source), NodeId::destination_of(r));
        let mut folded = false;
        if edges.len() >= self.max_edges {
            let oldest = self.clock.oldest(self.clock.slot_of(now));
            edges.retain(|_, e| Arc::strong_count(e) > 1 || e.is_recent(oldest));
            let live: HashSet<&NodeId> = edges.keys().flat_map(|(_, s, d)| [s, d]).collect();
            self.apps().retain(|n, _| live.contains(n));
            if edges.len() >= self.max_edges {
                key = (r.reporter, NodeId::unknown(), NodeId::unknown());
                folded = true;
            }
        }
        let destination_app = match (&r.destination.name, &r.destination_service) {
            (None, Some(svc)) if r.reporter == Reporter::Source => svc.host.split('.').next(),
            _ => r.destination.canonical_service.as_deref(),
        };
        {
            let mut apps = self.apps();
            for (node, app) in [
                (&key.1, r.source.canonical_service.as_deref()),
                (&key.2, destination_app),
            ] {
                if node.workload != UNKNOWN && !apps.contains_key(node) {
                    apps.insert(node.clone(), bounded_name(app));
                }
            }
        }
        let slots = self.clock.window.slots;
        let edge = edges
            .entry(key)
            .or_insert_with(|| Arc::new(Edge::new(slots)));
        handle(edge, folded)
    }

    /// The graph over the windows ending at `now`.
    pub fn snapshot(&self, now: Instant) -> GraphData {
        self.snapshot_range(now, None)
    }

    /// The graph over the most recent windows covering `range` (rounded up to whole windows;
    /// at least one, at most all kept; `None`: all), for a map's time range.
    pub fn snapshot_range(&self, now: Instant, range: Option<Duration>) -> GraphData {
        let window = self.clock.window;
        let slots = match range {
            None => window.slots,
            Some(r) => {
                let n = r.as_nanos().div_ceil(window.slot.as_nanos());
                u32::try_from(n).unwrap_or(u32::MAX).clamp(1, window.slots)
            }
        };
        let oldest = self.clock.slot_of(now).saturating_sub(u64::from(slots) - 1);
        let covered = now
            .saturating_duration_since(self.clock.epoch)
            .min(window.slot * slots)
            .as_secs_f64()
            .max(1.0);
        let mut reported = Vec::new();
        let apps = self.apps().clone();
        for ((reporter, src, dst), e) in self.read().iter() {
            let c = e.counts(oldest);
            if c.requests > 0 {
                let mut e = edge(*reporter, src, dst, &c, c.requests as f64 / covered);
                let app = |n: &NodeId| apps.get(n).cloned().unwrap_or_else(|| UNKNOWN.into());
                e.source_app = app(src);
                e.destination_app = app(dst);
                reported.push(e);
            }
        }
        GraphData::from_reported(
            vec![self.instance.to_string()],
            (window.slot * slots).as_secs_f64(),
            reported,
        )
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<EdgeKey, Arc<Edge>>> {
        self.edges.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Each node's app, noted when an edge is first seen (not on the request path).
    fn apps(&self) -> MutexGuard<'_, HashMap<NodeId, String>> {
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
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
        response_codes: codes_by_name(&c.codes),
        health: EdgeHealth::of(&c.codes),
        mtls_requests: c.mtls,
        grpc_requests: c.grpc,
        source_app: UNKNOWN.into(),
        destination_app: UNKNOWN.into(),
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
            for (id, app) in [
                (&e.source, &e.source_app),
                (&e.destination, &e.destination_app),
            ] {
                let n = nodes.entry(id.clone()).or_insert_with(|| node(id));
                if n.app.is_empty() || n.app == UNKNOWN {
                    n.app.clone_from(app);
                }
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
                    codes: codes_from_names(&e.response_codes),
                    mtls: e.mtls_requests,
                    grpc: e.grpc_requests,
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
                let mut merged = edge(e.reporter, &src, &dst, &c, e.rps);
                merged.source_app = e.source_app;
                merged.destination_app = e.destination_app;
                merged
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
    let kind = if n.version == SERVICE_NODE_VERSION {
        NodeKind::Service
    } else if n.workload == UNKNOWN {
        NodeKind::Unknown
    } else {
        NodeKind::Workload
    };
    GraphNode {
        id: id.to_owned(),
        namespace: n.namespace,
        workload: n.workload,
        version: n.version,
        kind,
        app: String::new(),
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
            NodeId::destination_of(&r),
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

#[cfg(test)]
mod ring_tests {
    use std::time::SystemTime;

    use super::*;

    fn call(source: &str, code: u16) -> RequestRecord {
        let mut r = RequestRecord::new(Reporter::Destination, SystemTime::UNIX_EPOCH);
        r.source.name = Some(source.into());
        r.destination.name = Some("reviews".into());
        r.response_code = Some(code);
        r.duration = Duration::from_millis(3);
        r
    }

    fn requests(g: &ServiceGraph, now: Instant) -> Vec<(String, u64, u64)> {
        let mut edges: Vec<_> = g
            .snapshot(now)
            .reported
            .into_iter()
            .map(|e| (e.source, e.requests, e.errors))
            .collect();
        edges.sort();
        edges
    }

    /// A handle kept across windows counts into each in turn, and the ring forgets a window
    /// once it is `slots` old, as the per-edge queue of windows did before.
    #[tokio::test(start_paused = true)]
    async fn kept_handle_counts_across_windows_and_the_ring_forgets_old_ones() {
        let g = ServiceGraph::new(GraphWindow {
            slot: Duration::from_secs(10),
            slots: 3,
        });
        let handle = g.edge(&call("a", 200), Instant::now());
        for window in 0..5u64 {
            for _ in 0..=window {
                handle.record(Duration::from_millis(3), window == 4, Instant::now());
            }
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        // Windows 2, 3 and 4 (3 + 4 + 5 requests; the 5 of window 4 failed) at its end…
        let end = Instant::now() - Duration::from_secs(1);
        assert_eq!(
            requests(&g, end),
            [(String::from("unknown/a/unknown"), 12, 5)]
        );
        // …and the recording path through the graph agrees with the handle.
        g.record(&call("a", 503), end);
        assert_eq!(
            requests(&g, end),
            [(String::from("unknown/a/unknown"), 13, 6)]
        );
        // Thirty seconds after the last window nothing is left.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(requests(&g, Instant::now()).is_empty());
        // A window far older than the one in its ring position is not counted.
        let stale = g.clock.epoch + Duration::from_secs(5);
        handle.record(Duration::from_millis(3), false, Instant::now());
        handle.record(Duration::from_millis(3), false, stale);
        assert_eq!(
            requests(&g, Instant::now()),
            [(String::from("unknown/a/unknown"), 1, 0)]
        );
    }

    /// Threads counting on one edge at once (racing to open its window, too) lose no request.
    #[test]
    fn concurrent_counts_add_up() {
        let g = ServiceGraph::new(GraphWindow {
            slot: Duration::from_secs(3600),
            slots: 2,
        });
        let now = Instant::now();
        let handle = g.edge(&call("a", 200), now);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let handle = handle.clone();
                s.spawn(move || {
                    for i in 0..10_000u64 {
                        handle.record(Duration::from_millis(3), i % 10 == 0, now);
                    }
                });
            }
        });
        assert_eq!(
            requests(&g, now),
            [(String::from("unknown/a/unknown"), 40_000, 4_000)]
        );
    }

    /// A full graph folds new edges into `unknown → unknown` (and says so, so the handle is
    /// not kept), and never drops an edge a handle is kept for to make room, even a quiet one.
    #[tokio::test(start_paused = true)]
    async fn full_graph_folds_new_edges_and_keeps_held_ones() {
        let mut g = ServiceGraph::new(GraphWindow {
            slot: Duration::from_secs(10),
            slots: 1,
        });
        g.max_edges = 2;
        let held = g.edge(&call("a", 200), Instant::now());
        g.record(&call("b", 200), Instant::now());
        let folded = g.edge(&call("c", 200), Instant::now());
        assert!(folded.is_folded() && !held.is_folded());
        drop(folded);
        tokio::time::advance(Duration::from_secs(20)).await;
        // `b` is stale and unheld: it makes room for `d`; `a` stays for its handle.
        let d = g.edge(&call("d", 200), Instant::now());
        assert!(!d.is_folded());
        held.record(Duration::from_millis(3), false, Instant::now());
        d.record(Duration::from_millis(3), false, Instant::now());
        assert_eq!(
            requests(&g, Instant::now()),
            [
                (String::from("unknown/a/unknown"), 1, 0),
                (String::from("unknown/d/unknown"), 1, 0)
            ]
        );
    }
}
