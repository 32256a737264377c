//! Connections to one endpoint: one multiplexed HTTP/2 connection, or a keep-alive pool of
//! HTTP/1.1 connections.
//!
//! Like Envoy, HTTP/2 endpoints get a single connection that carries every request (replaced when
//! it closes or reaches `maxRequestsPerConnection`), and HTTP/1.1 endpoints get as many
//! connections as there are concurrent requests, reused while they stay idle for less than the
//! idle timeout. Connection counts are limited cluster-wide by the circuit breaker, not here.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use futures_util::future::Either;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use mesh_core::model::{Cluster, Endpoint, Http2Keepalive, TcpKeepalive, UpstreamTls};
use mesh_core::resilience::{CircuitBreaker, Overflow, Permit};
use tokio::sync::Notify;

use mesh_core::identity::PeerIdentity;
use mesh_core::telemetry::PeerWorkload;

use crate::telemetry::{LastPeer, Telemetry};

use super::connect::{ConnectError, Connected, Connector, Io};

/// The body every upstream request is sent with: bytes read whole (no box), or any body.
pub(crate) enum UpstreamBody {
    /// The whole body; `None` once sent, or when empty.
    Whole(Option<Bytes>),
    /// A body streamed as it is read.
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl UpstreamBody {
    pub(crate) fn boxed<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        UpstreamBody::Boxed(UnsyncBoxBody::new(body))
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Whole(bytes) => {
                std::task::Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b))))
            }
            UpstreamBody::Boxed(body) => std::pin::Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Whole(bytes) => bytes.is_none(),
            UpstreamBody::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            UpstreamBody::Whole(bytes) => {
                http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            UpstreamBody::Boxed(body) => body.size_hint(),
        }
    }
}

/// Why a request could not be exchanged with the endpoint.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be made; the request was not sent.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The peer refused the stream before processing it (HTTP/2 REFUSED_STREAM, or a
    /// connection that closed before the request went out); safe to retry.
    #[error("request refused before processing: {0}")]
    Refused(#[source] hyper::Error),
    /// The stream or connection was reset after the request was sent.
    #[error("upstream reset: {0}")]
    Reset(#[source] hyper::Error),
    /// A connection-pool limit is full (flag UO).
    #[error(transparent)]
    Overflow(#[from] Overflow),
}

/// Pool settings, from the cluster's protocol, connection-pool policy and TLS. A pool is kept
/// across config swaps only while these stay the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    pub(crate) http2: bool,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_requests_per_connection: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: UpstreamTls,
    pub(crate) identity: Option<String>,
    pub(crate) tcp_keepalive: Option<TcpKeepalive>,
    pub(crate) http2_keepalive: Option<Http2Keepalive>,
    pub(crate) max_connection_duration: Option<Duration>,
}

impl PoolSettings {
    pub(crate) fn for_endpoint(cluster: &Cluster, endpoint: &Endpoint) -> Self {
        let pool = &cluster.connection_pool;
        Self {
            // `useClientProtocol`: only requests that came as HTTP/2 go as HTTP/2.
            http2: !pool.use_client_protocol && (cluster.protocol.requires_h2() || pool.h2_upgrade),
            idle_timeout: pool.idle_timeout,
            max_requests_per_connection: pool.max_requests_per_connection,
            connect_timeout: pool.connect_timeout,
            tls: cluster.tls.clone(),
            identity: endpoint.identity.clone(),
            tcp_keepalive: pool.tcp_keepalive.clone(),
            http2_keepalive: pool.http2_keepalive.clone(),
            max_connection_duration: pool.max_connection_duration,
        }
    }
}

pub(crate) struct EndpointPool {
    connector: Connector,
    settings: PoolSettings,
    breaker: CircuitBreaker,
    /// The HTTP/2 connection: read without a lock by every request.
    h2: ArcSwapOption<H2Conn>,
    /// Held while a new HTTP/2 connection is opened, so concurrent requests share one.
    h2_connecting: tokio::sync::Mutex<()>,
    h1_idle: Mutex<Vec<H1Conn>>,
    /// Signalled when an HTTP/1.1 connection may have become free.
    released: Notify,
    /// The last `x-envoy-peer-metadata` this endpoint answered with, and its workload: an
    /// endpoint sends the same bytes on every response, so comparing them spares the cache's
    /// hash of a few hundred bytes per call (the server keeps the same per connection).
    peer_metadata: LastPeer,
}

struct H2Conn {
    sender: http2::SendRequest<UpstreamBody>,
    requests: AtomicU32,
    peer: Option<PeerIdentity>,
    opened: Instant,
}

struct H1Conn {
    sender: http1::SendRequest<UpstreamBody>,
    requests: u32,
    idle_since: Instant,
    peer: Option<PeerIdentity>,
    opened: Instant,
}

/// Runs an upstream connection's task until the connection ends, holding its circuit-breaker
/// permit as long.
fn drive(
    connection: impl Future<Output = Result<(), hyper::Error>> + Send + 'static,
    permit: Permit,
    protocol: &'static str,
) {
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, protocol, "upstream connection ended");
        }
        drop(permit);
    });
}

