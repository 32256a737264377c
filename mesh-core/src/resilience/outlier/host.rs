//! Outlier-detection state of one endpoint, kept in its [`EndpointStats`](crate::balance::EndpointStats)
//! so it survives config swaps.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Consecutive-error counters (lock-free) and the ejection record (behind a tiny mutex taken
/// only on ejection and sweep).
#[derive(Debug, Default)]
pub(crate) struct HostOutlier {
    pub(super) consecutive_5xx: AtomicU32,
    pub(super) consecutive_gateway: AtomicU32,
    pub(super) consecutive_local: AtomicU32,
    record: Mutex<EjectionRecord>,
}

/// When and for how long an endpoint is ejected, and its ejection-time multiplier.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct EjectionRecord {
    /// When the current ejection started and how long it lasts.
    pub(super) current: Option<(Instant, Duration)>,
    /// Multiplier of the base ejection time for the next ejection, minus one.
    pub(super) backoff: u32,
    /// Ejections so far.
    pub(super) times: u32,
}

impl HostOutlier {
    pub(super) fn record(&self) -> MutexGuard<'_, EjectionRecord> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn reset_counters(&self) {
        reset(&self.consecutive_5xx);
        reset(&self.consecutive_gateway);
        reset(&self.consecutive_local);
    }
}

/// Zeroes a counter, writing only if it is not zero already (keeps the cache line shared in the
/// common all-good case).
#[inline]
pub(super) fn reset(counter: &AtomicU32) {
    if counter.load(Ordering::Relaxed) != 0 {
        counter.store(0, Ordering::Relaxed);
    }
}

/// Adds one and says whether this reached `threshold` exactly (a disabled threshold, 0, never
/// fires). Firing on equality, as Envoy, means one crossing ejects once.
#[inline]
pub(super) fn bump(counter: &AtomicU32, threshold: u32) -> bool {
    let n = counter.fetch_add(1, Ordering::Relaxed).saturating_add(1);
    threshold != 0 && n == threshold
}
