use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, Uri};
use mesh_core::model::ServiceKey;
use mesh_core::telemetry::{
    PeerWorkload, Reporter, RequestProtocol, RequestRecord, SecurityPolicy,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tower_service::Service;
use tracing::Instrument;

use super::body::RequestBody;
use super::connection::{Connection, Key};
use super::future::{Pending, ResponseFuture};
use super::layer::Shared;
use crate::telemetry::grpc_messages::CallMessages;
use crate::telemetry::{remove_peer_metadata, request_protocol};
use crate::trace;

/// The inbound policy around one application service; see the [module docs](super).
pub struct Inbound<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The connection's facts, when the server computed them ([`Inbound::for_connection`]);
    /// else each request's are read from its extensions.
    conn: Option<Arc<Connection>>,
}

impl<S> Inbound<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            shared,
            conn: None,
        }
    }

    /// This service for the requests of one connection, whose facts are computed once
    /// ([`Connection`]) rather than read from each request's extensions.
    pub(crate) fn for_connection(&self, conn: Arc<Connection>) -> Self
    where
        S: Clone,
    {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            conn: Some(conn),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Inbound<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            conn: self.conn.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Inbound<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("inner", &self.inner)
            .field("workload", &self.shared.destination.name)
            .finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Inbound<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ResB: http_body::Body,
{
    type Response = Response<super::InboundBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let started = Instant::now();
        let shared = &self.shared;
        let conn = match &self.conn {
            Some(conn) => conn.clone(),
            None => Arc::new(Connection::of_request(req.extensions(), &shared.mesh)),
        };
        let n = shared.requests.fetch_add(1, Ordering::Relaxed);
        let mut rng = SmallRng::seed_from_u64(shared.seed ^ n.wrapping_mul(GOLDEN));
        let mut ctx = trace::inbound(req.headers_mut(), &mut rng);
        let traced = trace::span::start_server(&mut ctx, req.headers(), &mut rng);

        // A peer's metadata is its own claim: believed only from a peer that proved an
        // identity by mutual TLS, as Istio's metadata exchange only runs over mTLS. Over
        // plaintext anyone could label their requests as any workload.
        let source = if conn.is_mutual_tls() {
            conn.peer_workload(req.headers(), &shared.telemetry)
        } else {
            None
        };
        remove_peer_metadata(req.headers_mut());
        let protocol = request_protocol(req.headers());
        // What only the access log and a span show is gathered only when one may be written.
        let sampled = traced.as_ref().is_some_and(|t| t.span.is_some());
        let logged = (sampled || shared.telemetry.logs_requests()).then(|| {
            let mut record = record(shared, &conn, source.as_deref(), protocol);
            record.start = SystemTime::now();
            record.method = req.method().as_str().to_owned();
            record.path = req
                .uri()
                .path_and_query()
                .map_or("", PathAndQuery::as_str)
                .to_owned();
            record.authority = authority(req.uri(), req.headers()).to_owned();
            record.request_id = Some(ctx.request_id.clone());
            record.trace_id = Some(ctx.trace.trace_id.to_string());
            crate::telemetry::note_request_headers(&mut record, req.headers());
            record.details.http_version = crate::telemetry::http_version_name(req.version());
            record.details.local_address = conn.local.map(|a| a.to_string());
            Box::new(record)
        });

        let received = Arc::new(AtomicU64::new(0));
        // A gRPC request's messages are reported as they flow: the peer, and so the series of
        // its messages, is known now.
        let request_messages = (protocol == RequestProtocol::Grpc).then(|| {
            let call = Arc::new(CallMessages::default());
            call.attach(conn.stream_counters(source.as_ref(), || {
                let record = record(shared, &conn, source.as_deref(), protocol);
                shared.telemetry.request_metrics().stream_counters(&record)
            }));
            call
        });
        let req = req.map(|body| {
            RequestBody::new(body, received.clone()).count_messages(request_messages.clone())
        });
        // The handler runs in the request's `tracing` span (its ids on every log line) and with
        // the context current for `MeshClient`.
        let span = trace::span::in_context(traced.as_ref(), || ctx.span());
        let future = {
            let _entered = span.enter();
            trace::scope(ctx, self.inner.call(req))
        };
        let pending = Pending {
            key: Key {
                source,
                protocol,
                response_code: None,
                grpc_status: None,
                flags: Vec::new(),
            },
            started,
            received,
            request_messages,
            response_messages: 0,
            response_details: None,
            shared: self.shared.clone(),
            conn,
            logged,
            span: traced,
        };
        ResponseFuture::new(future.instrument(span), pending)
    }
}

/// Spreads consecutive request numbers over the seed space.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A server-side record of the connection's and this workload's facts (the label-determining
/// ones but the status, plus the peer address): what a request's labels and log line start
/// from.
pub(super) fn record(
    shared: &Shared,
    conn: &Connection,
    source: Option<&PeerWorkload>,
    protocol: RequestProtocol,
) -> RequestRecord {
    let mut record = RequestRecord::new(Reporter::Destination, SystemTime::UNIX_EPOCH);
    if let Some(source) = source {
        record.source = source.clone();
    }
    record.protocol = protocol;
    record.destination = shared.destination.clone();
    record.destination_service = Some(ServiceKey {
        host: shared.service_host.clone(),
        namespace: shared.service_namespace.clone(),
        port: conn.local.map_or(0, |a| a.port()),
        subset: None,
    });
    record.security = if conn.is_mutual_tls() {
        SecurityPolicy::MutualTls
    } else {
        SecurityPolicy::None
    };
    conn.describe(&mut record);
    // No metadata (a plain gRPC or curl client with a mesh certificate): what its certificate
    // says, as Istio's stats filter reads it.
    record
        .source
        .complete_from_principal(record.source_principal.as_deref());
    record
}

/// `:authority` (HTTP/2, absolute-form) or else `Host`; empty when neither is there.
fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(http::header::HOST)?.to_str().ok())
        .unwrap_or("")
}
