//! `MeshClient`: the outbound tower service.
//!
//! Every request: one atomic load of the snapshot, route selection, fault injection, a weighted
//! cluster pick, then attempts (endpoint pick → breaker admission → pooled connection → per-try
//! timeout), retried as the route's policy and the cluster's retry budget allow, all under the
//! route timeout. Endpoint results feed outlier detection and peak-EWMA latency. Whatever mesh
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
use mesh_core::balance::{ClientLocality, PickContext, WeightedPick};
use mesh_core::model::{AbortStatus, RetryPolicy, Route, RouteAction};
use mesh_core::resilience::{Backoff, Outcome};
use mesh_core::routing::{self, RequestHeaders, RequestInfo};
use mesh_core::telemetry::ResponseFlag;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::body::{EndOfStream, MeshBody};
use super::classify::{Attempt, endpoint_failure, should_retry};
use super::hash;
use super::pool::{SendError, UpstreamBody};
use super::prepare;
use super::record::{self, CallFacts, Reporting, UpstreamHost};
use super::replay::ReplayBody;
use super::runtime::{ClusterRuntime, Runtimes};
use crate::reply::{LocalReply, is_grpc};
use crate::telemetry::{AccessLogMode, Telemetry};
use crate::tls::TlsConnector;
use crate::trace;
use mesh_core::identity::IdentitySource;

/// Request bodies up to this size are kept so the request can be retried or mirrored (Envoy's
/// default per-request buffer limit is of the same order).
const REPLAY_LIMIT: usize = 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

struct Inner {
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
    fn rng(&self) -> SmallRng {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        SmallRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    async fn call<B>(&self, mut request: Request<B>) -> Response<MeshBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let mut rng = self.rng();
        let ctx = trace::outbound(request.headers_mut(), &mut rng);
        self.reporting.add_metadata(request.headers_mut());
        let authority = target(&request).map(|(a, _)| a).unwrap_or_default();
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let record = self.reporting.start(
            request.method().as_str(),
            &path,
            &authority,
            request.headers(),
            &ctx,
        );
        let started = Instant::now();
        let mut facts = CallFacts::default();
        let mut response = self.route_and_send(request, &mut rng, &mut facts).await;
        record::finish(
            &self.reporting.telemetry,
            record,
            started,
            facts,
            &mut response,
        );
        response
    }