/// Response extension: the verified identity of the upstream that answered, when the
/// connection was mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamPeer(pub PeerIdentity);

fn with_peer(mut response: Response<Incoming>, peer: Option<&PeerIdentity>) -> Response<Incoming> {
    if let Some(peer) = peer {
        response.extensions_mut().insert(UpstreamPeer(peer.clone()));
    }
    response
}

impl EndpointPool {
    pub(crate) fn new(
        connector: Connector,
        settings: PoolSettings,
        breaker: CircuitBreaker,
    ) -> Self {
        Self {
            connector,
            settings,
            breaker,
            h2: ArcSwapOption::empty(),
            h2_connecting: tokio::sync::Mutex::new(()),
            h1_idle: Mutex::new(Vec::new()),
            released: Notify::new(),
            peer_metadata: LastPeer::default(),
        }
    }

    /// The workload this endpoint's response `headers` name in their peer metadata, decoded
    /// through `telemetry`'s cache when it differs from the last value the endpoint sent.
    pub(crate) fn peer_workload(
        &self,
        headers: &http::HeaderMap,
        telemetry: &Telemetry,
    ) -> Option<Arc<PeerWorkload>> {
        self.peer_metadata.workload(headers, telemetry)
    }

    pub(crate) fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Tells a waiting request that a response finished, so its HTTP/1.1 connection is free.
    pub(crate) fn release(&self) {
        self.released.notify_one();
    }

    /// Opens a connection under the cluster's connection limit; the permit lives as long as
    /// the connection's task.
    async fn open(&self, http2: bool) -> Result<(Io, Option<PeerIdentity>, Permit), SendError> {
        let permit = self.breaker.try_connection()?;
        let Connected { io, peer } = self.connector.connect(http2).await?;
        Ok((io, peer, permit))
    }

    /// Sends one request on a pooled or new connection: HTTP/2 when the cluster's protocol
    /// requires it or the request is HTTP/2 (gRPC on a port declared HTTP), else HTTP/1.1.
    /// A request that never went out (no connection, or hyper gave it back) is returned with
    /// the error ([`Unsent::head`]), so a retry can send its head again without a copy.
    ///
    /// Not an `async fn`: one would hold the request and the chosen protocol's future once
    /// more, and move that future on every call.
    pub(crate) fn send(
        self: &Arc<Self>,
        request: Request<UpstreamBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, Unsent>> + Send + '_ {
        if self.uses_http2(&request) {
            Either::Left(self.send_h2(request))
        } else {
            Either::Right(self.send_h1(request))
        }
    }

    /// Whether `request` goes out over HTTP/2.
    pub(crate) fn uses_http2<B>(&self, request: &Request<B>) -> bool {
        self.settings.http2 || request.version() == http::Version::HTTP_2
    }

