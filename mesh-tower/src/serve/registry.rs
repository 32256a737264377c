//! The open connections of a server and what each is doing, so the server can close the
//! ones that only hold a slot.
//!
//! Every connection registers a [`ConnState`]: requests in flight, when it last became idle,
//! when bytes last moved. Its own supervisor (in [`super::connection`]) reads that to apply
//! the idle and stall timeouts; the accept loop reads all of them when the server is above
//! its high-water mark and asks the connection idle the longest to close. Without that, a
//! client holding the cap's worth of idle connections locks every other caller out until
//! Envoy's one-hour idle timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The registered connections of one server.
#[derive(Debug)]
pub(super) struct Registry {
    epoch: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
}

/// One connection's activity; shared by its supervisor, its request guard, its I/O wrapper
/// and the registry.
#[derive(Debug)]
pub(super) struct ConnState {
    epoch: Instant,
    active: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds since `epoch` when the last request in flight finished (or the
    /// connection was accepted).
    idle_since: AtomicU64,
    /// Milliseconds since `epoch` when bytes last moved either way.
    last_io: AtomicU64,
    /// The last write found the peer's receive window full (it is not reading).
    write_blocked: AtomicBool,
    closing: AtomicBool,
    close: Notify,
}

/// Removes its connection from the registry when dropped.
#[derive(Debug)]
pub(super) struct Registered {
    registry: Arc<Registry>,
    id: u64,
    pub(super) state: Arc<ConnState>,
}

impl Registry {
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn register(self: &Arc<Self>) -> Registered {
        let now = millis(self.epoch, Instant::now());
        let state = Arc::new(ConnState {
            epoch: self.epoch,
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            last_io: AtomicU64::new(now),
            write_blocked: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, state.clone());
        Registered {
            registry: self.clone(),
            id,
            state,
        }
    }

    /// Connections open.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Asks the connection idle the longest (no request in flight, not already closing) to
    /// close. Returns whether there was one.
    pub(super) fn evict_idlest(&self) -> bool {
        let conns = self.lock();
        let idlest = conns
            .values()
            .filter(|c| c.active.load(Ordering::Acquire) == 0 && !c.closing.load(Ordering::Acquire))
            .min_by_key(|c| c.idle_since.load(Ordering::Relaxed));
        match idlest {
            Some(conn) => {
                conn.request_close();
                true
            }
            None => false,
        }
    }

    /// Like [`Registry::evict_idlest`], unless a connection asked to close is still open:
    /// a caller waiting at the cap needs one slot, not one per retry.
    pub(super) fn evict_idlest_unless_leaving(&self) -> bool {
        let leaving = self
            .lock()
            .values()
            .any(|c| c.closing.load(Ordering::Acquire));
        !leaving && self.evict_idlest()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl ConnState {
    /// A request started; it is in flight until the returned token drops.
    pub(super) fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Active(self.clone())
    }

    /// Requests in flight.
    pub(super) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Requests started on this connection.
    pub(super) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How long the connection has had no request in flight (zero while one is).
    pub(super) fn idle_for(&self, now: Instant) -> Duration {
        if self.active() > 0 {
            return Duration::ZERO;
        }
        since(self.epoch, &self.idle_since, now)
    }

    /// How long since bytes last moved.
    pub(super) fn quiet_for(&self, now: Instant) -> Duration {
        since(self.epoch, &self.last_io, now)
    }

    /// Bytes moved just now.
    pub(super) fn touch_io(&self) {
        self.last_io
            .store(millis(self.epoch, Instant::now()), Ordering::Relaxed);
    }

    /// Records whether the last write had to wait for the peer.
    pub(super) fn set_write_blocked(&self, blocked: bool) {
        self.write_blocked.store(blocked, Ordering::Relaxed);
    }

    /// Whether the connection has bytes the peer is not taking: a response written by hyper
    /// after the application's body ended still has to reach the peer, so this counts as a
    /// request in flight for the stall timeout.
    pub(super) fn write_blocked(&self) -> bool {
        self.write_blocked.load(Ordering::Relaxed)
    }

    /// Asks the connection's supervisor to close it gracefully.
    pub(super) fn request_close(&self) {
        self.closing.store(true, Ordering::Release);
        self.close.notify_one();
    }

    /// Completes when a close was requested.
    pub(super) async fn close_requested(&self) {
        self.close.notified().await;
    }
}

/// A request in flight on a connection (see [`ConnState::begin`]).
#[derive(Debug)]
pub(super) struct Active(Arc<ConnState>);

impl Drop for Active {
    fn drop(&mut self) {
        let state = &self.0;
        state
            .idle_since
            .store(millis(state.epoch, Instant::now()), Ordering::Relaxed);
        state.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn millis(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

fn since(epoch: Instant, stamp: &AtomicU64, now: Instant) -> Duration {
    let then = stamp.load(Ordering::Relaxed);
    Duration::from_millis(millis(epoch, now).saturating_sub(then))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn evicts_the_connection_idle_the_longest_and_never_a_busy_one() {
        let registry = Arc::new(Registry::new());
        let oldest = registry.register();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let busy_and_older = registry.register();
        let _active = busy_and_older.state.begin();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let newer = registry.register();
        assert_eq!(registry.len(), 3);

        assert!(registry.evict_idlest());
        assert!(oldest.state.closing.load(Ordering::Acquire));
        assert!(!busy_and_older.state.closing.load(Ordering::Acquire));
        assert!(registry.evict_idlest());
        assert!(newer.state.closing.load(Ordering::Acquire));
        // Only the busy one is left: nothing to evict.
        assert!(!registry.evict_idlest());
        drop(oldest);
        assert_eq!(registry.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_counts_from_the_last_request() {
        let registry = Arc::new(Registry::new());
        let conn = registry.register();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let active = conn.state.begin();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(conn.state.idle_for(Instant::now()), Duration::ZERO);
        drop(active);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(conn.state.idle_for(Instant::now()), Duration::from_secs(2));
        assert_eq!(conn.state.requests(), 1);
    }
}
