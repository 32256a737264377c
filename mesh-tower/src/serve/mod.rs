//! The inbound server: [`serve`] and its options. Documented on [`serve`], the public entry.

mod activity;
mod conn_info;
mod connection;
mod connection_settings;
mod executor;
mod guard;
mod on_wake;
mod options;
mod refusals;
mod registry;
mod xfcc;

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::Mesh;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_layer::Layer;
use tower_service::Service;

pub use connection_settings::{ConnectionSettings, ConnectionSettingsError};
pub use options::{HeadersWithUnderscores, ServeOptions};

use self::connection::{ConnCtx, connection};
use self::registry::Registry;
use crate::inbound::{InboundLayer, RequestBody};
use crate::tls::BoxError;

/// How long the accept loop pauses after an accept error (e.g. out of file descriptors), so it
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How often a connection waiting at the cap looks again for an idle connection to close.
const EVICT_RETRY: Duration = Duration::from_millis(100);

/// Serves `service` (an axum `Router`, tonic `Routes`, any tower HTTP service) on `listener`
/// under `mesh`'s inbound policy, as a sidecar's inbound listener would. Await the returned
/// [`Serve`] to run it.
///
/// For each accepted connection, in order:
///
/// 1. **Connection limit.** At most [`ServeOptions::max_connections`] are served at once; a
///    connection over the cap waits for a slot (the rest queue in the kernel). Above
///    [`ServeOptions::connection_high_water`], and at the cap, each new connection makes the
///    connection idle the longest close, so idle connections cannot lock callers out.
/// 2. **TLS by mode.** The PeerAuthentication mode of the listener's port is read from the
///    current snapshot (so a config change applies to the next connection): STRICT requires
///    mutual TLS, PERMISSIVE detects TLS or plaintext on the same port, DISABLE serves
///    plaintext ([`TlsAcceptor`](crate::tls::TlsAcceptor), bounded by the handshake timeout).
///    Without a workload identity ([`Mesh::identity`]) the server **fails closed** on STRICT
///    ports: each connection is refused with a logged reason. PERMISSIVE ports without an
///    identity serve plaintext only.
/// 3. **HTTP/1.1 and HTTP/2** on one port (hyper-util's auto server; ALPN or the sniffed
///    preface settles the version when known), with HTTP/2 limits on: concurrent streams,
///    header list size, and hyper's rapid-reset protections
///    ([`ServeOptions::max_pending_accept_reset_streams`],
///    [`ServeOptions::max_local_error_reset_streams`]), bounded flow-control windows and send
///    buffers, and timeouts on every way a peer can hold a connection or stream without
///    progress: [`ServeOptions::header_read_timeout`] (also for the first request of a
///    connection), [`ServeOptions::stream_idle_timeout`] and [`ServeOptions::idle_timeout`].
///    Refused connections are counted and logged at a bounded rate
///    ([`ServeOptions::refusal_log_interval`]).
/// 4. **Request checks**, as Envoy's codecs make them: a method that is not upper case, an
///    HTTP/1.1 request without exactly one valid `Host`, get 400 before authorization; the
///    `x-forwarded-client-cert` header is removed on plaintext and replaced by the
///    verified peer's element on mutual TLS (Envoy's `SANITIZE_SET`).
/// 5. **Per request**: [`RemoteAddr`](crate::inbound::RemoteAddr),
///    [`LocalAddr`](crate::inbound::LocalAddr) and the verified
///    [`PeerIdentity`](mesh_core::identity::PeerIdentity) as extensions, then the
///    [`InboundLayer`](crate::inbound::InboundLayer): trace context, metadata exchange,
///    authorization, telemetry.
///
/// [`Serve::with_graceful_shutdown`] stops accepting when the signal fires, lets requests in
/// flight (streaming responses included) finish, and closes what is left at the drain deadline
/// ([`ServeOptions::drain_timeout`]).
///
/// The service receives requests whose body is a [`RequestBody`] over hyper's `Incoming`; an
/// axum `Router` and tonic `Routes` accept any body, so they serve as they are.
///
/// An axum app whose handler reads the caller's verified identity, stopped by Ctrl-C:
///
/// ```
/// use axum::{Extension, Router, routing::get};
/// use mesh_core::identity::PeerIdentity;
///
/// async fn whoami(peer: Option<Extension<PeerIdentity>>) -> String {
///     match peer {
///         Some(Extension(peer)) => format!("hello, {}\n", peer.spiffe_id()),
///         None => "hello, plaintext caller\n".to_owned(), // PERMISSIVE or DISABLE only
///     }
/// }
///
/// async fn run(mesh: mesh_core::Mesh) -> std::io::Result<()> {
///     let app = Router::new().route("/whoami", get(whoami));
///     let listener = tokio::net::TcpListener::bind("0.0.0.0:9080").await?;
///     mesh_tower::serve(&mesh, listener, app)
///         .with_graceful_shutdown(async {
///             let _ = tokio::signal::ctrl_c().await;
///         })
///         .await
/// }
/// ```
pub fn serve<S, B>(mesh: &Mesh, listener: TcpListener, service: S) -> Serve<S>
where
    S: Service<Request<RequestBody<Incoming>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Serve {
        mesh: mesh.clone(),
        listener,
        service,
        options: ServeOptions::default(),
        signal: None,
    }
}