    async fn send_h2(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Unsent> {
        let conn = match self.h2_conn().await {
            Ok(conn) => conn,
            Err(error) => return Err(Unsent::before_sending(error, request)),
        };
        let limit = self.settings.max_requests_per_connection;
        let n = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
        crate::trace::index_trace_names(request.headers_mut(), n);
        if limit != 0 && n >= limit {
            // This is the connection's last request; the next one opens a new connection.
            let current = Some(conn.clone());
            self.h2.compare_and_swap(&current, None);
        }
        let mut sender = conn.sender.clone();
        match sender.try_send_request(request).await {
            Ok(response) => Ok(with_peer(response, conn.peer.as_ref())),
            Err(e) => Err(Unsent::from_hyper(e)),
        }
    }

    /// The live HTTP/2 connection, or a new one. The fast path is one atomic load and two
    /// checks, no lock; only opening a connection is serialized.
    async fn h2_conn(&self) -> Result<Arc<H2Conn>, SendError> {
        if let Some(conn) = self.live_h2() {
            return Ok(conn);
        }
        // Boxed: opening a connection (TCP, TLS and HTTP/2 handshakes) is a large future that
        // every call's future would otherwise carry, and copy, for the rare call that opens one.
        Box::pin(self.open_h2()).await
    }

    /// Opens the HTTP/2 connection, unless another request did while this one waited.
    async fn open_h2(&self) -> Result<Arc<H2Conn>, SendError> {
        let _connecting = self.h2_connecting.lock().await;
        if let Some(conn) = self.live_h2() {
            return Ok(conn);
        }
        // A connection past `maxConnectionDuration` takes no new streams; it closes once its
        // open streams end and the last handle to it is dropped (Envoy drains it likewise).
        let (io, peer, permit) = self.open(true).await?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(hyper_util::rt::TokioTimer::new());
        // PINGs only when `connectionPool.http.http2KeepAlive` asks for them: istiod sets
        // Envoy's `connection_keepalive` from it alone (`applyConnectionPool`,
        // pilot/pkg/networking/core/cluster_traffic_policy.go), and Envoy sends none without
        // it. (hyper's keep-alive also reads the clock and resets a timer as data arrives.)
        if let Some(keepalive) = &self.settings.http2_keepalive {
            builder
                .keep_alive_interval(keepalive.interval)
                .keep_alive_timeout(keepalive.timeout)
                // Envoy PINGs configured connections whether or not streams are open.
                .keep_alive_while_idle(true);
        }
        let (sender, connection) = builder
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| ConnectError::Handshake(e.to_string()))?;
        drive(connection, permit, "HTTP/2");
        let conn = Arc::new(H2Conn {
            sender,
            requests: AtomicU32::new(0),
            peer,
            opened: Instant::now(),
        });
        self.h2.store(Some(conn.clone()));
        Ok(conn)
    }

    /// The HTTP/2 connection if it can take a new stream: open, and not past
    /// `maxConnectionDuration`.
    fn live_h2(&self) -> Option<Arc<H2Conn>> {
        let guard = self.h2.load();
        let conn = guard.as_ref()?;
        let too_old = self.settings.max_connection_duration.is_some()
            && self.too_old(conn.opened, Instant::now());
        (!conn.sender.is_closed() && !too_old).then(|| conn.clone())
    }

