//! Circuit breaking: the connection-pool limits of a cluster (Istio `connectionPool`, Envoy's
//! circuit breaker thresholds,
//! <https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/circuit_breaking>).
//!
//! Each limit is an atomic counter, admitted by compare-and-swap so it is never exceeded, and
//! released by an RAII [`Permit`]. Exceeding a connection, pending-request or request limit is an
//! overflow: the request fails fast with 503 and response flag `UO`. A retry refused by
//! `maxRetries` or the retry budget is not an error of the request: as in Envoy, the request
//! simply is not retried and the last response stands (the overflow names which limit for
//! stats).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::retry_budget::{ActiveRequest, ActiveRetry, RetryBudget, RetryDenied};
use crate::model::{self, ConnectionPool};

/// The limit an overflow hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `tcp.maxConnections`.
    Connections,
    /// `http.http1MaxPendingRequests`.
    PendingRequests,
    /// `http.http2MaxRequests`.
    Requests,
    /// `http.maxRetries`.
    Retries,
    /// The retry budget.
    RetryBudget,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Connections => "max_connections",
            Limit::PendingRequests => "max_pending_requests",
            Limit::Requests => "max_requests",
            Limit::Retries => "max_retries",
            Limit::RetryBudget => "retry_budget",
        })
    }
}

/// A circuit-breaker overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker overflow: {limit} limit of {max} reached")]
pub struct Overflow {
    /// Which limit.
    pub limit: Limit,
    /// Its value at the time.
    pub max: u32,
}

impl Overflow {
    /// Envoy's response flag for an overflow.
    pub const RESPONSE_FLAG: &'static str = "UO";
}

#[derive(Debug)]
struct Counters {
    max_connections: u32,
    max_pending: u32,
    max_requests: u32,
    connections: AtomicU32,
    pending: AtomicU32,
    requests: AtomicU32,
}

impl Counters {
    fn counter(&self, limit: Limit) -> Option<(&AtomicU32, u32)> {
        match limit {
            Limit::Connections => Some((&self.connections, self.max_connections)),
            Limit::PendingRequests => Some((&self.pending, self.max_pending)),
            Limit::Requests => Some((&self.requests, self.max_requests)),
            Limit::Retries | Limit::RetryBudget => None,
        }
    }
}

/// A cluster's circuit breaker; cheap to clone (clones share the counts).
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    counters: Arc<Counters>,
    retries: RetryBudget,
}

impl CircuitBreaker {
    /// A breaker with `pool`'s limits and `budget` for retries.
    pub fn new(pool: &ConnectionPool, budget: &model::RetryBudget) -> Self {
        Self {
            counters: Arc::new(Counters {
                max_connections: pool.max_connections,
                max_pending: pool.max_pending_requests,
                max_requests: pool.max_requests,
                connections: AtomicU32::new(0),
                pending: AtomicU32::new(0),
                requests: AtomicU32::new(0),
            }),
            retries: RetryBudget::new(budget, pool.max_retries),
        }
    }

    /// Admits a new connection, held open while the permit lives.
    pub fn try_connection(&self) -> Result<Permit, Overflow> {
        self.acquire(Limit::Connections)
    }

    /// Admits a request waiting for a connection, while the permit lives.
    pub fn try_pending(&self) -> Result<Permit, Overflow> {
        self.acquire(Limit::PendingRequests)
    }

    /// Admits a request, active (for the request limit and the retry budget) while the permit
    /// lives. Hold it across all attempts.
    pub fn try_request(&self) -> Result<RequestPermit, Overflow> {
        let permit = self.acquire(Limit::Requests)?;
        Ok(RequestPermit {
            _permit: permit,
            _active: self.retries.start_request(),
        })
    }

    /// Admits a retry under `maxRetries` and the retry budget.
    pub fn try_retry(&self) -> Result<ActiveRetry, Overflow> {
        self.retries.try_retry().map_err(|denied| match denied {
            RetryDenied::MaxRetries { limit } => Overflow {
                limit: Limit::Retries,
                max: limit,
            },
            RetryDenied::Budget { allowed, .. } => Overflow {
                limit: Limit::RetryBudget,
                max: allowed,
            },
        })
    }

    /// Current count under `limit`.
    pub fn active(&self, limit: Limit) -> u32 {
        match self.counters.counter(limit) {
            Some((counter, _)) => counter.load(Ordering::Relaxed),
            None => self.retries.active_retries(),
        }
    }

    /// The retry budget.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.retries
    }

    fn acquire(&self, limit: Limit) -> Result<Permit, Overflow> {
        let Some((counter, max)) = self.counters.counter(limit) else {
            return Err(Overflow { limit, max: 0 });
        };
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| Overflow { limit, max })?;
        Ok(Permit {
            counters: Arc::clone(&self.counters),
            limit,
        })
    }
}

/// A connection or pending-request slot; released when dropped.
#[derive(Debug)]
#[must_use = "the slot is held only while the permit lives"]
pub struct Permit {
    counters: Arc<Counters>,
    limit: Limit,
}

impl Permit {
    /// The limit this permit counts against.
    pub fn limit(&self) -> Limit {
        self.limit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((counter, _)) = self.counters.counter(self.limit) {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// An admitted request: holds its request slot and its place in the retry budget.
#[derive(Debug)]
#[must_use = "the request is admitted only while the permit lives"]
pub struct RequestPermit {
    _permit: Permit,
    _active: ActiveRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(connections: u32, pending: u32, requests: u32, retries: u32) -> CircuitBreaker {
        CircuitBreaker::new(
            &ConnectionPool {
                max_connections: connections,
                max_pending_requests: pending,
                max_requests: requests,
                max_retries: retries,
                ..ConnectionPool::default()
            },
            &model::RetryBudget::default(),
        )
    }

    #[test]
    fn each_limit_overflows_by_name() {
        let b = breaker(1, 2, 3, 1);
        let _c = b.try_connection().unwrap();
        assert_eq!(
            b.try_connection().unwrap_err(),
            Overflow {
                limit: Limit::Connections,
                max: 1
            }
        );
        let _p: Vec<_> = (0..2).map(|_| b.try_pending().unwrap()).collect();
        assert_eq!(b.try_pending().unwrap_err().limit, Limit::PendingRequests);
        let r: Vec<_> = (0..3).map(|_| b.try_request().unwrap()).collect();
        let err = b.try_request().unwrap_err();
        assert_eq!(err.limit, Limit::Requests);
        assert_eq!(
            err.to_string(),
            "circuit breaker overflow: max_requests limit of 3 reached"
        );
        assert_eq!(b.retry_budget().active_requests(), 3);
        let _retry = b.try_retry().unwrap();
        assert_eq!(b.try_retry().unwrap_err().limit, Limit::Retries);
        drop(r);
        assert_eq!(b.active(Limit::Requests), 0);
        assert_eq!(b.retry_budget().active_requests(), 0);
        assert!(b.try_request().is_ok());
    }

    #[test]
    fn concurrent_admission_never_exceeds_the_limit() {
        let b = breaker(u32::MAX, u32::MAX, 8, u32::MAX);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let b = b.clone();
                s.spawn(move || {
                    for _ in 0..2_000 {
                        if let Ok(p) = b.try_request() {
                            assert!(b.active(Limit::Requests) <= 8);
                            drop(p);
                        }
                    }
                });
            }
        });
        assert_eq!(b.active(Limit::Requests), 0);
    }
}
