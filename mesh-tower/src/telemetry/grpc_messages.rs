//! gRPC message counting on a body (`istio_request_messages_total`,
//! `istio_response_messages_total`): a [`GrpcFrameCounter`] fed the data frames a body yields,
//! its count published through an atomic when the counting and the recording sides differ (the
//! request body is read by the application's task).

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Buf;
use mesh_core::telemetry::GrpcFrameCounter;

/// Most chunks of one data frame read. Frames of hyper, tonic and axum bodies are `Bytes`, one
/// chunk; a frame of more chunks than this is counted on its first `MAX_CHUNKS` chunks (a
/// `Buf` cannot be read past them without consuming it).
const MAX_CHUNKS: usize = 64;

/// Feeds the chunks of `data` (without consuming it) to `counter`.
pub(crate) fn feed(counter: &mut GrpcFrameCounter, data: &impl Buf) {
    if data.chunk().len() == data.remaining() {
        counter.feed(data.chunk());
        return;
    }
    let mut slices = [IoSlice::new(&[]); MAX_CHUNKS];
    let n = data.chunks_vectored(&mut slices);
    for s in &slices[..n] {
        counter.feed(s);
    }
}

/// A body's message counter whose total another task reads.
#[derive(Debug)]
pub(crate) struct SharedCount {
    counter: GrpcFrameCounter,
    total: Arc<AtomicU64>,
}

impl SharedCount {
    /// A counter publishing to `total`.
    pub(crate) fn new(total: Arc<AtomicU64>) -> Self {
        Self {
            counter: GrpcFrameCounter::new(),
            total,
        }
    }

    /// Counts the messages begun in `data`.
    pub(crate) fn feed(&mut self, data: &impl Buf) {
        feed(&mut self.counter, data);
        self.total.store(self.counter.messages(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Buf as _, Bytes};

    use super::*;

    #[test]
    fn counts_over_chained_chunks() {
        let frame = |n: u8| Bytes::from(vec![0, 0, 0, 0, 2, n, n]);
        let chained = frame(1).chain(frame(2)).chain(frame(3));
        let total = Arc::new(AtomicU64::new(0));
        let mut count = SharedCount::new(total.clone());
        count.feed(&chained);
        count.feed(&frame(4));
        assert_eq!(total.load(Ordering::Relaxed), 4);
    }
}
