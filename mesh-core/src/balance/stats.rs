//! Per-endpoint runtime state: in-flight requests, peak-EWMA latency, outlier ejection.
//!
//! The config model is immutable; what changes per request lives here, in atomics, beside it.
//! One [`EndpointStats`] exists per (cluster, address) and is shared by every balancer version
//! built for that cluster (see [`ClusterState`](super::ClusterState)), so a config swap that keeps
//! an endpoint keeps its load and latency history. A request holds an `Arc` to its endpoint's
//! stats through an [`InFlight`] guard, so an endpoint removed by a swap finishes its in-flight
//! work normally and its stats are freed with the last request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::ewma::{EwmaConfig, PeakEwma};
use crate::model::EndpointAddress;
use crate::resilience::HostOutlier;

/// Runtime state of one endpoint of one cluster.
#[derive(Debug)]
pub struct EndpointStats {
    address: EndpointAddress,
    in_flight: AtomicU32,
    ewma: PeakEwma,
    ejected: AtomicBool,
    /// The owning cluster's health generation, bumped whenever `ejected` flips so balancers
    /// recompute their healthy sets.
    health_generation: Arc<AtomicU64>,
    pub(crate) outlier: HostOutlier,
    /// When the endpoint joined the cluster (slow start counts its age from here).
    added: Instant,
}

impl EndpointStats {
    pub(crate) fn new(
        address: EndpointAddress,
        ewma: EwmaConfig,
        epoch: Instant,
        now: Instant,
        health_generation: Arc<AtomicU64>,
    ) -> Self {
        Self {
            address,
            in_flight: AtomicU32::new(0),
            ewma: PeakEwma::new(ewma, epoch, now),
            ejected: AtomicBool::new(false),
            health_generation,
            outlier: HostOutlier::default(),
            added: now,
        }
    }

    /// When the endpoint joined the cluster: the first config version that had it.
    pub fn added(&self) -> Instant {
        self.added
    }

    /// The endpoint's address (the key the state is kept under).
    pub fn address(&self) -> &EndpointAddress {
        &self.address
    }

    /// Requests sent and not yet finished.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Marks a request as started at `now`; the guard ends it when dropped or
    /// [finished](InFlight::finish).
    pub fn start(self: &Arc<Self>, now: Instant) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: Arc::clone(self),
            started: now,
        }
    }

    /// The peak-EWMA latency estimate at `now`, in nanoseconds.
    pub fn latency_estimate(&self, now: Instant) -> f64 {
        self.ewma.estimate(now)
    }

    /// The peak-EWMA load: latency estimate × (in-flight + 1), as linkerd and Finagle weigh it.
    pub fn peak_ewma_cost(&self, now: Instant) -> f64 {
        self.ewma.estimate(now) * f64::from(self.in_flight().saturating_add(1))
    }

    /// Folds a measured round-trip time into the latency estimate.
    pub fn observe_rtt(&self, rtt: Duration, now: Instant) {
        self.ewma.observe(rtt, now);
    }

    /// Whether outlier detection has ejected the endpoint.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    /// Sets the ejection flag; returns whether it changed. A change bumps the cluster's health
    /// generation so balancers rebuild their healthy sets on their next pick.
    pub(crate) fn set_ejected(&self, ejected: bool) -> bool {
        let changed = self.ejected.swap(ejected, Ordering::AcqRel) != ejected;
        if changed {
            self.health_generation.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }
}

/// A request in flight to one endpoint: counts towards the endpoint's in-flight load until
/// dropped. Holds the endpoint's stats alive, so it outlives config swaps.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the guard lives"]
pub struct InFlight {
    stats: Arc<EndpointStats>,
    started: Instant,
}

impl InFlight {
    /// The endpoint's stats.
    pub fn stats(&self) -> &Arc<EndpointStats> {
        &self.stats
    }

    /// When the request started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Ends the request at `now`, folding its round-trip time into the latency estimate.
    /// (Dropping the guard instead ends it without a latency sample, as for a cancelled call.)
    pub fn finish(self, now: Instant) {
        self.stats
            .observe_rtt(now.saturating_duration_since(self.started), now);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
