//! Requests per response code in one service-graph window, counted without a lock.
//!
//! Every request adds to its edge's counts, so the count of its response code must not take a
//! lock shared with the other requests of the edge. An edge sees few codes: the first
//! [`SLOTS`] of a window each get a slot claimed by one compare-and-swap and counted by atomic
//! adds; a window that sees more counts the rest under a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::health::ResponseCode;

/// Codes counted lock-free per window.
const SLOTS: usize = 4;

/// A slot's key when no code has claimed it.
const EMPTY: u32 = 0;

/// Requests per response code, for one window.
#[derive(Debug, Default)]
pub(super) struct CodeCounts {
    slots: [Slot; SLOTS],
    /// Codes past the slots.
    more: Mutex<BTreeMap<ResponseCode, u64>>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The code counted here ([`key`]), or [`EMPTY`].
    key: AtomicU32,
    requests: AtomicU64,
}

/// A code as a slot key: never [`EMPTY`], and one key per code.
fn key(code: ResponseCode) -> u32 {
    match code {
        ResponseCode::Http(status) => 1 + u32::from(status),
        ResponseCode::Grpc(status) => 0x1_0001 + u32::from(status),
    }
}

/// The code of a slot key; `None` for [`EMPTY`] (or a key no code makes).
fn code(key: u32) -> Option<ResponseCode> {
    match key {
        EMPTY => None,
        1..=0x1_0000 => u16::try_from(key - 1).ok().map(ResponseCode::Http),
        _ => u8::try_from(key - 0x1_0001).ok().map(ResponseCode::Grpc),
    }
}

impl CodeCounts {
    /// Counts one request that ended with `code`.
    pub(super) fn add(&self, code: ResponseCode) {
        let want = key(code);
        for slot in &self.slots {
            let mut seen = slot.key.load(Ordering::Acquire);
            if seen == EMPTY {
                // Claim it, or find which code did first.
                seen = match slot.key.compare_exchange(
                    EMPTY,
                    want,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => want,
                    Err(current) => current,
                };
            }
            if seen == want {
                slot.requests.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        *self
            .more
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(code)
            .or_insert(0) += 1;
    }

    /// Forgets every count, for the window's reuse. Only while no request adds to the window
    /// (the graph's window tag is claimed), as the other counters of the window are reset.
    pub(super) fn clear(&self) {
        for slot in &self.slots {
            slot.requests.store(0, Ordering::Relaxed);
            slot.key.store(EMPTY, Ordering::Release);
        }
        self.more
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Adds these counts to `into`.
    pub(super) fn add_to(&self, into: &mut BTreeMap<ResponseCode, u64>) {
        for slot in &self.slots {
            if let Some(code) = code(slot.key.load(Ordering::Acquire)) {
                *into.entry(code).or_insert(0) += slot.requests.load(Ordering::Relaxed);
            }
        }
        for (code, n) in self
            .more
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            *into.entry(*code).or_insert(0) += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn counts(c: &CodeCounts) -> BTreeMap<ResponseCode, u64> {
        let mut out = BTreeMap::new();
        c.add_to(&mut out);
        out
    }

    #[test]
    fn keys_are_one_per_code_and_never_empty() {
        let codes = (0..=u16::MAX)
            .map(ResponseCode::Http)
            .chain((0..=u8::MAX).map(ResponseCode::Grpc));
        for c in codes {
            assert_ne!(key(c), EMPTY, "{c:?}");
            assert_eq!(code(key(c)), Some(c), "{c:?}");
        }
        assert_eq!(code(EMPTY), None);
    }

    /// More codes than slots: the rest are counted under the lock, and every request is
    /// counted once under its own code.
    #[test]
    fn counts_every_code_past_the_slots_too() {
        let c = CodeCounts::default();
        let codes: Vec<_> = [200, 503, 404, 500, 429, 0]
            .into_iter()
            .map(ResponseCode::Http)
            .chain([ResponseCode::Grpc(0), ResponseCode::Grpc(14)])
            .collect();
        for (i, code) in codes.iter().enumerate() {
            for _ in 0..=i {
                c.add(*code);
            }
        }
        let want: BTreeMap<_, _> = codes
            .iter()
            .enumerate()
            .map(|(i, code)| (*code, i as u64 + 1))
            .collect();
        assert_eq!(counts(&c), want);
        c.clear();
        assert!(counts(&c).is_empty());
        c.add(ResponseCode::Http(201));
        assert_eq!(counts(&c), BTreeMap::from([(ResponseCode::Http(201), 1)]));
    }

    /// Threads racing to claim the slots with different codes: no request is lost or counted
    /// under another code, and no code holds two slots.
    #[test]
    fn racing_threads_count_exactly() {
        const THREADS: u16 = 8;
        const EACH: u64 = 10_000;
        let c = Arc::new(CodeCounts::default());
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let c = c.clone();
                s.spawn(move || {
                    for i in 0..EACH {
                        // Two codes per thread, interleaved: 16 codes for 4 slots.
                        let status = 200 + 2 * t + u16::from(i % 2 == 1);
                        c.add(ResponseCode::Http(status));
                    }
                });
            }
        });
        let got = counts(&c);
        assert_eq!(got.len(), 2 * usize::from(THREADS));
        for n in got.values() {
            assert_eq!(*n, EACH / 2);
        }
        let keys: Vec<u32> = c
            .slots
            .iter()
            .map(|s| s.key.load(Ordering::Relaxed))
            .collect();
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), keys.len(), "a code in two slots: {keys:?}");
    }
}
