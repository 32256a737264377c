//! The bytes of outgoing trace headers, carved from a per-thread chunk.
//!
//! Every call's `traceparent`, B3 ids and `x-request-id` are new bytes that header values must
//! share (`Bytes`). Taking them as slices of one chunk per thread makes that an allocation per
//! chunk, not per call: a chunk whose slices are all gone is reused in place, and one still
//! referenced is left to its holders and replaced. What holds a slice is bounded: a request's
//! headers until HPACK encodes them, and, for the few requests whose values HPACK may index
//! (`super::hpack`), an encoder's dynamic table until it evicts the entry.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Bytes per chunk: the trace headers of a few dozen calls.
const CHUNK: usize = 4096;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// A copy of `bytes` sharing this thread's current chunk.
pub(super) fn share(bytes: &[u8]) -> Bytes {
    ARENA.with_borrow_mut(|arena| {
        if arena.capacity() == 0 {
            *arena = BytesMut::with_capacity(CHUNK.max(bytes.len()));
        }
        // Room in the chunk, or the chunk itself again once no slice of it is left (no
        // allocation), or a new chunk of the same size.
        arena.reserve(bytes.len());
        arena.extend_from_slice(bytes);
        arena.split().freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_keep_their_bytes_across_chunks() {
        let kept: Vec<(Vec<u8>, Bytes)> = (0..(3 * CHUNK / 100))
            .map(|i| {
                let want = format!("{i:0>100}").into_bytes();
                let got = share(&want);
                (want, got)
            })
            .collect();
        for (want, got) in &kept {
            assert_eq!(got.as_ref(), want.as_slice());
        }
        // Larger than a chunk.
        let big = vec![7u8; CHUNK * 2];
        assert_eq!(share(&big).as_ref(), big.as_slice());
    }
}
