use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};

use http::Response;
use mesh_core::telemetry::RequestRecord;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;
use tracing::instrument::Instrumented;

use super::body::InboundBody;
use super::connection::{Connection, Key};
use super::layer::Shared;
use super::service::record;
use crate::reply::ResponseDetails;
use crate::telemetry::grpc_messages::CallMessages;
use crate::telemetry::{grpc_status, insert_peer_metadata, log_request};
use crate::trace::RequestContext;

/// A request on its way to being recorded: what was known when it arrived.
#[derive(Debug)]
pub(super) struct Pending {
    /// The request's label-determining facts beyond its connection's (the status ones are
    /// filled in as the response comes).
    pub(super) key: Key,
    pub(super) started: Instant,
    /// Request body bytes read so far (the application reads the body).
    pub(super) received: Arc<AtomicU64>,
    /// The request's gRPC message counts, reported as they flow (gRPC requests only).
    pub(super) request_messages: Option<Arc<CallMessages>>,
    /// gRPC messages sent in the response body, for the access log (counted and reported by
    /// the body, gRPC only).
    pub(super) response_messages: u64,
    /// Why mesh answered itself (`rbac_access_denied`, ...), for the access log.
    pub(super) response_details: Option<&'static str>,
    pub(super) shared: Arc<Shared>,
    pub(super) conn: Arc<Connection>,
    /// The whole record, kept only when the access log may write it or the request is traced.
    pub(super) logged: Option<Box<RequestRecord>>,
    /// The request's span and the OpenTelemetry context of the handler (tracing on).
    pub(super) span: Option<crate::trace::span::ServerSpan>,
}

impl Pending {
    /// Completes the record and hands it to telemetry: the metrics and the graph through the
    /// connection's handles for its facts, the access log if it is written.
    pub(super) fn finish(self, sent: u64) {
        let Self {
            key,
            started,
            received,
            request_messages,
            response_messages,
            response_details,
            shared,
            conn,
            logged,
            span,
        } = self;
        let now = Instant::now();
        let duration = now.saturating_duration_since(started);
        let received = received.load(std::sync::atomic::Ordering::Relaxed);
        let telemetry = &shared.telemetry;
        let handles = conn.handles(&key, || {
            let mut record = record(&shared, &conn, key.source.as_deref(), key.protocol);
            record.response_code = key.response_code;
            record.grpc_status = key.grpc_status;
            record.response_flags.clone_from(&key.flags);
            telemetry.resolve(&record, now)
        });
        handles.record(duration, received, sent, now);
        // The message counters were updated as the messages flowed.
        let request_messages = request_messages.map_or(0, |m| m.counted());
        if let Some(mut record) = logged {
            record.duration = duration;
            record.request_bytes = received;
            record.response_bytes = sent;
            record.response_code = key.response_code;
            record.grpc_status = key.grpc_status;
            record.response_flags = key.flags;
            record.details.request_messages = request_messages;
            record.details.response_messages = response_messages;
            record.details.response_code_details = response_details.map(str::to_owned);
            if telemetry.logs_requests() {
                log_request(telemetry.access_log_mode(), &record);
            }
            if let Some(span) = span.and_then(|s| s.span) {
                span.end(&record);
            }
        }
    }
}

pin_project! {
    /// The response future of [`Inbound`](super::Inbound): the application's, run with the
    /// request's trace context current and in its `tracing` span; adds our peer metadata to the response and hands the
    /// record to the body.
    pub struct ResponseFuture<F> {
        #[pin]
        future: Instrumented<TaskLocalFuture<RequestContext, F>>,
        pending: Option<Pending>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(
        future: Instrumented<TaskLocalFuture<RequestContext, F>>,
        pending: Pending,
    ) -> Self {
        Self {
            future,
            pending: Some(pending),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<InboundBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The server span's context is current while the handler runs (tracing on).
        let _otel = this
            .pending
            .as_ref()
            .and_then(|p| p.span.as_ref())
            .map(|s| s.context.clone().attach());
        let result = std::task::ready!(this.future.poll(cx));
        let mut pending = this
            .pending
            .take()
            .expect("ResponseFuture polled after it completed");
        Poll::Ready(match result {
            Ok(mut response) => {
                pending.key.response_code = Some(response.status().as_u16());
                pending.key.grpc_status = grpc_status(response.headers());
                if let Some(ResponseDetails(d)) = response.extensions().get::<ResponseDetails>() {
                    pending.response_details = Some(d);
                }
                if let Some((encoded, id)) = &pending.shared.metadata {
                    insert_peer_metadata(response.headers_mut(), encoded, id);
                }
                Ok(response.map(|body| InboundBody::new(body, pending)))
            }
            Err(error) => {
                // No response: recorded with status 0 (Envoy's "no response sent").
                pending.finish(0);
                Err(error)
            }
        })
    }
}
