//! The ADS server behind `mesh xds serve`: Istio files, watched, served as LDS/RDS/CDS/EDS to
//! Envoy sidecars and proxyless gRPC clients, over state-of-the-world ADS (what gRPC speaks) or
//! incremental ADS (what Envoy sidecars speak since Istio 1.22), one stream per client.
//!
//! Each client gets its own view, as istiod builds it: the node's namespace, labels and service
//! account (from Istio's node id and metadata) are the [`BuildContext`] the files are read for.
//! Every valid edit of the files is pushed to every stream; an invalid edit is logged and the
//! last good config keeps being served (invalid files at start are left out and reported the
//! same way). ACKs and NACKs from clients are logged and counted
//! (`mesh_xds_server_responses_total{type, result}`).
//!
//! It is a development and small-fleet control plane and the test peer of the client. What one
//! client can make it hold is bounded ([`limits`]).
//!
//! Secured ([`XdsServer::new_secured`], what `mesh xds serve --ca-dir` runs), it is also what
//! istiod is outside Kubernetes: its port speaks TLS only ([`tls`]), every call is authenticated
//! by client certificate or bootstrap token ([`auth`]), each node gets only the config of the
//! identity it proved, it is the mesh's CA ([`ca`]) and it serves each node its certificate
//! over SDS ([`sds`]). Without security it speaks plaintext
//! and believes every node's claims: for tests and a trusted host only.

pub mod auth;
pub mod ca;
mod delta;
pub mod limits;
pub mod sds;
pub mod security;
mod session;
mod stream;
pub mod tls;
mod view;

pub use security::{ControlPlaneSecurity, SecurityError};

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use mesh_core::{BuildContext, Mesh, MeshError, MeshSettings};
use tokio::sync::watch;

use super::stream::ReceiverStream;

/// A running file-backed control plane. Cheap to clone.
#[derive(Clone, Debug)]
pub struct XdsServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    paths: Vec<PathBuf>,
    settings: MeshSettings,
    /// Watches the files; its snapshots (built for the default point of view) signal edits.
    mesh: Mesh,
    /// Set when the server stops: every stream ends.
    stop: watch::Sender<bool>,
    /// The CA, tokens and TLS of a secured control plane; `None`: plaintext, unauthenticated.
    security: Option<ControlPlaneSecurity>,
}

impl XdsServer {
    /// Loads and watches `paths`. Invalid files do not stop it: it starts with the valid ones
    /// and reports the others (the mesh's status, a log line per error), as it reports an
    /// invalid edit while running; once they are fixed, the whole config is served.
    ///
    /// This server is unauthenticated and speaks plaintext: for tests and a trusted host. A
    /// fleet's control plane is [`new_secured`](Self::new_secured).
    pub async fn new(paths: Vec<PathBuf>, settings: MeshSettings) -> Result<Self, MeshError> {
        Self::build(paths, settings, None).await
    }

    /// Like [`new`](Self::new), secured: TLS on the port, every caller authenticated, each node
    /// held to its identity, and the CA service (`IstioCertificateService`) beside ADS.
    pub async fn new_secured(
        paths: Vec<PathBuf>,
        settings: MeshSettings,
        security: ControlPlaneSecurity,
    ) -> Result<Self, MeshError> {
        Self::build(paths, settings, Some(security)).await
    }

