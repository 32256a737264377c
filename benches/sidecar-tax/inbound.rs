//! Arm B's server stack, assembled from mesh-tower's inbound pieces: the mutual-TLS acceptor by
//! PeerAuthentication mode, AuthorizationPolicy enforcement, and `reporter="destination"`
//! telemetry (Istio metrics, service graph) recorded when each response ends.
//!
//! `mesh_tower::serve` (being written on another branch) is this stack with connection limits
//! and graceful drain; when it lands, [`serve_mesh`] becomes one call to `mesh_tonic::serve`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Buf;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use mesh_core::Mesh;
use mesh_core::identity::{PeerIdentity, TlsIdentity};
use mesh_core::model::ServiceKey;
use mesh_core::telemetry::{PeerWorkload, Reporter, RequestRecord, SecurityPolicy};
use mesh_tower::inbound::{AuthzLayer, LocalAddr, PeerInfo, RemoteAddr};
use mesh_tower::telemetry::{Telemetry, grpc_status, peer_workload, request_protocol};
use mesh_tower::tls::{TlsAcceptor, serve_connection};
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceBuilder};

/// Istio's default cluster id, as in peer metadata.
const CLUSTER_ID: &str = "Kubernetes";

/// The verified client identity, as the authorization layer reads it.
#[derive(Clone, Debug)]
pub struct Peer(PeerIdentity);

impl PeerInfo for Peer {
    fn principal(&self) -> Option<&str> {
        Some(self.0.principal())
    }

    fn sni(&self) -> Option<&str> {
        None
    }
}

/// Serves `routes` on `listener` with mesh's inbound policy for `mesh`'s workload: mutual TLS
/// per PeerAuthentication, authorization, destination telemetry into `telemetry`.
pub async fn serve_mesh(
    mesh: &Mesh,
    identity: TlsIdentity,
    telemetry: Telemetry,
    listener: TcpListener,
    routes: tonic::service::Routes,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let snapshot = mesh.snapshot();
    let mode = snapshot.inbound.peer_authentication.mode_for(local.port());
    let authz = AuthzLayer::<Peer>::new(Arc::new(ArcSwap::new(snapshot)));
    let workload = &mesh.context().workload;
    let me = Arc::new(Me {
        workload: PeerWorkload::from_workload(workload, CLUSTER_ID),
        principal: identity.credentials().spiffe_id().to_string(),
        service: ServiceKey {
            host: format!("{}.{}.svc.cluster.local", workload.name, workload.namespace),
            namespace: workload.namespace.clone(),
            port: local.port(),
            subset: None,
        },
    });
    let acceptor = TlsAcceptor::new(identity);
    loop {
        let (tcp, remote) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (acceptor, authz, routes) = (acceptor.clone(), authz.clone(), routes.clone());
        let record = RecordLayer {
            telemetry: telemetry.clone(),
            me: me.clone(),
        };
        tokio::spawn(async move {
            let Ok(accepted) = acceptor.accept(tcp, mode).await else {
                return;
            };
            let service = ServiceBuilder::new()
                .map_request(move |mut request: Request<_>| {
                    connection_facts(&mut request, remote, local);
                    request
                })
                .layer(record)
                .layer(authz)
                .service(routes);
            let _ = serve_connection(accepted, service).await;
        });
    }
}

/// Adds what the connection knows to a request: addresses, and the peer as [`Peer`].
fn connection_facts<B>(request: &mut Request<B>, remote: SocketAddr, local: SocketAddr) {
    let peer = request.extensions().get::<PeerIdentity>().cloned();
    let extensions = request.extensions_mut();
    extensions.insert(RemoteAddr(remote));
    extensions.insert(LocalAddr(local));
    if let Some(peer) = peer {
        extensions.insert(Peer(peer));
    }
}

/// This workload, for its records.
#[derive(Debug)]
struct Me {
    workload: PeerWorkload,
    principal: String,
    service: ServiceKey,
}

