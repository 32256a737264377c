//! The per-cluster detector: counts results, ejects, and returns endpoints at sweeps.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::host::{bump, reset};
use crate::balance::{ClusterState, EndpointStats};
use crate::model::{EndpointAddress, OutlierDetection};

/// What became of one request to an endpoint, as the detector counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered with this HTTP status (for gRPC, see [`Outcome::grpc`]).
    Response(u16),
    /// A locally originated failure: connect failure, reset before a response, timeout.
    LocalFailure,
    /// A connection was established (resets local-origin failures when they are split).
    LocalSuccess,
}

impl Outcome {
    /// The outcome of a gRPC call that ended with `grpc-status` `code`, mapped to an HTTP status
    /// as Envoy's router does before outlier detection counts it (so `UNAVAILABLE` is a 503 and
    /// `DEADLINE_EXCEEDED` a 504, both gateway errors; `INTERNAL` and `UNKNOWN` are 500).
    pub fn grpc(code: u32) -> Self {
        Outcome::Response(match code {
            0 => 200,
            1 => 499,
            3 | 9 | 11 => 400,
            4 => 504,
            5 => 404,
            6 | 10 => 409,
            7 => 403,
            8 => 429,
            12 => 501,
            14 => 503,
            16 => 401,
            // 2 UNKNOWN, 13 INTERNAL, 15 DATA_LOSS, and anything unknown.
            _ => 500,
        })
    }
}

/// Which rule ejected an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EjectReason {
    /// `consecutive5xxErrors`.
    Consecutive5xx,
    /// `consecutiveGatewayErrors`.
    ConsecutiveGatewayErrors,
    /// `consecutiveLocalOriginFailures`.
    ConsecutiveLocalOriginFailures,
}

/// An ejection that just happened (for logs and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// The endpoint.
    pub address: EndpointAddress,
    /// Why.
    pub reason: EjectReason,
    /// For how long.
    pub duration: Duration,
    /// How many times it has been ejected, this one included.
    pub times: u32,
}

/// Outlier detection for one cluster version; ejection state lives in the endpoints' stats and
/// survives config swaps.
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierDetection,
    state: Arc<ClusterState>,
    decide: Mutex<()>,
}

impl OutlierDetector {
    /// A detector applying `config` to the endpoints of `state`.
    pub fn new(config: OutlierDetection, state: Arc<ClusterState>) -> Self {
        Self {
            config,
            state,
            decide: Mutex::new(()),
        }
    }

    /// How often [`sweep`](Self::sweep) should run.
    pub fn interval(&self) -> Duration {
        self.config.interval
    }

    /// Counts one result of a request to `endpoint` at `now`; returns the ejection it caused,
    /// if any.
    pub fn report(
        &self,
        endpoint: &EndpointStats,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Ejection> {
        let c = &self.config;
        let host = &endpoint.outlier;
        let status = match outcome {
            Outcome::Response(status) => status,
            Outcome::LocalFailure if c.split_external_local_origin_errors => {
                if bump(&host.consecutive_local, c.consecutive_local_origin_failures) {
                    return self.eject(endpoint, EjectReason::ConsecutiveLocalOriginFailures, now);
                }
                return None;
            }
            // Not split: a local failure is a 503 (Envoy maps connect failures so).
            Outcome::LocalFailure => 503,
            Outcome::LocalSuccess => {
                if c.split_external_local_origin_errors {
                    reset(&host.consecutive_local);
                }
                return None;
            }
        };
        if !(500..600).contains(&status) {
            reset(&host.consecutive_5xx);
            reset(&host.consecutive_gateway);
            return None;
        }
        let gateway = matches!(status, 502..=504);
        let gateway_fired = if gateway {
            bump(&host.consecutive_gateway, c.consecutive_gateway_errors)
        } else {
            reset(&host.consecutive_gateway);
            false
        };
        let fired_5xx = bump(&host.consecutive_5xx, c.consecutive_5xx);
        // As Envoy, a streak that reached its threshold starts over whether or not the ejection
        // is allowed, so a refused endpoint is considered again after another full streak.
        if gateway_fired {
            reset(&host.consecutive_gateway);
        }
        if fired_5xx {
            reset(&host.consecutive_5xx);
        }
        if gateway_fired {
            self.eject(endpoint, EjectReason::ConsecutiveGatewayErrors, now)
        } else if fired_5xx {
            self.eject(endpoint, EjectReason::Consecutive5xx, now)
        } else {
            None
        }
    }

    /// Ends ejections whose time is up and lowers the ejection-time multiplier of endpoints that
    /// stayed healthy; run every [`interval`](Self::interval). Returns the endpoints returned
    /// to service.
    pub fn sweep(&self, now: Instant) -> Vec<EndpointAddress> {
        let _decide = self.decide.lock().unwrap_or_else(PoisonError::into_inner);
        let mut returned = Vec::new();
        for endpoint in self.state.endpoints().iter() {
            let mut record = endpoint.outlier.record();
            match record.current {
                Some((since, duration)) => {
                    if now.saturating_duration_since(since) >= duration {
                        record.current = None;
                        endpoint.outlier.reset_counters();
                        endpoint.set_ejected(false);
                        returned.push(endpoint.address().clone());
                    }
                }
                None => record.backoff = record.backoff.saturating_sub(1),
            }
        }
        returned
    }

    /// Endpoints of the cluster currently ejected.
    pub fn ejected(&self) -> usize {
        self.state
            .endpoints()
            .iter()
            .filter(|e| e.is_ejected())
            .count()
    }

    fn eject(
        &self,
        endpoint: &EndpointStats,
        reason: EjectReason,
        now: Instant,
    ) -> Option<Ejection> {
        let c = &self.config;
        let _decide = self.decide.lock().unwrap_or_else(PoisonError::into_inner);
        let endpoints = self.state.endpoints();
        // An endpoint a config swap removed is no longer balanced; nothing to eject.
        if !endpoints.iter().any(|e| std::ptr::eq(&**e, endpoint)) || endpoint.is_ejected() {
            return None;
        }
        let ejected = endpoints.iter().filter(|e| e.is_ejected()).count() as u64;
        let total = endpoints.len() as u64;
        let within = 100 * (ejected + 1) <= u64::from(c.max_ejection_percent.min(100)) * total;
        if !within && ejected > 0 {
            return None;
        }
        let base = c.base_ejection_time;
        let cap = base.max(c.max_ejection_time);
        let mut record = endpoint.outlier.record();
        let multiplier = record.backoff.saturating_add(1);
        let duration = base.saturating_mul(multiplier).min(cap);
        // Grow the multiplier only while the cap is not reached, so healthy intervals bring the
        // time down again promptly.
        if base.saturating_mul(multiplier) < cap {
            record.backoff = multiplier;
        }
        record.times = record.times.saturating_add(1);
        record.current = Some((now, duration));
        let times = record.times;
        drop(record);
        endpoint.outlier.reset_counters();
        endpoint.set_ejected(true);
        Some(Ejection {
            address: endpoint.address().clone(),
            reason,
            duration,
            times,
        })
    }
}
