//! Routing one request, up to the point it is sent: the route and its fault (`select`), then
//! the destination, header operations, rewrite, replay, mirrors, hash and timeout (`prepare`).
//!
//! Both steps are synchronous, and `MeshClient`'s call awaits the fault's delay and the
//! attempts itself. An `async fn` for this step sat between the call and its attempts: the
//! whole attempts future was held once more in it, and moved once more on every call.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body::Body;
use mesh_core::OutboundTrafficPolicy;
use mesh_core::balance::WeightedPick;
use mesh_core::model::{
    AbortStatus, ClusterName, RetryPolicy, Route, RouteAction, Snapshot, WeightedCluster,
};
use mesh_core::routing::{self, NoRoute, RequestHeaders, RequestInfo};
use mesh_core::telemetry::ResponseFlag;
use rand::Rng;
use rand::rngs::SmallRng;

use super::body::MeshBody;
use super::hash;
use super::passthrough;
use super::plan::RoutePlan;
use super::prepare::{self, Target};
use super::record::CallFacts;
use super::runtime::{ClusterRuntime, Runtime};
use super::send_body::SendBody;
use super::service::{BoxError, Inner};
use crate::reply::LocalReply;

/// Request bodies up to this size are kept so the request can be retried or mirrored (Envoy's
/// default per-request buffer limit is of the same order).
const REPLAY_LIMIT: usize = 64 * 1024;

/// Where [`Inner::select`] sends a request. (A reply is large, but boxing it would cost every
/// reply an allocation to spare a copy that returning in place does not make.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Selected<'s> {
    /// Answered here: no route, a direct response, a redirect, the blackhole.
    Reply(Response<MeshBody>),
    /// A host no resource declares, under `ALLOW_ANY`: to `PassthroughCluster`.
    PassThrough(Target),
    /// A route that forwards, with its fault drawn.
    Forward(Forward<'s>),
}

/// A forwarding route, its target and its fault.
pub(super) struct Forward<'s> {
    route: &'s Route,
    destinations: &'s [WeightedCluster],
    target: Target,
    /// How long the fault delays the request, when it does.
    pub(super) delay: Option<Duration>,
    /// The fault's abort, when it aborts the request (after the delay, as Envoy's fault filter
    /// does).
    pub(super) abort: Option<&'s AbortStatus>,
}

/// A request ready for its attempts.
pub(super) struct Prepared<'r, B: Body> {
    pub(super) cluster: Arc<ClusterRuntime>,
    pub(super) retry: Option<&'r RetryPolicy>,
    /// The route's timeout, or the request's `grpc-timeout` when shorter.
    pub(super) timeout: Option<Duration>,
    pub(super) parts: Parts,
    pub(super) target: Target,
    pub(super) body: SendBody<B>,
    /// The consistent hash the cluster's balancer asks for.
    pub(super) hash: Option<u64>,
    /// What the response gets on its way back.
    pub(super) response: ResponseEdits<'r>,
}

/// The route's and the destination's response header operations, and the cookie a
/// consistent-hash policy sets.
pub(super) struct ResponseEdits<'r> {
    plan: Cow<'r, RoutePlan>,
    destination: usize,
    set_cookie: Option<HeaderValue>,
}

impl ResponseEdits<'_> {
    pub(super) fn apply(self, response: &mut Response<MeshBody>) {
        let headers = response.headers_mut();
        self.plan.response_headers.apply(headers);
        if let Some(destination) = self.plan.destinations.get(self.destination) {
            destination.response_headers.apply(headers);
        }
        if let Some(cookie) = self.set_cookie {
            headers.append(http::header::SET_COOKIE, cookie);
        }
    }
}

/// Header lookup over an `http::HeaderMap` for route matching.
struct Headers<'a>(&'a http::HeaderMap);

impl RequestHeaders for Headers<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A local reply for `flag`, in gRPC's form when the request is gRPC.
pub(super) fn local(flag: ResponseFlag, message: &str, grpc: bool) -> Response<MeshBody> {
    LocalReply::for_flag(flag, message).into_response::<MeshBody>(grpc)
}