/// Records a `reporter="destination"` [`RequestRecord`] for every request, when its response
/// body ends (or is dropped).
#[derive(Clone, Debug)]
struct RecordLayer {
    telemetry: Telemetry,
    me: Arc<Me>,
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`RecordLayer`].
#[derive(Clone, Debug)]
struct Record<S> {
    inner: S,
    layer: RecordLayer,
}

impl<S, B, RB> Service<Request<B>> for Record<S>
where
    S: Service<Request<Counted<B>>, Response = Response<RB>>,
{
    type Response = Response<Counted<RB>>;
    type Error = S::Error;
    type Future = RecordFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let me = &self.layer.me;
        let mut r = RequestRecord::new(Reporter::Destination, SystemTime::now());
        r.method = request.method().as_str().to_owned();
        r.path = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |p| p.as_str().to_owned(),
        );
        r.authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        r.protocol = request_protocol(request.headers());
        r.source = peer_workload(request.headers()).unwrap_or_default();
        r.destination = me.workload.clone();
        r.destination_principal = Some(me.principal.clone());
        r.destination_service = Some(me.service.clone());
        let extensions = request.extensions();
        r.peer_address = extensions.get::<RemoteAddr>().map(|a| a.0.to_string());
        match extensions.get::<Peer>() {
            Some(peer) => {
                r.source_principal = Some(peer.0.spiffe_id().to_string());
                r.security = SecurityPolicy::MutualTls;
            }
            None => r.security = SecurityPolicy::None,
        }
        let request_bytes = Arc::new(AtomicU64::new(0));
        let request = request.map(|body| Counted::new(body, request_bytes.clone(), None));
        RecordFuture {
            inner: self.inner.call(request),
            pending: Some(Pending {
                telemetry: self.layer.telemetry.clone(),
                record: r,
                started: Instant::now(),
                request_bytes,
                response_bytes: 0,
            }),
        }
    }
}

/// A request being recorded: completed and recorded when dropped (with the response body, or
/// with the future if the service failed).
struct Pending {
    telemetry: Telemetry,
    record: RequestRecord,
    started: Instant,
    request_bytes: Arc<AtomicU64>,
    response_bytes: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.record.duration = self.started.elapsed();
        self.record.request_bytes = self.request_bytes.load(Ordering::Relaxed);
        self.record.response_bytes = self.response_bytes;
        self.telemetry.record(&self.record);
    }
}

pin_project! {
    /// [`Record`]'s future: hands the pending record to the response body.
    struct RecordFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, RB, E> Future for RecordFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<Counted<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let mut pending = this.pending.take();
        if let Some(p) = &mut pending {
            p.record.response_code = Some(response.status().as_u16());
            p.record.grpc_status = grpc_status(response.headers());
        }
        let unused = Arc::new(AtomicU64::new(0));
        Poll::Ready(Ok(response.map(|body| Counted::new(body, unused, pending))))
    }
}

pin_project! {
    /// A body counting its data bytes; a response body also carries the pending record (its
    /// trailers' `grpc-status` and byte count complete it).
    struct Counted<B> {
        #[pin]
        inner: B,
        bytes: Arc<AtomicU64>,
        pending: Option<Pending>,
    }
}

impl<B> Counted<B> {
    fn new(inner: B, bytes: Arc<AtomicU64>, pending: Option<Pending>) -> Self {
        Self {
            inner,
            bytes,
            pending,
        }
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                let n = data.remaining() as u64;
                match this.pending {
                    Some(p) => p.response_bytes += n,
                    None => {
                        this.bytes.fetch_add(n, Ordering::Relaxed);
                    }
                }
            } else if let (Some(trailers), Some(p)) = (frame.trailers_ref(), this.pending) {
                complete_from_trailers(p, trailers);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn complete_from_trailers(p: &mut Pending, trailers: &HeaderMap) {
    if let Some(status) = grpc_status(trailers) {
        p.record.grpc_status = Some(status);
    }
}
