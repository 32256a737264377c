//! `MeshClient`: the outbound tower service (attempts in `attempt.rs`, mirroring in `mirror.rs`).
//!
//! Every request: one atomic load of the snapshot, route selection, fault injection, a weighted
//! cluster pick, then attempts (endpoint pick → breaker admission → pooled connection → per-try
//! timeout), retried as the route's policy and the cluster's retry budget allow, all under the
//! route timeout. Endpoint results feed outlier detection and peak-EWMA latency. A host no
//! resource declares follows the outbound traffic policy (`passthrough.rs`). Whatever mesh
//! answers itself is mapped to HTTP or gRPC in [`crate::reply`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use mesh_core::Mesh;
use mesh_core::OutboundTrafficPolicy;
use mesh_core::balance::{ClientLocality, WeightedPick};
use mesh_core::model::{AbortStatus, ClusterName, Route, RouteAction, RouteOrigin};
use mesh_core::routing::{self, NoRoute, RequestHeaders, RequestInfo};
use mesh_core::telemetry::ResponseFlag;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::body::MeshBody;
use super::hash;
use super::passthrough;
use super::prepare;
use super::record::{self, CallFacts, Reporting};
use super::replay::ReplayBody;
use super::runtime::Runtimes;
use crate::reply::{LocalReply, is_grpc};
use crate::telemetry::{AccessLogMode, Telemetry};
use crate::tls::TlsConnector;
use crate::trace;
use mesh_core::identity::IdentitySource;

/// Request bodies up to this size are kept so the request can be retried or mirrored (Envoy's
/// default per-request buffer limit is of the same order).
const REPLAY_LIMIT: usize = 64 * 1024;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The outbound client: a cloneable tower `Service` for `http::Request`s of any body type, routed
/// and balanced by the mesh config.
///
/// ```no_run
/// # async fn demo(mesh: mesh_core::Mesh) {
/// use tower::ServiceExt;
/// let client = mesh_tower::client::MeshClient::new(mesh);
/// let request = http::Request::get("http://reviews:9080/reviews/1")
///     .body(http_body_util::Empty::<bytes::Bytes>::new())
///     .unwrap();
/// let response = client.oneshot(request).await.unwrap();
/// println!("{}", response.status());
/// # }
/// ```
#[derive(Clone)]
pub struct MeshClient {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    mesh: Mesh,
    /// What `useSourceIp` hashes: this workload (every call comes from it).
    source_key: Vec<u8>,
    runtimes: Runtimes,
    reporting: Reporting,
    seed: u64,
    requests: AtomicU64,
}

impl std::fmt::Debug for MeshClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshClient")
            .field("workload", &self.inner.mesh.context().workload.name)
            .finish()
    }
}

impl MeshClient {
    /// A client over `mesh`'s live config, presenting the mesh's workload identity
    /// ([`MeshBuilder::identity_files`](mesh_core::MeshBuilder::identity_files)) on mutual-TLS
    /// connections. Without an identity, clusters whose TLS mode is ISTIO_MUTUAL are refused
    /// (fail closed, never plaintext).
    pub fn new(mesh: Mesh) -> Self {
        Self::builder(mesh).build()
    }

    /// Configures a client.
    pub fn builder(mesh: Mesh) -> MeshClientBuilder {
        MeshClientBuilder {
            mesh,
            seed: None,
            identity: None,
            telemetry: None,
        }
    }

    /// The mesh this client routes by.
    pub fn mesh(&self) -> &Mesh {
        &self.inner.mesh
    }
}

/// Builds a [`MeshClient`].
#[derive(Debug)]
pub struct MeshClientBuilder {
    mesh: Mesh,
    seed: Option<u64>,
    identity: Option<IdentitySource>,
    telemetry: Option<Telemetry>,
}

impl MeshClientBuilder {
    /// Derives every random choice (weighted splits, balancing, faults, jitter) from `seed`,
    /// for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The workload identity presented on mutual-TLS connections, instead of the mesh's (a
    /// watched one rotates: new connections use the new certificate).
    pub fn identity(mut self, identity: impl Into<IdentitySource>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// Where finished calls are recorded (`reporter="source"` metrics, service graph, access
    /// log). Give the server and the admin endpoint clones of the same `Telemetry` so the
    /// service map shows both directions. Default: metrics and graph, no access log.
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Builds the client.
    pub fn build(self) -> MeshClient {
        let ctx = self.mesh.context();
        let locality = ClientLocality::from(&ctx.workload);
        let tls = self
            .identity
            .or_else(|| self.mesh.identity().cloned())
            .map(TlsConnector::new);
        let telemetry = self
            .telemetry
            .unwrap_or_else(|| Telemetry::new().access_log(AccessLogMode::Off));
        let reporting = Reporting::new(telemetry, &ctx.workload, &ctx.settings.domain_suffix);
        MeshClient {
            inner: Arc::new(Inner {
                source_key: format!("{}/{}", ctx.workload.namespace, ctx.workload.name)
                    .into_bytes(),
                reporting,
                runtimes: Runtimes::new(locality, tls),
                mesh: self.mesh,
                seed: self.seed.unwrap_or_else(rand::random),
                requests: AtomicU64::new(0),
            }),
        }
    }
}

impl<B> tower_service::Service<Request<B>> for MeshClient
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<MeshBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<MeshBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.call(request).await) })
    }
}

