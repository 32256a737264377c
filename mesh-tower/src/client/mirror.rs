//! Mirroring: a shadow copy of a share of requests to another cluster, as Istio's `mirror` does.
//! The copy goes to `<host>-shadow`, its body is replayed from the real request's (never read
//! ahead of it), and its response is dropped, so it can never slow or break the real call.

use std::sync::Arc;

use http::Request;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::attempt::pick_endpoint;
use super::pool::UpstreamBody;
use super::prepare::{self, Target};
use super::runtime::ClusterRuntime;
use super::service::Inner;

impl Inner {
    /// Sends a shadow copy: `-shadow` appended to the authority, its `body` the real request's
    /// bytes or replayed from its kept body (never read ahead of it), its response dropped.
    pub(super) fn mirror(
        &self,
        cluster: Arc<ClusterRuntime>,
        parts: &http::request::Parts,
        body: UpstreamBody,
        target: &Target,
    ) {
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
        let target = target.rewritten(
            shadow_authority(target.authority.as_str()),
            target.path_and_query.as_str().to_owned(),
        );
        let request = Request::from_parts(parts.clone(), body);
        let http2 = pool.uses_http2(&request);
        let (mut head, body) = request.into_parts();
        prepare::set_target(&mut head, target, http2);
        let request = Request::from_parts(head, body);
        tokio::spawn(async move {
            let in_flight = stats.start(Instant::now());
            match pool.send(request).await {
                Ok(response) => {
                    // Drain so the connection can be reused; the answer is ignored.
                    let _ = response.into_body().collect().await;
                }
                Err(e) => tracing::debug!(error = %e.error, "mirror request failed"),
            }
            in_flight.finish(Instant::now());
            pool.release();
        });
    }
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