impl Inner {
    /// Selects the route for the request of `parts` (its target taken out, see
    /// [`Target::take`]) and draws its fault. Faults come first, as Envoy's fault filter runs
    /// before the router.
    pub(super) fn select<'s>(
        &self,
        snapshot: &'s Snapshot,
        parts: &Parts,
        target: Option<Target>,
        grpc: bool,
        rng: &mut SmallRng,
        facts: &mut CallFacts,
    ) -> Selected<'s> {
        let Some(target) = target else {
            return Selected::Reply(local(
                ResponseFlag::NoRoute,
                "request has no authority",
                grpc,
            ));
        };
        let info = RequestInfo {
            method: parts.method.as_str(),
            authority: target.authority.as_str(),
            path_and_query: target.path_and_query.as_str(),
            port: target.port,
            headers: &Headers(&parts.headers),
        };
        let route = match routing::select(snapshot, &info) {
            Ok(s) => s.route,
            Err(e @ NoRoute::NoMatchingRoute { .. }) => {
                return Selected::Reply(local(ResponseFlag::NoRoute, &e.to_string(), grpc));
            }
            // A host no resource declares: Istio's outboundTrafficPolicy.
            Err(_) => {
                return match self.mesh.context().settings.outbound_traffic_policy {
                    OutboundTrafficPolicy::RegistryOnly => {
                        facts.named = Some((
                            passthrough::service(passthrough::BLACKHOLE, target.port),
                            ClusterName::new(passthrough::BLACKHOLE),
                        ));
                        Selected::Reply(direct(502, None))
                    }
                    OutboundTrafficPolicy::AllowAny => Selected::PassThrough(target),
                };
            }
        };
        let destinations = match &route.action {
            RouteAction::Forward(d) => d,
            RouteAction::DirectResponse { status, body } => {
                return Selected::Reply(direct(*status, body.as_deref()));
            }
            RouteAction::Redirect {
                path,
                authority: to,
                status,
            } => {
                return Selected::Reply(redirect(
                    *status,
                    to.as_deref().unwrap_or(target.authority.as_str()),
                    path.as_deref().unwrap_or(target.path_and_query.as_str()),
                ));
            }
        };
        let mut delay = None;
        let mut abort = None;
        if let Some(fault) = &route.fault {
            if let Some(d) = &fault.delay
                && d.percentage.hit(rng.random_range(0..1_000_000))
            {
                delay = Some(d.fixed_delay);
            }
            if let Some(a) = &fault.abort
                && a.percentage.hit(rng.random_range(0..1_000_000))
            {
                abort = Some(&a.status);
            }
        }
        Selected::Forward(Forward {
            route,
            destinations,
            target,
            delay,
            abort,
        })
    }

    /// Prepares a forwarded request for its attempts: the weighted destination, the route's
    /// and destination's request headers, the rewrite, the body kept for replay when a retry
    /// or mirror may send it again, the mirrors, the hash and the timeout. `runtime` is the
    /// runtime of the `snapshot` `forward` was selected from.
    #[allow(clippy::too_many_arguments, clippy::result_large_err)]
    pub(super) fn prepare<'r, B>(
        &self,
        snapshot: &Arc<Snapshot>,
        runtime: &'r Runtime,
        forward: Forward<'r>,
        mut parts: Parts,
        body: B,
        grpc: bool,
        rng: &mut SmallRng,
        facts: &mut CallFacts,
    ) -> Result<Prepared<'r, B>, Response<MeshBody>>
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        let Forward {
            route,
            destinations,
            target,
            ..
        } = forward;
        let Some(destination) = WeightedPick::new(destinations).pick(rng) else {
            return Err(local(
                ResponseFlag::NoHealthyUpstream,
                "route has no destination",
                grpc,
            ));
        };
        // The route's plan, compiled with the snapshot's runtime (compiled here in the rare
        // case the runtime was built from another snapshot of the same version).
        let plan = match runtime.plan(snapshot, route) {
            Some(plan) => Cow::Borrowed(plan),
            None => Cow::Owned(RoutePlan::compile(route, &runtime.clusters)),
        };
        let index = destinations
            .iter()
            .position(|d| std::ptr::eq(d, destination));
        let picked = index.and_then(|i| Some((i, plan.destinations.get(i)?)));
        let Some((index, destination, cluster)) =
            picked.and_then(|(i, d)| Some((i, d, d.cluster.clone()?)))
        else {
            return Err(local(
                ResponseFlag::NoHealthyUpstream,
                "destination cluster not found",
                grpc,
            ));
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
        let body = SendBody::new(body, plan.replay, REPLAY_LIMIT);
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
        Ok(Prepared {
            cluster,
            retry: route.retry.as_ref(),
            timeout,
            parts,
            target,
            body,
            hash: request_hash.hash,
            response: ResponseEdits {
                plan,
                destination: index,
                set_cookie: request_hash.set_cookie,
            },
        })
    }

    /// Prepares a request for `PassthroughCluster`: plaintext to the host and port it names,
    /// as Istio's `allow_any` route sends it (the whole authority, no retries, no timeout).
    #[allow(clippy::result_large_err)]
    pub(super) fn pass_through<B>(
        &self,
        parts: Parts,
        body: B,
        target: Target,
        grpc: bool,
        facts: &mut CallFacts,
    ) -> Result<Prepared<'static, B>, Response<MeshBody>>
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        let Some(cluster) = self
            .runtimes
            .passthrough(passthrough::host_of(target.authority.as_str()), target.port)
        else {
            return Err(local(
                ResponseFlag::NoHealthyUpstream,
                "no healthy upstream",
                grpc,
            ));
        };
        facts.cluster = Some(cluster.clone());
        let body = SendBody::new(body, false, REPLAY_LIMIT);
        facts.request_bytes = body.byte_counter();
        Ok(Prepared {
            cluster,
            retry: None,
            timeout: None,
            parts,
            target,
            body,
            hash: None,
            response: ResponseEdits {
                plan: Cow::Owned(RoutePlan::default()),
                destination: 0,
                set_cookie: None,
            },
        })
    }
}

/// A direct response with `status` and `body`.
fn direct(status: u16, body: Option<&str>) -> Response<MeshBody> {
    let mut response = Response::new(body.map_or_else(MeshBody::empty, |b| {
        MeshBody::full(Bytes::from(b.to_owned()))
    }));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
}

/// A redirect to `http://{authority}{path}`.
fn redirect(status: u16, authority: &str, path: &str) -> Response<MeshBody> {
    let mut response = direct(status, None);
    if let Ok(location) = HeaderValue::from_str(&format!("http://{authority}{path}")) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

/// The reply of a fault's abort.
pub(super) fn fault_abort(status: &AbortStatus, grpc: bool) -> Response<MeshBody> {
    let reply = match *status {
        AbortStatus::Http(code) => LocalReply::fault_abort(
            Some(StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)),
            None,
        ),
        AbortStatus::Grpc(code) => LocalReply::fault_abort(None, Some(code)),
    };
    reply.into_response(grpc)
}
