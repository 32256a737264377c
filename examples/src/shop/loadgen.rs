//! The built-in load generator: open loop at a fixed rate, bounded in time and in requests in
//! flight, through its own mesh client (it is a workload too: `shop/loadgen`, over mutual TLS).
//!
//! Request `i` of every 20: one calls `/api/refund` (frontend → payment directly, which the
//! AuthorizationPolicy denies), two carry `end-user: jason` (the header route to v2), the rest
//! are plain orders split by the canary weights.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_tower::client::MeshClient;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tower::ServiceExt;

use super::frontend::{ErrorView, OrderView};
use super::plan::HTTP_PORT;

/// Requests in flight at most; a tick that finds none free is counted as skipped.
const MAX_IN_FLIGHT: usize = 256;
/// Bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests sent one after the other before the timed load, one of each kind, so connections
/// are up before the rate starts.
const WARM_UP: u64 = 20;
/// Bound on waiting for the requests in flight at the end.
const DRAIN: Duration = Duration::from_secs(15);

/// How hard and how long to load.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Requests per second.
    pub rps: u32,
    /// How long; `None` until stopped.
    pub duration: Option<Duration>,
}

/// Orders and their canary versions, per weights in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Split {
    /// Served by inventory v1.
    pub v1: u64,
    /// Served by inventory v2.
    pub v2: u64,
}

/// What the load generator saw.
#[derive(Clone, Debug, Default)]
pub struct LoadStats {
    /// Requests sent.
    pub sent: u64,
    /// Ticks skipped because too many requests were in flight.
    pub skipped: u64,
    /// Orders answered 200.
    pub orders_ok: u64,
    /// Orders that failed, by reason.
    pub failures: BTreeMap<String, u64>,
    /// Plain orders per canary weights (v1, v2) in force at checkout.
    pub canary: BTreeMap<(u32, u32), Split>,
    /// Orders sent as `end-user: jason`.
    pub jason: Split,
    /// Direct calls to payment attempted.
    pub direct_payment: u64,
    /// Of those, denied with `PERMISSION_DENIED`.
    pub denied: u64,
}

impl LoadStats {
    /// Plain orders per inventory version, over all weights.
    pub fn split(&self) -> Split {
        self.canary.values().fold(Split::default(), |a, s| Split {
            v1: a.v1 + s.v1,
            v2: a.v2 + s.v2,
        })
    }

    fn fail(&mut self, reason: String) {
        *self.failures.entry(reason).or_default() += 1;
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Order,
    Jason,
    Refund,
}

impl Kind {
    fn of(i: u64) -> Self {
        match i % 20 {
            19 => Kind::Refund,
            4 | 14 => Kind::Jason,
            _ => Kind::Order,
        }
    }
}

/// Sends [`WARM_UP`] requests one by one, then load through `client` until `load.duration`
/// passes or `stop` completes; waits for the requests in flight (bounded, the rest are counted
/// as failed) and returns what it saw. Prints a progress line a second.
pub async fn run(
    client: MeshClient,
    load: Load,
    stop: impl std::future::Future<Output = ()>,
) -> LoadStats {
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    tokio::pin!(stop);
    for i in 0..WARM_UP {
        let kind = Kind::of(i);
        let outcome = tokio::select! {
            biased;
            () = &mut stop => return lock(&stats).clone(),
            outcome = tokio::time::timeout(REQUEST_TIMEOUT, call(client.clone(), kind)) => outcome,
        };
        let mut s = lock(&stats);
        s.sent += 1;
        record(
            &mut s,
            kind,
            outcome.unwrap_or_else(|_| Outcome::Failed("timeout".into())),
        );
    }
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let period = Duration::from_secs(1) / load.rps.max(1);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut progress =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let end = load.duration.map(|d| start + d);
    let deadline = async {
        match end {
            Some(end) => tokio::time::sleep_until(end).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut i = WARM_UP;
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            () = &mut deadline => break,
            _ = progress.tick() => print_progress(start, &lock(&stats)),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = ticks.tick() => {
                let kind = Kind::of(i);
                i += 1;
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    lock(&stats).skipped += 1;
                    continue;
                };
                lock(&stats).sent += 1;
                let (client, stats) = (client.clone(), stats.clone());
                tasks.spawn(async move {
                    let outcome = tokio::time::timeout(REQUEST_TIMEOUT, call(client, kind)).await;
                    let outcome = outcome.unwrap_or_else(|_| Outcome::Failed("timeout".into()));
                    record(&mut lock(&stats), kind, outcome);
                    drop(permit);
                });
            }
        }
    }
    let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    let abandoned = tasks.len() as u64;
    tasks.abort_all();
    let mut stats = lock(&stats).clone();
    if abandoned > 0 {
        *stats
            .failures
            .entry("still in flight at exit".to_owned())
            .or_default() += abandoned;
    }
    stats
}

