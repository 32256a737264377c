//! The bounded queue between finished spans and the exporter, and the task that drains it in
//! batches (the OpenTelemetry batch span processor, with its drops counted).
//!
//! A span is handed over with `try_send`: the request path never waits for the exporter. A full
//! queue drops the span and counts it in `mesh_trace_spans_dropped_total`. The export task sends
//! a batch when `max_export_batch_size` spans are waiting or `scheduled_delay` has passed,
//! grouping spans by resource (one `service.name` per workload) and giving each export
//! `export_timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

/// Name of the counter of spans dropped because the export queue was full.
pub const SPANS_DROPPED_TOTAL: &str = "mesh_trace_spans_dropped_total";

/// What the queue carries.
pub(crate) enum Item {
    Span(Resource, Box<SpanData>),
    /// Export everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The sending side, shared by every span source.
#[derive(Clone, Debug)]
pub(crate) struct SpanQueue {
    tx: mpsc::Sender<Item>,
    dropped: Arc<AtomicU64>,
}

/// Batch limits of the export task.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batching {
    pub(crate) max_batch: usize,
    pub(crate) delay: Duration,
    pub(crate) timeout: Duration,
}

impl SpanQueue {
    /// A queue of `capacity` spans drained by a task spawned on the current tokio runtime.
    pub(crate) fn spawn<E: SpanExporter + 'static>(
        capacity: usize,
        batching: Batching,
        exporter: E,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(drain(rx, exporter, batching));
        Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues a finished span, or drops and counts it when the queue is full (or the export
    /// task has stopped).
    pub(crate) fn push(&self, resource: Resource, span: SpanData) {
        if self
            .tx
            .try_send(Item::Span(resource, Box::new(span)))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(SPANS_DROPPED_TOTAL).increment(1);
        }
    }

    /// Spans dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every span queued before the call has been exported (or failed to).
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn drain<E: SpanExporter>(mut rx: mpsc::Receiver<Item>, mut exporter: E, b: Batching) {
    let mut batch: Vec<(Resource, SpanData)> = Vec::with_capacity(b.max_batch);
    loop {
        let deadline = tokio::time::Instant::now() + b.delay;
        let mut flush = None;
        while batch.len() < b.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Item::Span(resource, span))) => batch.push((resource, *span)),
                Ok(Some(Item::Flush(done))) => {
                    flush = Some(done);
                    break;
                }
                Ok(None) => {
                    export(&mut exporter, &mut batch, b.timeout).await;
                    let _ = exporter.shutdown();
                    return;
                }
                Err(_elapsed) => break,
            }
        }
        export(&mut exporter, &mut batch, b.timeout).await;
        if let Some(done) = flush {
            let _ = done.send(());
        }
    }
}

/// Exports `batch`, one request per resource, and empties it.
async fn export<E: SpanExporter>(
    exporter: &mut E,
    batch: &mut Vec<(Resource, SpanData)>,
    timeout: Duration,
) {
    while let Some((resource, _)) = batch.first() {
        let resource = resource.clone();
        let (same, rest): (Vec<_>, Vec<_>) = batch.drain(..).partition(|(r, _)| *r == resource);
        *batch = rest;
        exporter.set_resource(&resource);
        let spans = same.into_iter().map(|(_, s)| s).collect();
        match tokio::time::timeout(timeout, exporter.export(spans)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "span export failed"),
            Err(_) => tracing::warn!(?timeout, "span export timed out"),
        }
    }
}

/// The processor given to an application's `SdkTracerProvider` (see
/// [`Tracing::tracer_provider`](super::Tracing::tracer_provider)): its finished spans join
/// mesh's own in the same queue, under the provider's resource.
#[derive(Debug)]
pub(crate) struct QueueProcessor {
    pub(crate) queue: SpanQueue,
    pub(crate) resource: Resource,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.queue.push(self.resource.clone(), span);
    }

    /// The SDK's flush is synchronous and cannot wait for the async export task from inside a
    /// runtime; spans are already queued, and `Tracing::flush().await` waits for their export.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    /// The queue and its export task belong to the installed `Tracing`, shared with mesh's own
    /// spans: an application's provider shutting down leaves them running.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}
