//! The inbound server: [`serve`] and its options. Documented on [`serve`], the public entry.

mod conn_info;
mod connection;
mod options;

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
use hyper_util::server::graceful::GracefulShutdown;
use mesh_core::Mesh;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_layer::Layer;
use tower_service::Service;

pub use options::ServeOptions;

use self::connection::{ConnCtx, connection};
use crate::inbound::{InboundLayer, RequestBody};
use crate::tls::BoxError;

/// How long the accept loop pauses after an accept error (e.g. out of file descriptors), so it
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `service` (an axum `Router`, tonic `Routes`, any tower HTTP service) on `listener`
/// under `mesh`'s inbound policy, as a sidecar's inbound listener would. Await the returned
/// [`Serve`] to run it.
///
/// For each accepted connection, in order:
///
/// 1. **Connection limit.** At most [`ServeOptions::max_connections`] are served at once; the
///    accept loop waits for a slot, so extra connections queue in the kernel.
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
///    [`ServeOptions::max_local_error_reset_streams`]).
/// 4. **Per request**: [`RemoteAddr`](crate::inbound::RemoteAddr),
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
        let graceful = GracefulShutdown::new();
        let mut tasks = JoinSet::new();
        let local = listener.local_addr()?;
        tracing::info!(target: "mesh::inbound", %local, "serving");

        loop {
            let permit = tokio::select! {
                biased;
                () = &mut signal => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                permit = limit.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break, // never closed
                },
            };
            let (stream, remote) = tokio::select! {
                biased;
                () = &mut signal => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(target: "mesh::inbound", %local, %error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let conn = connection(ctx.clone(), app.clone(), stream, remote, graceful.watcher());
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
        if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
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
