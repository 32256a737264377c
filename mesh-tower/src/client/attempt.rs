//! The attempts of one request: endpoint pick, breaker admission, a pooled connection, the
//! per-try timeout, then retries as the route's policy and the cluster's retry budget allow.
//! Every attempt's outcome feeds outlier detection and peak-EWMA latency.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use mesh_core::balance::{EndpointStats, InFlight, PickContext};
use mesh_core::model::RetryPolicy;
use mesh_core::resilience::{Backoff, Outcome};
use mesh_core::telemetry::ResponseFlag;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::body::MeshBody;
use super::classify::{Attempt, endpoint_failure, may_retry_after_sending, should_retry};
use super::connect::ConnectError;
use super::deadline::within;
use super::kept_head::KeptHead;
use super::pool::{EndpointPool, SendError, Unsent};
use super::prepare::{self, Target};
use super::record::UpstreamHost;
use super::runtime::ClusterRuntime;
use super::send_body::SendBody;
use super::service::{BoxError, Inner};
use crate::reply::LocalReply;
use crate::tls::TlsError;

/// Why an attempt gave no response: the flag, and the transport failure reason if known.
type Failed = (ResponseFlag, Option<String>);

/// The local reply text for a failed connection, in Envoy's words; with the TLS reason when
/// there is one (a refused identity names the expected and the presented one).
fn connect_error_text(reason: Option<&str>) -> String {
    const BASE: &str = "upstream connect error or disconnect/reset before headers";
    match reason {
        Some(r) => {
            format!("{BASE}. reset reason: connection failure, transport failure reason: {r}")
        }
        None => BASE.to_owned(),
    }
}

/// The end of an attempt whose response is being read: the endpoint's in-flight count and
/// latency sample, and the pool's waiters, settled when the response body ends.
pub(crate) struct AttemptEnd {
    in_flight: InFlight,
    pool: Arc<EndpointPool>,
}

impl AttemptEnd {
    pub(crate) fn finish(self, now: Instant) {
        self.in_flight.finish(now);
        self.pool.release();
    }
}

/// What an attempt gives back: how it ended (for retry decisions), the response with the
/// endpoint that sent it or why there is none, and the request's head if it never went out.
type AttemptResult = (
    Attempt,
    Result<(Response<MeshBody>, UpstreamHost), Failed>,
    Option<http::request::Parts>,
);

impl Inner {
    /// The attempts of one request: the first, then retries as the policy and budget allow.
    /// `head` is the request head without its target, which `target` gives; both are moved
    /// into the first attempt, and copied only when a retry may follow a request that went out
    /// (a head that never went out comes back to be sent again). `grpc`: whether mesh's own
    /// replies take gRPC's form.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn attempts<B>(
        &self,
        cluster: &Arc<ClusterRuntime>,
        policy: Option<&RetryPolicy>,
        mut head: http::request::Parts,
        target: Target,
        mut body: SendBody<B>,
        hash: Option<u64>,
        grpc: bool,
        rng: &mut SmallRng,
    ) -> (Response<MeshBody>, Option<UpstreamHost>)
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        let local = |flag, message: &str| {
            (
                LocalReply::for_flag(flag, message).into_response::<MeshBody>(grpc),
                None,
            )
        };
        let _admitted = match cluster.breaker.try_request() {
            Ok(p) => p,
            Err(overflow) => return local(ResponseFlag::UpstreamOverflow, &overflow.to_string()),
        };
        // Every endpoint of a cluster speaks the same protocol, so the upstream target is set
        // once, before the first attempt.
        let http2 = head.version == http::Version::HTTP_2
            || cluster.pools.first().is_some_and(|p| p.settings().http2);
        prepare::set_target(&mut head, target, http2);
        let mut head = Some(head);
        // A copy of the head for the attempts after the first (`kept_head.rs`), made only when
        // a retry may follow an attempt that sent it: after a connection failure the head comes
        // back unsent, so a policy retrying only those needs no copy.
        let copy_head = policy.is_some_and(may_retry_after_sending);
        let mut kept: Option<KeptHead> = None;
        let max_attempts = 1 + policy.map_or(0, |p| p.attempts);
        let backoff = policy.map(Backoff::from_policy);
        let mut previous: Option<usize> = None;
        // The current retry counts against the budget from its backoff until its outcome is
        // known, and is released before the next retry asks: a request never counts against
        // itself (Envoy's `RetryStateImpl::shouldRetry` calls `resetRetry()`, decrementing the
        // cluster's `retries()`, before `retries().canCreate()`).
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
            let last = attempt_no >= max_attempts;
            // The head itself goes out (first, or back unsent), copied when another attempt may
            // need it after it went; else the copy goes.
            let parts = match head.take() {
                Some(unsent) => {
                    if !last && copy_head && kept.is_none() {
                        kept = Some(KeptHead::keep(&unsent));
                    }
                    Some(unsent)
                }
                None => kept.as_ref().map(KeptHead::restore),
            };
            let (Some(parts), Some(upstream_body)) = (parts, body.next(last)) else {
                // Not reached: a body sent once belongs to a request with a single attempt, and
                // the head is copied whenever a retry may follow a request that went out.
                return local(
                    ResponseFlag::UpstreamConnectionFailure,
                    "request already sent",
                );
            };
            let request = Request::from_parts(parts, upstream_body);
            // The exchange is awaited here, between the attempt's two synchronous steps: an
            // `async fn` for the attempt would hold the exchange's future once more, and move
            // it on every attempt.
            let (attempt, result, unsent) = match endpoint(cluster, index) {
                Some((stats, pool)) => {
                    let in_flight = stats.start(now);
                    let per_try = policy.and_then(|p| p.per_try_timeout);
                    let sent = within(per_try, pool.send(request)).await;
                    settle(
                        cluster,
                        index,
                        now,
                        Underway {
                            stats,
                            pool,
                            in_flight,
                        },
                        sent,
                    )
                }
                None => (
                    Attempt::ConnectFailure,
                    Err((ResponseFlag::NoHealthyUpstream, None)),
                    Some(request.into_parts().0),
                ),
            };
            head = unsent;
            let retryable =
                policy.is_some_and(|p| should_retry(p, attempt)) && body.is_replayable();
            if last || !retryable {
                return match result {
                    Ok((response, host)) => (response, Some(host)),
                    Err((flag, reason)) => {
                        let flag =
                            if attempt_no > 1 && flag == ResponseFlag::UpstreamConnectionFailure {
                                ResponseFlag::UpstreamRetryLimitExceeded
                            } else {
                                flag
                            };
                        local(flag, &connect_error_text(reason.as_deref()))
                    }
                };
            }
            drop(retry_permit.take());
            match cluster.breaker.try_retry() {
                Ok(p) => retry_permit = Some(p),
                Err(overflow) => {
                    tracing::debug!(cluster = %cluster.cluster.name, %overflow, "retry not allowed");
                    metrics::counter!("mesh_retry_budget_exhausted_total", "cluster" => cluster.cluster.name.to_string())
                        .increment(1);
                    return match result {
                        Ok((response, host)) => (response, Some(host)),
                        Err((flag, _)) => {
                            local(flag, "upstream connect error; retry budget exhausted")
                        }
                    };
                }
            }
            metrics::counter!("mesh_retries_total", "cluster" => cluster.cluster.name.to_string())
                .increment(1);
            if let Some(backoff) = &backoff {
                tokio::time::sleep(backoff.delay(attempt_no - 1, rng)).await;
            }
        }
    }
}

