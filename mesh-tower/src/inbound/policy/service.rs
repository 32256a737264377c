use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, Uri};
use mesh_core::identity::PeerIdentity;
use mesh_core::model::ServiceKey;
use mesh_core::telemetry::{Reporter, RequestRecord, SecurityPolicy};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tower_service::Service;
use tracing::Instrument;

use super::body::RequestBody;
use super::future::{Pending, ResponseFuture};
use super::layer::Shared;
use crate::inbound::{LocalAddr, RemoteAddr};
use crate::telemetry::{remove_peer_metadata, request_protocol};
use crate::trace;

/// The inbound policy around one application service; see the [module docs](super).
pub struct Inbound<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Inbound<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
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
        Self::new(self.inner.clone(), self.shared.clone())
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
        let start = SystemTime::now();
        let n = self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let mut rng = SmallRng::seed_from_u64(self.shared.seed ^ n.wrapping_mul(GOLDEN));
        let mut ctx = trace::inbound(req.headers_mut(), &mut rng);
        let traced = trace::span::start_server(&mut ctx, req.headers(), &mut rng);

        let mut record = RequestRecord::new(Reporter::Destination, start);
        // A peer's metadata is its own claim: believed only from a peer that proved an
        // identity by mutual TLS, as Istio's metadata exchange only runs over mTLS. Over
        // plaintext anyone could label their requests as any workload.
        if req.extensions().get::<PeerIdentity>().is_some() {
            record.source = self
                .shared
                .telemetry
                .peer_workload(req.headers())
                .unwrap_or_default();
        }
        remove_peer_metadata(req.headers_mut());
        self.describe(&req, &mut record);
        record.request_id = Some(ctx.request_id.clone());
        record.trace_id = Some(ctx.trace.trace_id.to_string());

        let received = Arc::new(AtomicU64::new(0));
        let req = req.map(|body| RequestBody::new(body, received.clone()));
        // The handler runs in the request's `tracing` span (its ids on every log line) and with
        // the context current for `MeshClient`.
        let span = trace::span::in_context(traced.as_ref(), || ctx.span());
        let future = {
            let _entered = span.enter();
            trace::scope(ctx, self.inner.call(req))
        };
        let pending = Pending {
            record,
            started,
            received,
            shared: self.shared.clone(),
            span: traced,
        };
        ResponseFuture::new(future.instrument(span), pending)
    }
}

/// Spreads consecutive request numbers over the seed space.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl<S> Inbound<S> {
    /// Fills in what the request and its connection say.
    fn describe<B>(&self, req: &Request<B>, record: &mut RequestRecord) {
        let shared = &self.shared;
        record.method = req.method().as_str().to_owned();
        record.path = req
            .uri()
            .path_and_query()
            .map_or("", PathAndQuery::as_str)
            .to_owned();
        record.authority = authority(req.uri(), req.headers()).to_owned();
        record.protocol = request_protocol(req.headers());
        record.destination = shared.destination.clone();
        let local = req.extensions().get::<LocalAddr>().map(|a| a.0);
        record.destination_service = Some(ServiceKey {
            host: shared.service_host.clone(),
            namespace: shared.service_namespace.clone(),
            port: local.map_or(0, |a| a.port()),
            subset: None,
        });
        record.peer_address = req
            .extensions()
            .get::<RemoteAddr>()
            .map(|a| a.0.to_string());
        match req.extensions().get::<PeerIdentity>() {
            Some(peer) => {
                record.security = SecurityPolicy::MutualTls;
                record.source_principal = Some(peer.spiffe_id().as_str().to_owned());
                record.destination_principal = shared
                    .mesh
                    .identity()
                    .map(|id| id.current().credentials().spiffe_id().as_str().to_owned());
            }
            None => record.security = SecurityPolicy::None,
        }
    }
}

/// `:authority` (HTTP/2, absolute-form) or else `Host`; empty when neither is there.
fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(http::header::HOST)?.to_str().ok())
        .unwrap_or("")
}
