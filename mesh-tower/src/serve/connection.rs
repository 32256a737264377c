//! One accepted connection: TLS by mode, then HTTP under a supervisor that closes it when it
//! only holds a slot, until it closes or the server drains.
//!
//! The supervisor asks the connection to close (HTTP/2 GOAWAY, HTTP/1 close after the current
//! exchange) and drops it [`ServeOptions::close_grace`] later when:
//! - no request arrived within the header read timeout of the accept (a client that connects
//!   and stays silent, on any port mode);
//! - no request was in flight for the idle timeout;
//! - requests were in flight but no byte moved for the stream idle timeout (a client that
//!   stopped reading an HTTP/1 response, or stopped sending a body); HTTP/2 streams are also
//!   timed out one by one ([`super::executor`]);
//! - the accept loop evicted it above the high-water mark ([`super::registry`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use mesh_core::Mesh;
use mesh_core::model::MtlsMode;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

use super::activity::ActivityIo;
use super::conn_info::ConnInfo;
use super::executor::StreamExecutor;
use super::guard::Guard;
use super::on_wake::OnWake;
use super::options::{HeadersWithUnderscores, ServeOptions};
use super::refusals::{Reason, Refusals};
use super::registry::{ConnState, Registered};
use super::xfcc;
use crate::inbound::{Connection, Inbound, own_principal};
use crate::tls::{Accepted, BoxError, HttpVersion, Rewind, ServerStream, TlsAcceptor, TlsError};

/// hyper refuses HTTP/1 read buffers smaller than this.
const MIN_H1_BUF: usize = 8 * 1024;

/// The most often the supervisor wakes to check a connection's timeouts.
const MIN_CHECK: Duration = Duration::from_millis(10);

/// What every connection of a server shares.
pub(super) struct ConnCtx {
    mesh: Mesh,
    /// `None` when the mesh has no workload identity.
    acceptor: Option<TlsAcceptor>,
    http: auto::Builder<StreamExecutor>,
    pub(super) refusals: Refusals,
    timeouts: Timeouts,
    underscores: HeadersWithUnderscores,
}

#[derive(Clone, Copy, Debug)]
struct Timeouts {
    first_request: Duration,
    idle: Duration,
    stream_idle: Duration,
    close_grace: Duration,
}

impl ConnCtx {
    pub(super) fn new(mesh: Mesh, options: &ServeOptions) -> Self {
        let acceptor = mesh
            .identity()
            .map(|id| TlsAcceptor::new(id.clone()).handshake_timeout(options.handshake_timeout));
        Self {
            mesh,
            acceptor,
            http: http_builder(options),
            refusals: Refusals::new(options.refusal_log_interval),
            underscores: options.headers_with_underscores,
            timeouts: Timeouts {
                first_request: options.header_read_timeout,
                idle: options.idle_timeout,
                stream_idle: options.stream_idle_timeout,
                close_grace: options.close_grace,
            },
        }
    }
}