    async fn route_and_send<B>(
        &self,
        request: Request<B>,
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

        let Some((authority, port)) = target(&request) else {
            return local(ResponseFlag::NoRoute, "request has no authority");
        };
        let snapshot = self.mesh.snapshot();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let info = RequestInfo {
            method: request.method().as_str(),
            authority: &authority,
            path_and_query: &path_and_query,
            port,
            headers: &Headers(request.headers()),
        };
        let selected = match routing::select(&snapshot, &info) {
            Ok(s) => s,
            Err(e) => return local(ResponseFlag::NoRoute, &e.to_string()),
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

    /// The attempts of one request: the first, then retries as the policy and budget allow.
    #[allow(clippy::too_many_arguments)]
    async fn attempts<B>(
        &self,
        cluster: &Arc<ClusterRuntime>,
        route: &Route,
        parts: &http::request::Parts,
        body: &ReplayBody<B>,
        authority: &str,
        path_and_query: &str,
        hash: Option<u64>,
        rng: &mut SmallRng,
    ) -> Response<MeshBody>
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        let grpc = is_grpc(&parts.headers);
        let local = |flag, message: &str| {
            LocalReply::for_flag(flag, message).into_response::<MeshBody>(grpc)
        };
        let _admitted = match cluster.breaker.try_request() {
            Ok(p) => p,
            Err(overflow) => return local(ResponseFlag::UpstreamOverflow, &overflow.to_string()),
        };
        let policy = route.retry.as_ref();
        let max_attempts = 1 + policy.map_or(0, |p| p.attempts);
        let backoff = policy.map(Backoff::from_policy);
        let mut previous: Option<usize> = None;
        // The current retry counts against the budget while it is in flight.
        let mut retry_permit = None;
        let mut attempt_no = 0;
        loop {
            attempt_no += 1;
            let now = Instant::now();
            cluster.maybe_sweep(now);
            let Some(index) = pick_endpoint(cluster, previous, hash, rng, now) else {
                return local(ResponseFlag::NoHealthyUpstream, "no healthy upstream");
            };
            previous = Some(index);
            let outcome = self
                .attempt(
                    cluster,
                    index,
                    parts,
                    body.clone(),
                    authority,
                    path_and_query,
                    policy,
                    grpc,
                )
                .await;
            let (attempt, result) = outcome;
            let last = attempt_no >= max_attempts;
            let retryable =
                policy.is_some_and(|p| should_retry(p, attempt)) && body.is_replayable();
            if last || !retryable {
                return result.unwrap_or_else(|flag| {
                    let flag = if attempt_no > 1 && flag == ResponseFlag::UpstreamConnectionFailure
                    {
                        ResponseFlag::UpstreamRetryLimitExceeded
                    } else {
                        flag
                    };
                    local(
                        flag,
                        "upstream connect error or disconnect/reset before headers",
                    )
                });
            }
            match cluster.breaker.try_retry() {
                Ok(p) => drop(retry_permit.replace(p)),
                Err(overflow) => {
                    tracing::debug!(cluster = %cluster.cluster.name, %overflow, "retry not allowed");
                    metrics::counter!("mesh_retry_budget_exhausted_total", "cluster" => cluster.cluster.name.to_string())
                        .increment(1);
                    return result.unwrap_or_else(|flag| {
                        local(flag, "upstream connect error; retry budget exhausted")
                    });
                }
            }
            metrics::counter!("mesh_retries_total", "cluster" => cluster.cluster.name.to_string())
                .increment(1);
            if let Some(backoff) = &backoff {
                tokio::time::sleep(backoff.delay(attempt_no - 1, rng)).await;
            }
        }
    }

    /// One attempt on one endpoint. Returns how it ended (for retry decisions) and the response
    /// to give the caller if it is the last, or the flag for a local reply.
    #[allow(clippy::too_many_arguments)]
    async fn attempt<B>(
        &self,
        cluster: &Arc<ClusterRuntime>,
        index: usize,
        parts: &http::request::Parts,
        body: ReplayBody<B>,
        authority: &str,
        path_and_query: &str,
        policy: Option<&RetryPolicy>,
        _grpc: bool,
    ) -> (Attempt, Result<Response<MeshBody>, ResponseFlag>)
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        let (Some(stats), Some(pool)) = (
            cluster.balancer.stats(index).cloned(),
            cluster.pools.get(index).cloned(),
        ) else {
            return (
                Attempt::ConnectFailure,
                Err(ResponseFlag::NoHealthyUpstream),
            );
        };
        let mut request = Request::from_parts(
            parts.clone(),
            UpstreamBody::new(body.map_err(|e| -> BoxError { Box::new(e) })),
        );
        let http2 = pool.uses_http2(&request);
        prepare::set_target(&mut request, authority, path_and_query, http2);
        let start = Instant::now();
        let in_flight = stats.start(start);
        let send = pool.send(request);
        let result = match policy.and_then(|p| p.per_try_timeout) {
            Some(t) => match tokio::time::timeout(t, send).await {
                Ok(r) => r.map_err(Some),
                Err(_) => Err(None),
            },
            None => send.await.map_err(Some),
        };
        let now = Instant::now();
        let (attempt, outcome, reply) = match result {
            Ok(response) => {
                let attempt = Attempt::from_response(response.status(), response.headers());
                let status = response.status().as_u16();
                stats.observe_rtt(now.saturating_duration_since(start), now);
                let pool_for_end = pool.clone();
                let mut response = response;
                response.extensions_mut().insert(UpstreamHost {
                    cluster: cluster.clone(),
                    index,
                });
                let response = response.map(|incoming| {
                    let mut body = MeshBody::upstream(incoming);
                    body.on_end(move |_end: EndOfStream| {
                        in_flight.finish(Instant::now());
                        pool_for_end.release();
                    });
                    body
                });
                (attempt, Outcome::Response(status), Ok(response))
            }
            Err(error) => {
                drop(in_flight);
                let (attempt, flag) = match &error {
                    None => (Attempt::PerTryTimeout, ResponseFlag::UpstreamRequestTimeout),
                    Some(SendError::Connect(_)) => (
                        Attempt::ConnectFailure,
                        ResponseFlag::UpstreamConnectionFailure,
                    ),
                    Some(SendError::Refused(_)) => (
                        Attempt::RefusedStream,
                        ResponseFlag::UpstreamConnectionFailure,
                    ),
                    Some(SendError::Reset(_)) => {
                        (Attempt::Reset, ResponseFlag::UpstreamConnectionTermination)
                    }
                    Some(SendError::Overflow(_)) => {
                        (Attempt::ConnectFailure, ResponseFlag::UpstreamOverflow)
                    }
                };
                if let Some(e) = &error {
                    tracing::debug!(cluster = %cluster.cluster.name, endpoint = %stats.address(), error = %e, "attempt failed");
                }
                let outcome = match error {
                    Some(SendError::Overflow(_)) => None,
                    _ => Some(Outcome::LocalFailure),
                };
                match outcome {
                    Some(o) => (attempt, o, Err(flag)),
                    None => return (attempt, Err(flag)),
                }
            }
        };
        if let Some(outlier) = &cluster.outlier {
            let _ = endpoint_failure(attempt);
            if let Some(ejection) = outlier.report(&stats, outcome, now) {
                tracing::warn!(cluster = %cluster.cluster.name, endpoint = %ejection.address, reason = ?ejection.reason,
                    duration = ?ejection.duration, "endpoint ejected");
                metrics::counter!("mesh_outlier_ejections_total", "cluster" => cluster.cluster.name.to_string()).increment(1);
            }
        }
        (attempt, reply)
    }