/// A server not yet running: set options, then `.await` it.
pub struct Serve<S> {
    mesh: Mesh,
    listener: TcpListener,
    service: S,
    options: ServeOptions,
    signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<S> fmt::Debug for Serve<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener.local_addr().ok())
            .field("options", &self.options)
            .field("graceful_shutdown", &self.signal.is_some())
            .finish()
    }
}

impl<S> Serve<S> {
    /// Replaces the options.
    pub fn options(mut self, options: ServeOptions) -> Self {
        self.options = options;
        self
    }

    /// Stops accepting when `signal` completes, then drains (see [`serve`]).
    /// Without it the server runs until the listener fails.
    pub fn with_graceful_shutdown(
        mut self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl<S, B> IntoFuture for Serve<S>
where
    S: Service<Request<RequestBody<Incoming>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<S, B> Serve<S>
where
    S: Service<Request<RequestBody<Incoming>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    async fn run(self) -> io::Result<()> {
        let Serve {
            mesh,
            listener,
            service,
            options,
            signal,
        } = self;
        let mut signal = signal.unwrap_or_else(|| Box::pin(std::future::pending()));
        let mut layer = InboundLayer::new(&mesh, options.telemetry.clone());
        if let Some(seed) = options.seed {
            layer = layer.seed(seed);
        }
        let app = layer.layer(service);
        let ctx = Arc::new(ConnCtx::new(mesh, &options));
        let limit = Arc::new(Semaphore::new(options.max_connections));
        let registry = Arc::new(Registry::new());
        let (drain, drained) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let local = listener.local_addr()?;
        tracing::info!(target: "mesh::inbound", %local, "serving");

        'accept: loop {
            let (stream, remote) = tokio::select! {
                biased;
                () = &mut signal => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(target: "mesh::inbound", %local, %error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            // Above the high-water mark, each new connection closes the idlest one, so idle
            // connections cannot hold the cap against callers with requests to make.
            if registry.len() >= options.connection_high_water {
                registry.evict_idlest();
            }
            // At the cap, the new connection waits (the rest queue in the kernel) while the
            // idlest connection is asked to close; if none is idle, until one ends.
            let permit = match limit.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => loop {
                    registry.evict_idlest_unless_leaving();
                    tokio::select! {
                        biased;
                        () = &mut signal => break 'accept,
                        permit = limit.clone().acquire_owned() => match permit {
                            Ok(permit) => break permit,
                            Err(_) => break 'accept, // never closed
                        },
                        Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                        () = tokio::time::sleep(EVICT_RETRY) => {}
                    }
                },
            };
            let registered = registry.register();
            let conn = connection(
                ctx.clone(),
                app.clone(),
                stream,
                remote,
                registered,
                drained.clone(),
            );
            tasks.spawn(async move {
                conn.await;
                drop(permit);
            });
        }

        drop(listener);
        tracing::info!(
            target: "mesh::inbound",
            %local,
            connections = tasks.len(),
            deadline = ?options.drain_timeout,
            "draining"
        );
        let _ = drain.send(true);
        let drained = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(options.drain_timeout, drained)
            .await
            .is_err()
        {
            tracing::warn!(
                target: "mesh::inbound",
                %local,
                connections = tasks.len(),
                "drain deadline passed; closing the remaining connections"
            );
        }
        tasks.shutdown().await;
        Ok(())
    }
}