    async fn send_h1(
        self: &Arc<Self>,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Unsent> {
        // An idle connection is the fast path; opening one or waiting for one to be freed is a
        // large future, boxed so that it does not size every call's future (as for HTTP/2).
        let conn = match self.checkout_h1() {
            Some(conn) => Ok((conn.sender, conn.requests, conn.peer, conn.opened)),
            None => Box::pin(self.h1_conn()).await,
        };
        let (mut sender, requests, peer, opened) = match conn {
            Ok(conn) => conn,
            Err(error) => return Err(Unsent::before_sending(error, request)),
        };
        let result = sender
            .try_send_request(request)
            .await
            .map(|r| with_peer(r, peer.as_ref()));
        let requests = requests + 1;
        let limit = self.settings.max_requests_per_connection;
        if result.is_ok() && (limit == 0 || requests < limit) {
            // Ready again once this response's body has been read; checkout skips it until then.
            self.lock_idle().push(H1Conn {
                sender,
                requests,
                idle_since: Instant::now(),
                peer,
                opened,
            });
        }
        result.map_err(Unsent::from_hyper)
    }

    /// An idle connection, or a new one under the connection limit, or, at the limit, the
    /// first one freed while this request waits as pending (bounded by `http1MaxPendingRequests`
    /// and the connect timeout).
    async fn h1_conn(
        &self,
    ) -> Result<
        (
            http1::SendRequest<UpstreamBody>,
            u32,
            Option<PeerIdentity>,
            Instant,
        ),
        SendError,
    > {
        let mut pending: Option<Permit> = None;
        let deadline = Instant::now() + self.settings.connect_timeout;
        loop {
            let released = self.released.notified();
            if let Some(conn) = self.checkout_h1() {
                return Ok((conn.sender, conn.requests, conn.peer, conn.opened));
            }
            match self.open_h1().await {
                Ok((sender, peer)) => return Ok((sender, 0, peer, Instant::now())),
                Err(SendError::Overflow(overflow)) => {
                    if pending.is_none() {
                        pending = Some(self.breaker.try_pending()?);
                    }
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return Err(SendError::Overflow(overflow));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A new HTTP/1.1 connection, its task spawned.
    async fn open_h1(
        &self,
    ) -> Result<(http1::SendRequest<UpstreamBody>, Option<PeerIdentity>), SendError> {
        let (io, peer, permit) = self.open(false).await?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| ConnectError::Handshake(e.to_string()))?;
        drive(connection, permit, "HTTP/1.1");
        Ok((sender, peer))
    }

    fn checkout_h1(&self) -> Option<H1Conn> {
        let mut idle = self.lock_idle();
        let now = Instant::now();
        let timeout = self.settings.idle_timeout;
        idle.retain(|c| {
            !c.sender.is_closed()
                && timeout.is_none_or(|t| now.duration_since(c.idle_since) < t)
                && !self.too_old(c.opened, now)
        });
        let ready = idle.iter().position(|c| c.sender.is_ready())?;
        Some(idle.swap_remove(ready))
    }

    /// Whether a connection opened at `opened` is past `maxConnectionDuration`.
    fn too_old(&self, opened: Instant, now: Instant) -> bool {
        self.settings
            .max_connection_duration
            .is_some_and(|max| now.duration_since(opened) >= max)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<H1Conn>> {
        // The list is only pushed to and filtered; a panic cannot leave it torn.
        self.h1_idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a request could not be exchanged, and its head if it never went out.
pub(crate) struct Unsent {
    pub(crate) error: SendError,
    /// The request's head, when no byte of it was sent: hyper returns the request it could not
    /// send (`TrySendError::take_message`), and one with no connection was never given to it.
    pub(crate) head: Option<http::request::Parts>,
}

impl Unsent {
    fn before_sending(error: SendError, request: Request<UpstreamBody>) -> Self {
        Self {
            error,
            head: Some(request.into_parts().0),
        }
    }

    fn from_hyper(mut e: hyper::client::conn::TrySendError<Request<UpstreamBody>>) -> Self {
        let unsent = e.take_message();
        let error = classify(e.into_error(), unsent.is_none());
        Self {
            error,
            head: unsent.map(|r| r.into_parts().0),
        }
    }
}

/// Sorts a hyper error into what retry policies understand.
fn classify(error: hyper::Error, sent: bool) -> SendError {
    if !sent || is_refused_stream(&error) {
        SendError::Refused(error)
    } else {
        SendError::Reset(error)
    }
}

fn is_refused_stream(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = e.source();
    }
    false
}