    /// Sends a shadow copy: `-shadow` appended to the authority, its body replayed from the real
    /// request's (never read ahead of it), its response dropped.
    fn mirror<B>(
        &self,
        cluster: Arc<ClusterRuntime>,
        parts: &http::request::Parts,
        body: &ReplayBody<B>,
        authority: &str,
        path_and_query: &str,
    ) where
        B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        let mut rng = self.rng();
        let Some(index) = pick_endpoint(&cluster, None, None, &mut rng, Instant::now()) else {
            return;
        };
        let (Some(pool), Some(stats)) = (
            cluster.pools.get(index).cloned(),
            cluster.balancer.stats(index).cloned(),
        ) else {
            return;
        };
        let authority = shadow_authority(authority);
        let mut request = Request::from_parts(
            parts.clone(),
            UpstreamBody::new(body.follower().map_err(|e| -> BoxError { Box::new(e) })),
        );
        let http2 = pool.uses_http2(&request);
        prepare::set_target(&mut request, &authority, path_and_query, http2);
        tokio::spawn(async move {
            let in_flight = stats.start(Instant::now());
            match pool.send(request).await {
                Ok(response) => {
                    // Drain so the connection can be reused; the answer is ignored.
                    let _ = response.into_body().collect().await;
                }
                Err(e) => tracing::debug!(error = %e, "mirror request failed"),
            }
            in_flight.finish(Instant::now());
            pool.release();
        });
    }
}

/// Picks an endpoint, avoiding the one the previous attempt used when another is available
/// (Istio's `previous_hosts` retry predicate).
fn pick_endpoint(
    cluster: &ClusterRuntime,
    previous: Option<usize>,
    hash: Option<u64>,
    rng: &mut SmallRng,
    now: Instant,
) -> Option<usize> {
    let ctx = PickContext { hash, now };
    let first = cluster.balancer.pick(&ctx, rng)?;
    if previous != Some(first) || cluster.balancer.len() < 2 {
        return Some(first);
    }
    (0..4)
        .find_map(|_| {
            cluster
                .balancer
                .pick(&ctx, rng)
                .filter(|i| Some(*i) != previous)
        })
        .or(Some(first))
}

/// `host-shadow[:port]`, as Envoy names mirrored requests.
fn shadow_authority(authority: &str) -> String {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            format!("{host}-shadow:{port}")
        }
        _ => format!("{authority}-shadow"),
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


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_authorities() {
        assert_eq!(shadow_authority("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_authority("reviews"), "reviews-shadow");
        assert_eq!(shadow_authority("[::1]:80"), "[::1]-shadow:80");
    }
}
