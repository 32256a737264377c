//! Retry budgets: retries may be at most a share of the requests in flight.
//!
//! A fixed retry count per request (`attempts: 3`) turns a struggling upstream into a storm:
//! when everything fails, every request is sent four times. A budget bounds the *extra* load
//! instead: Envoy's `retry_budget`
//! (<https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/circuit_breaker.proto#config-cluster-v3-circuitbreakers-thresholds-retrybudget>)
//! allows a retry while concurrent retries stay below
//! `max(min_retry_concurrency, budget_percent × active requests)`, 20 % and 3 by default. So a
//! healthy cluster retries freely, and a failing one receives at most 20 % more traffic.
//! Istio's `http.maxRetries` (Envoy's `max_retries` circuit breaker) is enforced as well: a
//! retry needs room under both.
//!
//! Counts live in atomics and are held by RAII guards, so an early return or a cancelled future
//! can never leak a count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::model;

/// Why a retry was not allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryDenied {
    /// The budget's share of active requests is used up.
    #[error("retry budget exhausted: {active_retries} retries active, {allowed} allowed")]
    Budget {
        /// Retries in flight.
        active_retries: u32,
        /// Retries the budget allows now.
        allowed: u32,
    },
    /// The `maxRetries` circuit-breaker limit is reached.
    #[error("max retries reached: {limit} retries active")]
    MaxRetries {
        /// The limit.
        limit: u32,
    },
}

#[derive(Debug)]
struct Counters {
    budget_percent: u32,
    min_retry_concurrency: u32,
    max_retries: u32,
    active_requests: AtomicU32,
    active_retries: AtomicU32,
}

/// A cluster's retry budget; cheap to clone (clones share the counts).
#[derive(Clone, Debug)]
pub struct RetryBudget {
    counters: Arc<Counters>,
}

impl RetryBudget {
    /// A budget with `budget`'s share and minimum, and the `max_retries` limit.
    pub fn new(budget: &model::RetryBudget, max_retries: u32) -> Self {
        Self {
            counters: Arc::new(Counters {
                budget_percent: budget.budget_percent.min(100),
                min_retry_concurrency: budget.min_retry_concurrency,
                max_retries,
                active_requests: AtomicU32::new(0),
                active_retries: AtomicU32::new(0),
            }),
        }
    }

    /// Counts a request as active until the guard drops. Hold it across all attempts of the
    /// request.
    pub fn start_request(&self) -> ActiveRequest {
        self.counters
            .active_requests
            .fetch_add(1, Ordering::Relaxed);
        ActiveRequest {
            counters: Arc::clone(&self.counters),
        }
    }

    /// Admits one retry if the budget and `maxRetries` allow it; the retry counts as active
    /// until the guard drops.
    pub fn try_retry(&self) -> Result<ActiveRetry, RetryDenied> {
        let c = &self.counters;
        let mut current = c.active_retries.load(Ordering::Relaxed);
        loop {
            if current >= c.max_retries {
                return Err(RetryDenied::MaxRetries {
                    limit: c.max_retries,
                });
            }
            let allowed = self.allowed();
            if current >= allowed {
                return Err(RetryDenied::Budget {
                    active_retries: current,
                    allowed,
                });
            }
            match c.active_retries.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(ActiveRetry {
                        counters: Arc::clone(&self.counters),
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Concurrent retries the budget allows now:
    /// `max(min_retry_concurrency, budget_percent × active_requests / 100)`.
    pub fn allowed(&self) -> u32 {
        let c = &self.counters;
        let active = u64::from(c.active_requests.load(Ordering::Relaxed));
        let share = u32::try_from(active * u64::from(c.budget_percent) / 100).unwrap_or(u32::MAX);
        share.max(c.min_retry_concurrency)
    }

    /// Requests currently active.
    pub fn active_requests(&self) -> u32 {
        self.counters.active_requests.load(Ordering::Relaxed)
    }

    /// Retries currently active.
    pub fn active_retries(&self) -> u32 {
        self.counters.active_retries.load(Ordering::Relaxed)
    }
}

/// An active request; releases its count when dropped.
#[derive(Debug)]
#[must_use = "the request counts as active only while the guard lives"]
pub struct ActiveRequest {
    counters: Arc<Counters>,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.counters
            .active_requests
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// An active retry; releases its count when dropped.
#[derive(Debug)]
#[must_use = "the retry counts as active only while the guard lives"]
pub struct ActiveRetry {
    counters: Arc<Counters>,
}

impl Drop for ActiveRetry {
    fn drop(&mut self) {
        self.counters.active_retries.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(percent: u32, min: u32, max_retries: u32) -> RetryBudget {
        RetryBudget::new(
            &model::RetryBudget {
                budget_percent: percent,
                min_retry_concurrency: min,
            },
            max_retries,
        )
    }

    #[test]
    fn minimum_concurrency_applies_with_little_traffic() {
        let b = budget(20, 3, u32::MAX);
        let _r = b.start_request();
        let retries: Vec<_> = (0..3).map(|_| b.try_retry().unwrap()).collect();
        assert_eq!(
            b.try_retry().unwrap_err(),
            RetryDenied::Budget {
                active_retries: 3,
                allowed: 3
            }
        );
        drop(retries);
        assert_eq!(b.active_retries(), 0);
        assert!(b.try_retry().is_ok());
    }

    #[test]
    fn share_of_active_requests_applies_under_load() {
        let b = budget(20, 3, u32::MAX);
        let requests: Vec<_> = (0..100).map(|_| b.start_request()).collect();
        assert_eq!(b.allowed(), 20);
        let retries: Vec<_> = (0..20).map(|_| b.try_retry().unwrap()).collect();
        assert!(matches!(b.try_retry(), Err(RetryDenied::Budget { .. })));
        drop(requests);
        assert_eq!(b.active_requests(), 0);
        assert_eq!(b.allowed(), 3);
        drop(retries);
    }

    #[test]
    fn max_retries_caps_the_budget() {
        let b = budget(100, 10, 2);
        let _a = b.try_retry().unwrap();
        let _b = b.try_retry().unwrap();
        assert_eq!(
            b.try_retry().unwrap_err(),
            RetryDenied::MaxRetries { limit: 2 }
        );
    }
}