/// The statistics and the connections of endpoint `index` of `cluster`.
fn endpoint(
    cluster: &ClusterRuntime,
    index: usize,
) -> Option<(Arc<EndpointStats>, Arc<EndpointPool>)> {
    Some((
        cluster.balancer.stats(index).cloned()?,
        cluster.pools.get(index).cloned()?,
    ))
}

/// An attempt under way: its endpoint, and the endpoint's count of requests in flight.
struct Underway {
    stats: Arc<EndpointStats>,
    pool: Arc<EndpointPool>,
    in_flight: InFlight,
}

/// How the attempt on endpoint `index`, picked at `start`, ended (for retry decisions): the
/// response to give the caller if it is the last, or the flag for a local reply; and the
/// request's head if it never went out. `sent` is the exchange's result, `None` when the
/// per-try timeout cut it off. Feeds outlier detection and the endpoint's latency.
fn settle(
    cluster: &Arc<ClusterRuntime>,
    index: usize,
    start: Instant,
    underway: Underway,
    sent: Option<Result<Response<hyper::body::Incoming>, Unsent>>,
) -> AttemptResult {
    let Underway {
        stats,
        pool,
        in_flight,
    } = underway;
    let result = match sent {
        Some(r) => r.map_err(Some),
        None => Err(None),
    };
    let mut unsent = None;
    let result = result.map_err(|failed| {
        failed.map(|f| {
            unsent = f.head;
            f.error
        })
    });
    let now = Instant::now();
    let (attempt, outcome, reply) = match result {
        Ok(response) => {
            let attempt = Attempt::from_response(response.status(), response.headers());
            let status = response.status().as_u16();
            stats.observe_rtt(now.saturating_duration_since(start), now);
            let end = AttemptEnd {
                in_flight,
                pool: pool.clone(),
            };
            let response = response.map(|incoming| {
                let mut body = MeshBody::upstream(incoming);
                body.on_end_attempt(end);
                body
            });
            let host = UpstreamHost {
                cluster: cluster.clone(),
                index,
            };
            (attempt, Outcome::Response(status), Ok((response, host)))
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
            // A TLS failure's reason goes into the local reply, as Envoy's `transport
            // failure reason`; a refused certificate or identity is a configuration
            // problem an operator must see, so it is logged as a warning.
            let mut reason = None;
            if let Some(e) = &error {
                match e {
                    SendError::Connect(ConnectError::Tls { source, .. }) => {
                        if matches!(source, TlsError::PeerCertificate(_)) {
                            tracing::warn!(cluster = %cluster.cluster.name, endpoint = %stats.address(), error = %source, "refused the upstream's certificate");
                        } else {
                            tracing::debug!(cluster = %cluster.cluster.name, endpoint = %stats.address(), error = %e, "attempt failed");
                        }
                        reason = Some(source.to_string());
                    }
                    _ => {
                        tracing::debug!(cluster = %cluster.cluster.name, endpoint = %stats.address(), error = %e, "attempt failed");
                    }
                }
            }
            let outcome = match error {
                Some(SendError::Overflow(_)) => None,
                _ => Some(Outcome::LocalFailure),
            };
            match outcome {
                Some(o) => (attempt, o, Err((flag, reason))),
                None => return (attempt, Err((flag, reason)), unsent),
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
    (attempt, reply, unsent)
}

/// Picks an endpoint, avoiding the one the previous attempt used when another is available
/// (Istio's `previous_hosts` retry predicate).
pub(super) fn pick_endpoint(
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
