//! The load generator: an open loop at a constant rate (no coordinated omission) and a closed
//! loop for the maximum rate, both over the same set of connections.
//!
//! The open loop's schedule is kept by a dedicated thread that sleeps until each request's
//! intended start and hands it to the runtime; latency is measured from the intended start, so
//! a stalled server or client shows as latency rather than as fewer requests. How late the
//! scheduler itself dispatches (the OS timer's slack) is reported separately: it is the same
//! for every arm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::client::Client;
use mesh_benches::e2e::greeter::proto::HelloRequest;

/// A call that has not answered after this long is counted as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What an open-loop run measured.
#[derive(Debug)]
pub struct OpenLoop {
    /// Latency from intended start to response, in microseconds (successful calls).
    pub latency: Histogram<u64>,
    /// Dispatch lateness of the scheduler (actual minus intended send), in microseconds.
    pub lateness: Histogram<u64>,
    /// Calls answered successfully.
    pub ok: u64,
    /// Calls failed or timed out.
    pub failed: u64,
}

/// What a closed-loop run measured.
#[derive(Debug)]
pub struct ClosedLoop {
    /// Latency of each call, in microseconds.
    pub latency: Histogram<u64>,
    /// Calls answered successfully.
    pub ok: u64,
    /// Calls failed.
    pub failed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits; these bounds are valid constants.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!())
}

fn request(payload: Bytes) -> HelloRequest {
    HelloRequest {
        name: "bench".to_owned(),
        payload,
    }
}

/// One call; true when it answered OK.
async fn call(client: Client, payload: Bytes) -> bool {
    try_call(client, payload).await.is_ok()
}

/// One call; the error says why it failed.
async fn try_call(client: Client, payload: Bytes) -> Result<(), String> {
    match client {
        Client::Grpc(mut client) => {
            let request = request(payload);
            match tokio::time::timeout(CALL_TIMEOUT, client.say_hello(request)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(status)) => Err(status.to_string()),
                Err(_) => Err(format!("no answer in {CALL_TIMEOUT:?}")),
            }
        }
        Client::Http(client) => {
            match tokio::time::timeout(CALL_TIMEOUT, client.echo(payload)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer in {CALL_TIMEOUT:?}")),
            }
        }
    }
}

/// Sends `rate` requests per second for `duration`, request `k` on connection `k % n`, each at
/// its intended time whatever the state of earlier ones, and waits for all answers.
pub async fn open_loop(
    clients: &[Client],
    rate: u32,
    duration: Duration,
    payload: Bytes,
) -> OpenLoop {
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let latency = Arc::new(Mutex::new(histogram()));
    let handle = tokio::runtime::Handle::current();
    let clients = clients.to_vec();
    let (latency2, payload2) = (latency.clone(), payload.clone());
    let scheduler = std::thread::spawn(move || {
        let mut lateness = histogram();
        let mut tasks = Vec::with_capacity(total as usize);
        let start = Instant::now() + Duration::from_millis(1);
        for k in 0..total {
            let intended = start + interval.mul_f64(k as f64);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            let late = Instant::now().saturating_duration_since(intended);
            let _ = lateness.record(late.as_micros() as u64);
            let client = clients[(k as usize) % clients.len()].clone();
            let (latency, payload) = (latency2.clone(), payload2.clone());
            tasks.push(handle.spawn(async move {
                let ok = call(client, payload).await;
                if ok {
                    let us = intended.elapsed().as_micros() as u64;
                    if let Ok(mut h) = latency.lock() {
                        let _ = h.record(us.max(1));
                    }
                }
                ok
            }));
        }
        (tasks, lateness)
    });
    let (tasks, lateness) = match tokio::task::spawn_blocking(move || scheduler.join()).await {
        Ok(Ok(done)) => done,
        _ => (Vec::new(), histogram()),
    };
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        match task.await {
            Ok(true) => ok += 1,
            _ => failed += 1,
        }
    }
    let latency = latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    OpenLoop {
        latency,
        lateness,
        ok,
        failed,
    }
}

/// Keeps `concurrency` calls in flight (worker `w` on connection `w % n`) for `duration`.
pub async fn closed_loop(
    clients: &[Client],
    concurrency: usize,
    duration: Duration,
    payload: Bytes,
) -> ClosedLoop {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let client = clients[w % clients.len()].clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let (mut h, mut ok, mut failed) = (histogram(), 0u64, 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if call(client.clone(), payload.clone()).await {
                        ok += 1;
                        let _ = h.record((t.elapsed().as_micros() as u64).max(1));
                    } else {
                        failed += 1;
                    }
                }
                (h, ok, failed)
            })
        })
        .collect();
    let mut result = ClosedLoop {
        latency: histogram(),
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        if let Ok((h, ok, failed)) = worker.await {
            let _ = result.latency.add(&h);
            result.ok += ok;
            result.failed += failed;
        }
    }
    result.elapsed = start.elapsed();
    result
}

/// `n` calls spread over every connection, to open connections and warm caches; the number
/// that succeeded and the last error.
pub async fn warm_up(clients: &[Client], n: usize, payload: Bytes) -> (u64, Option<String>) {
    let (mut ok, mut error) = (0, None);
    for i in 0..n {
        match try_call(clients[i % clients.len()].clone(), payload.clone()).await {
            Ok(()) => ok += 1,
            Err(e) => error = Some(e),
        }
    }
    (ok, error)
}
