//! `MeshClient`: the outbound tower service (routing in `route.rs`, attempts in `attempt.rs`,
//! mirroring in `mirror.rs`).
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
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use mesh_core::Mesh;
use mesh_core::balance::ClientLocality;
use mesh_core::identity::IdentitySource;
use mesh_core::telemetry::ResponseFlag;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::body::MeshBody;
use super::deadline::within;
use super::prepare::Target;
use super::record::{self, CallFacts, Reporting};
use super::route::{self, Prepared, Selected};
use super::runtime::Runtimes;
use crate::reply::is_grpc;
use crate::telemetry::grpc_messages::{self, RequestMessages};
use crate::telemetry::{AccessLogMode, Telemetry};
use crate::tls::TlsConnector;
use crate::trace;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Headers a call usually gains on its way out: `traceparent`, `x-request-id`, the two peer
/// metadata headers, and hyper's `content-length`.
const ADDED_HEADERS: usize = 5;

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
    pub(super) mesh: Mesh,
    /// What `useSourceIp` hashes: this workload (every call comes from it).
    pub(super) source_key: Vec<u8>,
    pub(super) runtimes: Runtimes,
    reporting: Arc<Reporting>,
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
                reporting: Arc::new(reporting),
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
        // The call's own future, boxed as it is made: an `async` block around it would hold
        // it once more and move it again on its first poll.
        Box::pin(self.inner.clone().call(request))
    }
}

impl Inner {
    pub(super) fn rng(&self) -> SmallRng {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        SmallRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    async fn call<B>(self: Arc<Self>, request: Request<B>) -> Result<Response<MeshBody>, Infallible>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let mut rng = self.rng();
        let (mut parts, body) = request.into_parts();
        // Room for what mesh and hyper add (the trace context, `x-request-id`, the peer
        // metadata pair, `content-length`): the map grows once, not once per header.
        let _ = parts.headers.try_reserve(ADDED_HEADERS);
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
        let body = RequestMessages::new(body, messages.clone()).map_err(Into::into);
        let mut facts = CallFacts {
            messages,
            ..CallFacts::default()
        };
        // Whether mesh's own replies take gRPC's form.
        let grpc = is_grpc(&parts.headers);

        // Routing is synchronous and the attempts are awaited here, in this one future: each
        // `async fn` between the call and its attempts would hold the attempts' future once
        // more and move it on every call (`route.rs`).
        let snapshot = self.mesh.snapshot();
        let runtime;
        let prepared = match self.select(&snapshot, &parts, target, grpc, &mut rng, &mut facts) {
            Selected::Reply(reply) => Err(reply),
            Selected::PassThrough(target) => {
                self.pass_through(parts, body, target, grpc, &mut facts)
            }
            Selected::Forward(forward) => {
                if let Some(delay) = forward.delay {
                    tokio::time::sleep(delay).await;
                }
                match forward.abort {
                    Some(status) => Err(route::fault_abort(status, grpc)),
                    None => {
                        runtime = self.runtimes.get(&snapshot);
                        self.prepare(
                            &snapshot, &runtime, forward, parts, body, grpc, &mut rng, &mut facts,
                        )
                    }
                }
            }
        };
        let (mut response, host) = match prepared {
            Err(reply) => (reply, None),
            Ok(Prepared {
                cluster,
                retry,
                timeout,
                parts,
                target,
                body,
                hash,
                response: edits,
            }) => {
                let attempts =
                    self.attempts(&cluster, retry, parts, target, body, hash, grpc, &mut rng);
                let (mut response, host) = match within(timeout, attempts).await {
                    Some(r) => r,
                    None => (
                        route::local(
                            ResponseFlag::UpstreamRequestTimeout,
                            "upstream request timeout",
                            grpc,
                        ),
                        None,
                    ),
                };
                edits.apply(&mut response);
                (response, host)
            }
        };
        record::finish(
            &self.reporting,
            start,
            started,
            facts,
            host,
            &mut response,
            span,
        );
        Ok(response)
    }
}