/// Header lookup over an `http::HeaderMap` for route matching.
struct Headers<'a>(&'a http::HeaderMap);

impl RequestHeaders for Headers<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Inner {
    pub(super) fn rng(&self) -> SmallRng {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        SmallRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    async fn call<B>(&self, mut request: Request<B>) -> Response<MeshBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let mut rng = self.rng();
        let mut ctx = trace::outbound(request.headers_mut(), &mut rng);
        let span = trace::span::start_client(&mut ctx, request.headers_mut(), &mut rng);
        self.reporting.add_metadata(request.headers_mut());
        // The target and path are read once, for the record and for routing.
        let target = target(&request);
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let record = self.reporting.start(
            request.method().as_str(),
            &path,
            target.as_ref().map_or("", |(a, _)| a.as_str()),
            request.headers(),
            &ctx,
        );
        let started = Instant::now();
        let mut facts = CallFacts::default();
        let mut response = self
            .route_and_send(request, target, path, &mut rng, &mut facts)
            .await;
        record::finish(
            &self.reporting.telemetry,
            record,
            started,
            facts,
            &mut response,
            span,
        );
        response
    }

    /// Routes and sends `request`, whose [`target`] and path and query (`/` when absent) the
    /// caller has read.
    async fn route_and_send<B>(
        &self,
        request: Request<B>,
        target: Option<(String, u16)>,
        path_and_query: String,
        rng: &mut SmallRng,
        facts: &mut CallFacts,
    ) -> Response<MeshBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let grpc = is_grpc(request.headers());
        let local = |flag, message: &str| {
            LocalReply::for_flag(flag, message).into_response::<MeshBody>(grpc)
        };

        let Some((authority, port)) = target else {
            return local(ResponseFlag::NoRoute, "request has no authority");
        };
        let snapshot = self.mesh.snapshot();
        let info = RequestInfo {
            method: request.method().as_str(),
            authority: &authority,
            path_and_query: &path_and_query,
            port,
            headers: &Headers(request.headers()),
        };
        let selected = match routing::select(&snapshot, &info) {
            Ok(s) => s,
            Err(e @ NoRoute::NoMatchingRoute { .. }) => {
                return local(ResponseFlag::NoRoute, &e.to_string());
            }
            // A host no resource declares: Istio's outboundTrafficPolicy.
            Err(_) => {
                return match self.mesh.context().settings.outbound_traffic_policy {
                    OutboundTrafficPolicy::RegistryOnly => {
                        facts.named = Some((
                            passthrough::service(passthrough::BLACKHOLE, port),
                            ClusterName::new(passthrough::BLACKHOLE),
                        ));
                        direct(502, None)
                    }
                    OutboundTrafficPolicy::AllowAny => {
                        self.pass_through(request, &authority, port, path_and_query, rng, facts)
                            .await
                    }
                };
            }
        };
        let route = selected.route;
        let destinations = match &route.action {
            RouteAction::Forward(d) => d,
            RouteAction::DirectResponse { status, body } => {
                return direct(*status, body.as_deref());
            }
            RouteAction::Redirect {
                path,
                authority: to,
                status,
            } => {
                return redirect(
                    *status,
                    to.as_deref().unwrap_or(&authority),
                    path.as_deref().unwrap_or(&path_and_query),
                );
            }
        };

        // Faults come first, as Envoy's fault filter runs before the router.
        if let Some(fault) = &route.fault {
            if let Some(delay) = &fault.delay
                && delay.percentage.hit(rng.random_range(0..1_000_000))
            {
                tokio::time::sleep(delay.fixed_delay).await;
            }
            if let Some(abort) = &fault.abort
                && abort.percentage.hit(rng.random_range(0..1_000_000))
            {
                return fault_abort(&abort.status, grpc);
            }
        }

        let Some(destination) = WeightedPick::new(destinations).pick(rng) else {
            return local(ResponseFlag::NoHealthyUpstream, "route has no destination");
        };
        let runtime = self.runtimes.get(&snapshot);
        let Some(cluster) = runtime.clusters.get(&destination.cluster).cloned() else {
            return local(
                ResponseFlag::NoHealthyUpstream,
                "destination cluster not found",
            );
        };
        facts.cluster = Some(cluster.clone());

