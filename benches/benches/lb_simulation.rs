//! Discrete-event simulation: 10 endpoints, one 5× slower, under round robin, least request and
//! peak EWMA. Uses the real balancer and real stats updates in simulated time (no sleeping), and
//! prints latency percentiles side by side.
//!
//! Model: each endpoint serves up to 4 requests at once (more wait in its FIFO queue); service
//! times are exponential with mean 10 ms (50 ms for the slow one); requests arrive as a Poisson
//! process. A request's latency is queueing plus service, and is what the client observes and
//! feeds into the peak-EWMA estimate.
//!
//! Run: `cargo bench -p mesh-benches --bench lb_simulation`

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use mesh_benches::cluster;
use mesh_core::balance::{Balancer, ClientLocality, ClusterState, InFlight, PickContext};
use mesh_core::model::LbPolicy;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

const ENDPOINTS: usize = 10;
const SLOW: usize = 7;
const WORKERS: usize = 4;
const FAST_MEAN_NS: f64 = 10e6;
const SLOW_MEAN_NS: f64 = 50e6;
const REQUESTS: usize = 200_000;

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival,
    /// A request finished service at an endpoint.
    Done {
        endpoint: usize,
        request: usize,
    },
}

struct Endpoint {
    busy: usize,
    queue: VecDeque<usize>,
}

struct Report {
    p50: f64,
    p99: f64,
    p999: f64,
    slow_share: f64,
}

fn exp(rng: &mut SmallRng, mean_ns: f64) -> u64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (-u.ln() * mean_ns) as u64
}

fn simulate(lb: LbPolicy, rate_per_s: f64, seed: u64) -> Report {
    let t0 = Instant::now();
    let cluster = cluster(lb, ENDPOINTS);
    let state = ClusterState::new(cluster.name.clone(), t0);
    let balancer =
        Balancer::new(&cluster, &state, &ClientLocality::default(), t0).expect("valid cluster");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut events: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |events: &mut BinaryHeap<_>, at: u64, e: Event| {
        seq += 1;
        events.push(Reverse((at, seq, e)));
    };
    let mut endpoints: Vec<Endpoint> = (0..ENDPOINTS)
        .map(|_| Endpoint {
            busy: 0,
            queue: VecDeque::new(),
        })
        .collect();
    let mut guards: Vec<Option<InFlight>> = Vec::with_capacity(REQUESTS);
    let mut latencies: Vec<u64> = Vec::with_capacity(REQUESTS);
    let mut started: Vec<u64> = Vec::with_capacity(REQUESTS);
    let mut to_slow = 0usize;
    let mean_gap_ns = 1e9 / rate_per_s;
    push(&mut events, 0, Event::Arrival);
    let service = |rng: &mut SmallRng, endpoint: usize| {
        exp(
            rng,
            if endpoint == SLOW {
                SLOW_MEAN_NS
            } else {
                FAST_MEAN_NS
            },
        )
    };
    while let Some(Reverse((t, _, event))) = events.pop() {
        let now = t0 + Duration::from_nanos(t);
        match event {
            Event::Arrival => {
                let request = guards.len();
                let endpoint = balancer
                    .pick(&PickContext::new(now), &mut rng)
                    .expect("all endpoints healthy");
                to_slow += usize::from(endpoint == SLOW);
                guards.push(Some(balancer.stats(endpoint).expect("in range").start(now)));
                started.push(t);
                let ep = &mut endpoints[endpoint];
                if ep.busy < WORKERS {
                    ep.busy += 1;
                    let done = t + service(&mut rng, endpoint);
                    push(&mut events, done, Event::Done { endpoint, request });
                } else {
                    ep.queue.push_back(request);
                }
                if guards.len() < REQUESTS {
                    let next = t + exp(&mut rng, mean_gap_ns);
                    push(&mut events, next, Event::Arrival);
                }
            }
            Event::Done { endpoint, request } => {
                if let Some(guard) = guards[request].take() {
                    guard.finish(now);
                }
                latencies.push(t - started[request]);
                let ep = &mut endpoints[endpoint];
                match ep.queue.pop_front() {
                    Some(next) => {
                        let done = t + service(&mut rng, endpoint);
                        push(
                            &mut events,
                            done,
                            Event::Done {
                                endpoint,
                                request: next,
                            },
                        );
                    }
                    None => ep.busy -= 1,
                }
            }
        }
    }
    latencies.sort_unstable();
    let q = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1e6
    };
    Report {
        p50: q(0.50),
        p99: q(0.99),
        p999: q(0.999),
        slow_share: to_slow as f64 / REQUESTS as f64,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported, so ignore arguments.
    println!(
        "{ENDPOINTS} endpoints x {WORKERS} workers, service ~exp(10 ms), endpoint {SLOW} ~exp(50 ms); \
         {REQUESTS} requests per run, Poisson arrivals; latencies in ms (simulated time)\n"
    );
    println!(
        "| load | policy | p50 | p99 | p99.9 | share to slow |\n| --- | --- | ---: | ---: | ---: | ---: |"
    );
    for rate in [700.0, 2000.0] {
        for (name, lb) in [
            ("round_robin", LbPolicy::RoundRobin),
            ("least_request", LbPolicy::LeastRequest),
            ("peak_ewma", LbPolicy::PeakEwma),
        ] {
            let r = simulate(lb, rate, 7);
            println!(
                "| {rate} rps | {name} | {:.1} | {:.1} | {:.1} | {:.1} % |",
                r.p50,
                r.p99,
                r.p999,
                r.slow_share * 100.0
            );
        }
    }
}