    async fn build(
        paths: Vec<PathBuf>,
        settings: MeshSettings,
        security: Option<ControlPlaneSecurity>,
    ) -> Result<Self, MeshError> {
        let mut builder = Mesh::builder()
            .settings(settings.clone())
            .start_with_valid_files(true);
        for p in &paths {
            builder = builder.config_path(p);
        }
        let mesh = builder.build().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                paths,
                settings,
                mesh,
                stop: watch::channel(false).0,
                security,
            }),
        })
    }

    /// The file-watching mesh handle (its status shows refused edits).
    pub fn mesh(&self) -> &Mesh {
        &self.inner.mesh
    }

    /// The tonic service, to add to a router.
    pub fn service(&self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self.clone())
            .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
    }

    /// The security of a secured server.
    pub fn security(&self) -> Option<&ControlPlaneSecurity> {
        self.inner.security.as_ref()
    }

    /// Serves ADS on `listener` until `shutdown` resolves; then every stream ends. A secured
    /// server serves TLS, with the CA service beside ADS.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let stop = self.inner.stop.clone();
        let shutdown = async move {
            shutdown.await;
            stop.send_replace(true);
        };
        let mut server = tonic::transport::Server::builder()
            .max_concurrent_streams(limits::MAX_STREAMS_PER_CONNECTION)
            .http2_keepalive_interval(Some(limits::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(limits::KEEPALIVE_TIMEOUT));
        match self.inner.security.clone() {
            None => {
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                server
                    .add_service(self.service())
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await?;
            }
            Some(security) => {
                tokio::spawn(security.tokens.clone().watch(self.inner.stop.subscribe()));
                let config = Arc::new(tls::server_config(&security.ca)?);
                let incoming = ReceiverStream(tls::incoming(
                    listener,
                    config,
                    security.max_pending_handshakes,
                ));
                server
                    .add_service(self.service())
                    .add_service(ca::CaService::new(&security))
                    .add_service(
                        sds::SdsService::new(
                            security.clone(),
                            self.inner.settings.clone(),
                            self.inner.stop.subscribe(),
                        )
                        .service(),
                    )
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await?;
            }
        }
        Ok(())
    }

    pub(crate) fn load_for(
        &self,
        ctx: &BuildContext,
    ) -> Result<mesh_core::model::Snapshot, mesh_core::config::ConfigError> {
        mesh_core::istio::load_paths(&self.inner.paths, ctx)
    }

    /// Like [`load_for`](Self::load_for), leaving invalid files out (and returning why).
    pub(crate) fn load_valid_for(
        &self,
        ctx: &BuildContext,
    ) -> Result<
        (
            mesh_core::model::Snapshot,
            Option<mesh_core::config::ConfigError>,
        ),
        mesh_core::config::ConfigError,
    > {
        mesh_core::load_valid_files(&self.inner.paths, ctx)
    }
}

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The TLS config could not be built.
    #[error(transparent)]
    Security(#[from] SecurityError),
}

/// What a stream sends the client.
type Outgoing<T> = Pin<Box<dyn futures_core::Stream<Item = Result<T, tonic::Status>> + Send>>;
type ResponseStream = Outgoing<DiscoveryResponse>;
type DeltaStream = Outgoing<DeltaDiscoveryResponse>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for XdsServer {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<ResponseStream>, tonic::Status> {
        self.open::<stream::AdsStream>(request)
    }

    async fn delta_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<DeltaStream>, tonic::Status> {
        self.open::<delta::DeltaStream>(request)
    }
}

impl XdsServer {
    /// Starts serving one stream with protocol `P`; the response stream is what it sends. A
    /// secured server first authenticates the caller (`UNAUTHENTICATED` otherwise).
    fn open<P: session::Protocol>(
        &self,
        request: tonic::Request<tonic::Streaming<P::Request>>,
    ) -> Result<tonic::Response<Outgoing<P::Response>>, tonic::Status> {
        let peer_info = request.extensions().get::<tls::PeerInfo>();
        let peer = request
            .remote_addr()
            .or_else(|| peer_info.and_then(|p| p.remote_addr))
            .map(|a| a.to_string())
            .unwrap_or_default();
        let caller = match &self.inner.security {
            None => None,
            Some(security) => Some(
                auth::authenticate(
                    &security.tokens,
                    security.ca.trust_domain(),
                    peer_info,
                    request.metadata(),
                )
                .inspect_err(|status| tracing::warn!(%peer, %status, "xDS stream refused"))?,
            ),
        };
        let session = session::Session {
            caller,
            server: self.clone(),
            settings: self.inner.settings.clone(),
            changes: self.inner.mesh.subscribe(),
            stop: self.inner.stop.subscribe(),
            peer,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(limits::OUTGOING_QUEUE);
        tokio::spawn(session::run::<P>(session, tx, request.into_inner()));
        Ok(tonic::Response::new(Box::pin(ReceiverStream(rx))))
    }
}
