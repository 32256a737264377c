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
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use mesh_core::Mesh;
use mesh_core::OutboundTrafficPolicy;
use mesh_core::balance::{ClientLocality, WeightedPick};
use mesh_core::model::{AbortStatus, ClusterName, RouteAction};
use mesh_core::routing::{self, NoRoute, RequestHeaders, RequestInfo};
use mesh_core::telemetry::ResponseFlag;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::body::MeshBody;
use super::deadline::within;
use super::hash;
use super::passthrough;
use super::plan::RoutePlan;
use super::prepare::{self, Target};
use super::record::{self, CallFacts, Reporting, UpstreamHost};
use super::runtime::Runtimes;
use super::send_body::SendBody;
use crate::reply::{LocalReply, is_grpc};
use crate::telemetry::grpc_messages::{self, RequestMessages};
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

    /// The clusters of the serving config with the state this client keeps for their
    /// endpoints (ejection, requests in flight, peak-EWMA latency): what the admin `/clusters`
    /// shows when given this client ([`AdminState::clusters`](crate::admin::AdminState::clusters)).
    pub fn cluster_status(&self) -> Vec<crate::admin::ClusterStatus> {
        let now = Instant::now();
        let runtime = self.inner.runtimes.get(&self.inner.mesh.snapshot());
        let mut out: Vec<_> = runtime
            .clusters
            .values()
            .map(|rt| {
                let state = self.inner.runtimes.state(&rt.cluster.name, now);
                crate::admin::ClusterStatus::with_state(&rt.cluster, &state, now)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

impl crate::admin::ClusterStatsSource for MeshClient {
    fn clusters(&self) -> Vec<crate::admin::ClusterStatus> {
        self.cluster_status()
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
        let identity = self.identity.or_else(|| self.mesh.identity().cloned());
        let local_principal = identity
            .as_ref()
            .map(|i| i.current().credentials().spiffe_id().to_string());
        let tls = identity.map(TlsConnector::new);
        let telemetry = self
            .telemetry
            .unwrap_or_else(|| Telemetry::new().access_log(AccessLogMode::Off));
        let reporting = Reporting::new(telemetry, &ctx.workload, &ctx.settings.domain_suffix)
            .with_local_principal(local_principal);
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

    async fn call<B>(&self, request: Request<B>) -> Response<MeshBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let mut rng = self.rng();
        let (mut parts, body) = request.into_parts();
        let mut trace = trace::outbound_trace(&mut parts.headers, &mut rng);
        let span = trace::span::start_client_trace(&mut trace, &mut parts.headers, &mut rng);
        self.reporting.add_metadata(&mut parts.headers);
        // The target is read once, for the record and for routing.
        let target = Target::take(&mut parts);
        let start = self.reporting.start(
            &parts.method,
            target
                .as_ref()
                .map(|t| (t.authority.as_str(), t.path_and_query.as_str())),
            &parts.headers,
            &trace,
            span.is_some(),
        );
        let started = Instant::now();
        let messages = grpc_messages::outbound(start.is_grpc());
        let body = RequestMessages::new(body, messages.clone());
        let mut facts = CallFacts {
            messages,
            ..CallFacts::default()
        };
        let (mut response, host) = self
            .route_and_send(parts, body, target, &mut rng, &mut facts)
            .await;
        record::finish(
            &self.reporting,
            start,
            started,
            facts,
            host,
            &mut response,
            span,
        );
        response
    }

    /// Routes and sends the request of `parts` (its target taken out, see [`Target::take`])
    /// and `body`; returns the response and the endpoint that sent it, if one did.
    async fn route_and_send<B>(
        &self,
        mut parts: Parts,
        body: B,
        target: Option<Target>,
        rng: &mut SmallRng,
        facts: &mut CallFacts,
    ) -> (Response<MeshBody>, Option<UpstreamHost>)
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let grpc = is_grpc(&parts.headers);
        let local = |flag, message: &str| {
            LocalReply::for_flag(flag, message).into_response::<MeshBody>(grpc)
        };

        let Some(target) = target else {
            return (
                local(ResponseFlag::NoRoute, "request has no authority"),
                None,
            );
        };
        let snapshot = self.mesh.snapshot();
        let info = RequestInfo {
            method: parts.method.as_str(),
            authority: target.authority.as_str(),
            path_and_query: target.path_and_query.as_str(),
            port: target.port,
            headers: &Headers(&parts.headers),
        };
        let selected = match routing::select(&snapshot, &info) {
            Ok(s) => s,
            Err(e @ NoRoute::NoMatchingRoute { .. }) => {
                return (local(ResponseFlag::NoRoute, &e.to_string()), None);
            }
            // A host no resource declares: Istio's outboundTrafficPolicy.
            Err(_) => {
                return match self.mesh.context().settings.outbound_traffic_policy {
                    OutboundTrafficPolicy::RegistryOnly => {
                        facts.named = Some((
                            passthrough::service(passthrough::BLACKHOLE, target.port),
                            ClusterName::new(passthrough::BLACKHOLE),
                        ));
                        (direct(502, None), None)
                    }
                    OutboundTrafficPolicy::AllowAny => {
                        self.pass_through(parts, body, target, rng, facts).await
                    }
                };
            }
        };
        let route = selected.route;
        let destinations = match &route.action {
            RouteAction::Forward(d) => d,
            RouteAction::DirectResponse { status, body } => {
                return (direct(*status, body.as_deref()), None);
            }
            RouteAction::Redirect {
                path,
                authority: to,
                status,
            } => {
                let response = redirect(
                    *status,
                    to.as_deref().unwrap_or(target.authority.as_str()),
                    path.as_deref().unwrap_or(target.path_and_query.as_str()),
                );
                return (response, None);
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
                return (fault_abort(&abort.status, grpc), None);
            }
        }

        let Some(destination) = WeightedPick::new(destinations).pick(rng) else {
            return (
                local(ResponseFlag::NoHealthyUpstream, "route has no destination"),
                None,
            );
        };
        let runtime = self.runtimes.get(&snapshot);
        // The route's plan, compiled with the snapshot's runtime (compiled here in the rare
        // case the runtime was built from another snapshot of the same version).
        let compiled;
        let plan = match runtime.plan(&snapshot, route) {
            Some(plan) => plan,
            None => {
                compiled = RoutePlan::compile(route, &runtime.clusters);
                &compiled
            }
        };
        let picked = destinations
            .iter()
            .position(|d| std::ptr::eq(d, destination))
            .and_then(|i| plan.destinations.get(i));
        let Some((destination, cluster)) = picked.and_then(|d| Some((d, d.cluster.clone()?)))
        else {
            return (
                local(
                    ResponseFlag::NoHealthyUpstream,
                    "destination cluster not found",
                ),
                None,
            );
        };
        facts.cluster = Some(cluster.clone());

        plan.request_headers.apply(&mut parts.headers);
        destination.request_headers.apply(&mut parts.headers);
        let target = match &route.rewrite {
            Some(rw) => {
                let matched = route.matches.iter().find_map(|m| m.path.as_ref());
                let (path, authority) = prepare::rewrite_target(
                    target.path_and_query.as_str(),
                    target.authority.as_str(),
                    matched,
                    rw,
                );
                target.rewritten(authority, path)
            }
            None => target,
        };
        // The body is kept for replay only if a retry or a mirror may send it again.
        let body = SendBody::new(body.map_err(Into::into), plan.replay, REPLAY_LIMIT);
        facts.request_bytes = body.byte_counter();

        if body.is_kept() {
            for (mirror, mirror_cluster) in route.mirrors.iter().zip(plan.mirrors.iter()) {
                if mirror.percentage.hit(rng.random_range(0..1_000_000))
                    && let Some(mirror_cluster) = mirror_cluster
                    && let Some(copy) = body.mirror_body()
                {
                    self.mirror(mirror_cluster.clone(), &parts, copy, &target);
                }
            }
        }

        let request_hash = hash::request_hash(
            &cluster.cluster.lb,
            &parts.headers,
            target.path_and_query.query(),
            &self.source_key,
            rng,
        );
        let timeout = match (route.timeout, prepare::grpc_timeout(&parts.headers)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Made where it is awaited, so that the future is held once (see `deadline`).
        let (mut response, host) = match within(
            timeout,
            self.attempts(
                &cluster,
                route.retry.as_ref(),
                parts,
                target,
                body,
                request_hash.hash,
                rng,
            ),
        )
        .await
        {
            Some(r) => r,
            None => (
                local(
                    ResponseFlag::UpstreamRequestTimeout,
                    "upstream request timeout",
                ),
                None,
            ),
        };
        plan.response_headers.apply(response.headers_mut());
        destination.response_headers.apply(response.headers_mut());
        if let Some(cookie) = request_hash.set_cookie {
            response
                .headers_mut()
                .append(http::header::SET_COOKIE, cookie);
        }
        (response, host)
    }
}

impl Inner {
    /// Sends the request to `PassthroughCluster`: plaintext to the host and port it names.
    async fn pass_through<B>(
        &self,
        parts: Parts,
        body: B,
        target: Target,
        rng: &mut SmallRng,
        facts: &mut CallFacts,
    ) -> (Response<MeshBody>, Option<UpstreamHost>)
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let grpc = is_grpc(&parts.headers);
        let Some(cluster) = self
            .runtimes
            .passthrough(passthrough::host_of(target.authority.as_str()), target.port)
        else {
            let reply =
                LocalReply::for_flag(ResponseFlag::NoHealthyUpstream, "no healthy upstream");
            return (reply.into_response(grpc), None);
        };
        facts.cluster = Some(cluster.clone());
        // Istio's allow_any route: the whole authority, no retries, no timeout.
        let body = SendBody::new(body.map_err(Into::into), false, REPLAY_LIMIT);
        facts.request_bytes = body.byte_counter();
        self.attempts(&cluster, None, parts, target, body, None, rng)
            .await
    }
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
