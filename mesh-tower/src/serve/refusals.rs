//! Counting refused connections, and logging them at a bounded rate.
//!
//! A refused connection (plaintext on a STRICT port, a failed or timed-out handshake, a bad
//! client certificate) costs an attacker a few bytes; a log line per refusal would cost the
//! server far more and drown the logs. So every refusal is counted in
//! `mesh_inbound_connections_refused_total{reason}` and at most one line per reason is
//! logged per interval, carrying how many were refused since the last line.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh_core::model::MtlsMode;
use tokio::time::Instant;

use crate::tls::TlsError;

/// Counter of refused connections, by `reason`.
pub(super) const CONNECTIONS_REFUSED: &str = "mesh_inbound_connections_refused_total";

/// Why a connection was refused; the metric's `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reason {
    PlaintextOnStrict,
    HandshakeTimeout,
    PeerCertificate,
    HandshakeFailed,
    Io,
    NoIdentity,
}

const REASONS: usize = 6;

impl Reason {
    pub(super) fn of(error: &TlsError) -> Self {
        match error {
            TlsError::PlaintextOnStrictPort(_) => Self::PlaintextOnStrict,
            TlsError::Timeout(_) => Self::HandshakeTimeout,
            TlsError::PeerCertificate(_) | TlsError::PeerIdentity(_) => Self::PeerCertificate,
            TlsError::Io(_) | TlsError::ClosedEarly => Self::Io,
            TlsError::RejectedByPeer(_) | TlsError::Handshake(_) | TlsError::Config(_) => {
                Self::HandshakeFailed
            }
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::PlaintextOnStrict => "plaintext_on_strict",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::PeerCertificate => "peer_certificate",
            Self::HandshakeFailed => "handshake_failed",
            Self::Io => "io",
            Self::NoIdentity => "no_identity",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The refusal counter and log limiter of one server.
#[derive(Debug)]
pub(super) struct Refusals {
    epoch: Instant,
    interval: Duration,
    /// Per reason: milliseconds since `epoch` before which no line is logged.
    next_log: [AtomicU64; REASONS],
    /// Per reason: refusals not logged since the last line.
    unlogged: [AtomicU64; REASONS],
}

impl Refusals {
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            interval,
            next_log: Default::default(),
            unlogged: Default::default(),
        }
    }

    /// Counts a refusal; logs it unless a line for `reason` was logged within the interval.
    pub(super) fn refused(
        &self,
        reason: Reason,
        remote: SocketAddr,
        local: SocketAddr,
        mode: MtlsMode,
        error: &dyn std::fmt::Display,
    ) {
        metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason.label()).increment(1);
        if let Some(unlogged) = self.take_turn(reason) {
            tracing::info!(
                target: "mesh::inbound",
                %remote,
                %local,
                ?mode,
                reason = reason.label(),
                refused_since_last_line = unlogged,
                "connection refused: {error}"
            );
        }
    }

    /// `Some(refusals not logged before this one)` when this refusal may be logged.
    fn take_turn(&self, reason: Reason) -> Option<u64> {
        let i = reason.index();
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_log[i].load(Ordering::Acquire);
        let until = now.saturating_add(u64::try_from(self.interval.as_millis()).unwrap_or(0));
        if now >= next
            && self.next_log[i]
                .compare_exchange(next, until.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Some(self.unlogged[i].swap(0, Ordering::AcqRel));
        }
        self.unlogged[i].fetch_add(1, Ordering::AcqRel);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_reason_per_interval_with_the_count_since() {
        let refusals = Refusals::new(Duration::from_secs(10));
        assert_eq!(refusals.take_turn(Reason::PlaintextOnStrict), Some(0));
        for _ in 0..999 {
            assert_eq!(refusals.take_turn(Reason::PlaintextOnStrict), None);
        }
        // Another reason has its own turn.
        assert_eq!(refusals.take_turn(Reason::HandshakeTimeout), Some(0));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(refusals.take_turn(Reason::PlaintextOnStrict), Some(999));
        assert_eq!(refusals.take_turn(Reason::PlaintextOnStrict), None);
    }
}