fn http_builder(o: &ServeOptions) -> auto::Builder<StreamExecutor> {
    let mut b = auto::Builder::new(StreamExecutor::new(o.stream_idle_timeout));
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(o.header_read_timeout)
        .max_buf_size((o.max_header_list_size as usize).max(MIN_H1_BUF));
    let mut h2 = b.http2();
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(o.max_concurrent_streams)
        .max_header_list_size(o.max_header_list_size)
        .max_pending_accept_reset_streams(o.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(o.max_local_error_reset_streams)
        .initial_stream_window_size(o.initial_stream_window_size)
        .initial_connection_window_size(o.initial_connection_window_size)
        .max_send_buf_size(o.max_send_buf_size);
    if let Some((interval, timeout)) = o.http2_keep_alive {
        h2.keep_alive_interval(interval).keep_alive_timeout(timeout);
    }
    b
}

/// Serves one connection with `app` (the application behind the inbound policy); every outcome
/// is logged or counted here, nothing is returned.
pub(super) async fn connection<A, B>(
    ctx: Arc<ConnCtx>,
    app: Inbound<A>,
    stream: TcpStream,
    remote: SocketAddr,
    registered: Registered,
    mut drain: watch::Receiver<bool>,
) where
    A: Clone,
    Inbound<A>: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    <Inbound<A> as Service<Request<Incoming>>>::Future: Send + 'static,
    <Inbound<A> as Service<Request<Incoming>>>::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(error) => {
            tracing::debug!(target: "mesh::inbound", %remote, %error, "connection lost");
            return;
        }
    };
    // Small writes (headers, gRPC messages) should not wait for Nagle.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(target: "mesh::inbound", %remote, %error, "cannot set TCP_NODELAY");
    }
    let mode = ctx
        .mesh
        .snapshot()
        .inbound
        .peer_authentication
        .mode_for(local.port());
    let accepted = match (&ctx.acceptor, mode) {
        (Some(acceptor), mode) => match acceptor.accept(stream, mode).await {
            Ok(accepted) => accepted,
            Err(TlsError::ClosedEarly) => return,
            Err(error) => {
                let reason = Reason::of(&error);
                ctx.refusals.refused(reason, remote, local, mode, &error);
                return;
            }
        },
        (None, MtlsMode::Strict) => {
            ctx.refusals.refused(
                Reason::NoIdentity,
                remote,
                local,
                mode,
                &"PeerAuthentication is STRICT on this port but no workload identity is \
                  configured (Mesh::builder().identity_files)",
            );
            return;
        }
        (None, _) => Accepted {
            stream: ServerStream::Plain(Rewind::new(Bytes::new(), stream)),
            peer: None,
            http: None,
        },
    };

    let state = registered.state.clone();
    // Our principal, once per connection: the XFCC element's `By` and the records' destination
    // principal.
    let principal = own_principal(&ctx.mesh);
    let element = xfcc_element(principal.as_deref(), &accepted);
    let conn = Arc::new(Connection::new(
        Some(remote),
        Some(local),
        accepted.peer,
        principal,
    ));
    let service = ConnInfo::new(app.for_connection(conn.clone()), conn);
    let service = Guard::new(service, state.clone(), element, ctx.underscores);
    let service = hyper::service::service_fn(move |req| service.clone().oneshot(req));
    let builder = match accepted.http {
        Some(HttpVersion::Http2) => ctx.http.clone().http2_only(),
        Some(HttpVersion::Http1) => ctx.http.clone().http1_only(),
        None => ctx.http.clone(),
    };
    let io = TokioIo::new(ActivityIo::new(accepted.stream, state.clone()));
    // With upgrades, so WebSocket and CONNECT handlers (axum's `WebSocketUpgrade`) work.
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);

    let timeouts = ctx.timeouts;
    let mut closing: Option<Instant> = None;
    let mut draining = *drain.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let wake = closing.unwrap_or_else(|| next_check(&state, timeouts, Instant::now()));
        // The supervisor's events, polled only when one of them woke the task (`on_wake`):
        // the connection wakes it for every frame.
        let events = OnWake::new(async {
            tokio::select! {
                biased;
                changed = drain.changed(), if !draining => {
                    // A dropped sender is a drain too: the server is gone.
                    let _ = changed;
                    Event::Drain
                }
                () = state.close_requested(), if closing.is_none() => Event::Evicted,
                () = tokio::time::sleep_until(wake) => Event::Timer,
            }
        });
        let event = tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(
                        target: "mesh::inbound", %remote, %error, "connection ended with an error"
                    );
                }
                return;
            }
            event = events => event,
        };
        let close = match event {
            Event::Drain => {
                draining = true;
                if closing.is_none() {
                    conn.as_mut().graceful_shutdown();
                }
                continue;
            }
            Event::Evicted => Close::Evicted,
            Event::Timer => {
                if closing.is_some() {
                    // The grace is over: drop it.
                    return;
                }
                match expired(&state, timeouts, Instant::now()) {
                    Some(close) => close,
                    None => continue,
                }
            }
        };
        tracing::debug!(target: "mesh::inbound", %remote, reason = close.label(), "closing the connection");
        metrics::counter!(CONNECTIONS_CLOSED, "reason" => close.label()).increment(1);
        conn.as_mut().graceful_shutdown();
        closing = Some(Instant::now() + timeouts.close_grace);
    }
}

/// What woke the supervisor.
enum Event {
    /// The server drains (or is gone).
    Drain,
    /// The accept loop evicted the connection.
    Evicted,
    /// The next check, or the end of the close grace.
    Timer,
}

/// Why the server closes a connection itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// Above the high-water mark, or at the cap, as the idlest connection.
    Evicted,
    /// No request within the header read timeout of the accept.
    NoRequest,
    /// No request in flight for the idle timeout.
    Idle,
    /// Requests in flight (or a response unread) but no byte moved for the stream idle timeout.
    Stalled,
}

impl Close {
    /// The `reason` label of [`CONNECTIONS_CLOSED`].
    fn label(self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::NoRequest => "no_request",
            Self::Idle => "idle_timeout",
            Self::Stalled => "stream_idle_timeout",
        }
    }
}

/// Counter of connections the server closed itself, by `reason`.
pub(super) const CONNECTIONS_CLOSED: &str = "mesh_inbound_connections_closed_total";

/// Which timeout, if any, has expired on a connection.
fn expired(state: &ConnState, t: Timeouts, now: Instant) -> Option<Close> {
    if state.active() > 0 || state.write_blocked() {
        return (state.quiet_for(now) >= t.stream_idle).then_some(Close::Stalled);
    }
    let idle = state.idle_for(now);
    if state.requests() == 0 && idle >= t.first_request {
        return Some(Close::NoRequest);
    }
    (idle >= t.idle).then_some(Close::Idle)
}

/// When to look again: the earliest moment a timeout could expire.
fn next_check(state: &ConnState, t: Timeouts, now: Instant) -> Instant {
    let stalled_in = t.stream_idle.saturating_sub(state.quiet_for(now));
    let left = if state.active() > 0 || state.write_blocked() {
        // Requests in flight: look again at the stall deadline. A request that ends before
        // then starts the idle clock, read at that look, at most `stream_idle` late.
        stalled_in.min(t.idle)
    } else {
        let idle = state.idle_for(now);
        let limit = if state.requests() == 0 {
            t.first_request.min(t.idle)
        } else {
            t.idle
        };
        // A write may block later without waking the supervisor: look again by the stall
        // deadline too.
        limit
            .saturating_sub(idle)
            .min(stalled_in.max(t.stream_idle / 4))
    };
    now + left.max(MIN_CHECK)
}

/// Our XFCC element for a mutual-TLS connection's verified peer; `by` is our principal.
fn xfcc_element<IO>(by: Option<&str>, accepted: &Accepted<IO>) -> Option<HeaderValue> {
    let ServerStream::Tls(tls) = &accepted.stream else {
        return None;
    };
    let leaf = tls.get_ref().1.peer_certificates()?.first()?;
    xfcc::element(by, leaf)
}