        // Prepare the upstream request once; attempts clone its replayable body.
        let (mut parts, body) = request.into_parts();
        prepare::apply_headers(&mut parts.headers, &route.request_headers);
        prepare::apply_headers(&mut parts.headers, &destination.request_headers);
        let (path_and_query, authority) = match &route.rewrite {
            Some(rw) => {
                let matched = selected.route.matches.iter().find_map(|m| m.path.as_ref());
                prepare::rewrite_target(&path_and_query, &authority, matched, rw)
            }
            None => (path_and_query, authority),
        };
        let body = ReplayBody::new(body.map_err(Into::into), REPLAY_LIMIT);
        facts.request_bytes = Some(body.byte_counter());

        for mirror in &route.mirrors {
            if mirror.percentage.hit(rng.random_range(0..1_000_000))
                && let Some(target) = runtime.clusters.get(&mirror.cluster).cloned()
            {
                self.mirror(target, &parts, &body, &authority, &path_and_query);
            }
        }

        let query = path_and_query.split_once('?').map(|(_, q)| q);
        let request_hash = hash::request_hash(
            &cluster.cluster.lb,
            &parts.headers,
            query,
            &self.source_key,
            rng,
        );
        let timeout = match (route.timeout, prepare::grpc_timeout(&parts.headers)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let attempts = self.attempts(
            &cluster,
            route,
            &parts,
            &body,
            &authority,
            &path_and_query,
            request_hash.hash,
            rng,
        );
        let mut response = match timeout {
            Some(t) => match tokio::time::timeout(t, attempts).await {
                Ok(r) => r,
                Err(_) => local(
                    ResponseFlag::UpstreamRequestTimeout,
                    "upstream request timeout",
                ),
            },
            None => attempts.await,
        };
        prepare::apply_headers(response.headers_mut(), &route.response_headers);
        prepare::apply_headers(response.headers_mut(), &destination.response_headers);
        if let Some(cookie) = request_hash.set_cookie {
            response
                .headers_mut()
                .append(http::header::SET_COOKIE, cookie);
        }
        response
    }
}

impl Inner {
    /// Sends `request` to `PassthroughCluster`: plaintext to the host and port it names.
    async fn pass_through<B>(
        &self,
        request: Request<B>,
        authority: &str,
        port: u16,
        path_and_query: String,
        rng: &mut SmallRng,
        facts: &mut CallFacts,
    ) -> Response<MeshBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let grpc = is_grpc(request.headers());
        let Some(cluster) = self
            .runtimes
            .passthrough(passthrough::host_of(authority), port)
        else {
            return LocalReply::for_flag(ResponseFlag::NoHealthyUpstream, "no healthy upstream")
                .into_response(grpc);
        };
        facts.cluster = Some(cluster.clone());
        let (parts, body) = request.into_parts();
        let body = ReplayBody::new(body.map_err(Into::into), REPLAY_LIMIT);
        facts.request_bytes = Some(body.byte_counter());
        // Istio's allow_any route: the whole authority, no retries, no timeout.
        let route = Route {
            origin: RouteOrigin::Default,
            matches: Vec::new(),
            action: RouteAction::Forward(Vec::new()),
            timeout: None,
            retry: None,
            fault: None,
            mirrors: Vec::new(),
            request_headers: Default::default(),
            response_headers: Default::default(),
            rewrite: None,
        };
        self.attempts(
            &cluster,
            &route,
            &parts,
            &body,
            authority,
            &path_and_query,
            None,
            rng,
        )
        .await
    }
}

/// The authority and port a request is for: the URI's, else the Host header's; the port
/// defaults by scheme.
fn target<B>(request: &Request<B>) -> Option<(String, u16)> {
    let https = request.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
    let authority = match request.uri().authority() {
        Some(a) => a.clone(),
        None => request
            .headers()
            .get(http::header::HOST)?
            .to_str()
            .ok()?
            .parse()
            .ok()?,
    };
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Some((authority.as_str().to_owned(), port))
}

fn direct(status: u16, body: Option<&str>) -> Response<MeshBody> {
    let mut response = Response::new(body.map_or_else(MeshBody::empty, |b| {
        MeshBody::full(Bytes::from(b.to_owned()))
    }));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
}

fn redirect(status: u16, authority: &str, path: &str) -> Response<MeshBody> {
    let mut response = direct(status, None);
    if let Ok(location) = http::HeaderValue::from_str(&format!("http://{authority}{path}")) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

fn fault_abort(status: &AbortStatus, grpc: bool) -> Response<MeshBody> {
    let reply = match *status {
        AbortStatus::Http(code) => LocalReply::fault_abort(
            Some(StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)),
            None,
        ),
        AbortStatus::Grpc(code) => LocalReply::fault_abort(None, Some(code)),
    };
    reply.into_response(grpc)
}