fn lock(stats: &Mutex<LoadStats>) -> std::sync::MutexGuard<'_, LoadStats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

fn print_progress(start: Instant, s: &LoadStats) {
    let split = s.split();
    let failed: u64 = s.failures.values().sum();
    eprintln!(
        "progress: elapsed_s={} sent={} ok={} failed={failed} denied={} v1={} v2={}",
        start.elapsed().as_secs(),
        s.sent,
        s.orders_ok,
        s.denied,
        split.v1,
        split.v2,
    );
}

enum Outcome {
    Order(OrderView),
    Denied(String),
    Allowed,
    Failed(String),
}

async fn call(client: MeshClient, kind: Kind) -> Outcome {
    let path = match kind {
        Kind::Refund => "/api/refund",
        Kind::Order | Kind::Jason => "/api/checkout?item=book",
    };
    let mut request = Request::get(format!("http://frontend:{HTTP_PORT}{path}"));
    if let Kind::Jason = kind {
        request = request.header(super::checkout::END_USER, "jason");
    }
    let request = match request.body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("request: {e}")),
    };
    let Ok(response) = client.oneshot(request).await;
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Outcome::Failed(format!("body: {e}")),
    };
    match (kind, status) {
        (Kind::Refund, StatusCode::FORBIDDEN) => match serde_json::from_slice::<ErrorView>(&body) {
            Ok(e) if e.grpc_status == "PERMISSION_DENIED" => Outcome::Denied(e.message),
            _ => Outcome::Failed(format!("refund: 403 {}", String::from_utf8_lossy(&body))),
        },
        (Kind::Refund, s) if s.is_success() => Outcome::Allowed,
        (_, StatusCode::OK) => match serde_json::from_slice::<OrderView>(&body) {
            Ok(order) => Outcome::Order(order),
            Err(e) => Outcome::Failed(format!("order: {e}")),
        },
        (_, s) => {
            let reason = serde_json::from_slice::<ErrorView>(&body)
                .map(|e| e.grpc_status)
                .unwrap_or_else(|_| "no body".to_owned());
            Outcome::Failed(format!("HTTP {} {reason}", s.as_u16()))
        }
    }
}

fn record(s: &mut LoadStats, kind: Kind, outcome: Outcome) {
    match (kind, outcome) {
        (Kind::Refund, Outcome::Denied(message)) => {
            if s.denied == 0 {
                eprintln!("shop: frontend → payment directly: PERMISSION_DENIED ({message})");
            }
            s.direct_payment += 1;
            s.denied += 1;
        }
        (Kind::Refund, Outcome::Allowed) => {
            s.direct_payment += 1;
            s.fail("direct call to payment allowed".into());
        }
        (Kind::Refund, Outcome::Failed(reason)) => {
            s.direct_payment += 1;
            s.fail(reason);
        }
        (kind, Outcome::Order(order)) => {
            s.orders_ok += 1;
            let split = match kind {
                Kind::Jason => &mut s.jason,
                _ => s.canary.entry(order.weights).or_default(),
            };
            match order.inventory_version.as_str() {
                "v1" => split.v1 += 1,
                "v2" => split.v2 += 1,
                other => s.fail(format!("inventory version {other:?}")),
            }
        }
        (_, Outcome::Failed(reason)) => s.fail(reason),
        (_, Outcome::Denied(_) | Outcome::Allowed) => s.fail("unexpected answer".into()),
    }
}
