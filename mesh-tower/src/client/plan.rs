//! Route plans: what a route needs per call, compiled once when a snapshot's runtime is built
//! (DESIGN.md: "the request path is compiled, not interpreted").
//!
//! A plan holds the route's and each destination's header operations parsed into `HeaderName`s
//! and `HeaderValue`s, each destination's and mirror's cluster runtime resolved by name, and
//! whether the request may be sent more than once (a retry policy or a mirror), which decides
//! whether its head is backed up and its body kept for replay. A call looks its plan up by the
//! route it selected; nothing in it is parsed or looked up by name per call.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use mesh_core::model::{ClusterName, HeaderMutation, Route, RouteAction, Snapshot};

use super::runtime::ClusterRuntime;

/// Header operations with names and values parsed. Invalid names or values (which validation
/// should have refused) are left out, as `prepare::apply_headers` skipped them.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeaderOps {
    remove: Box<[HeaderName]>,
    set: Box<[(HeaderName, HeaderValue)]>,
    add: Box<[(HeaderName, HeaderValue)]>,
}

impl HeaderOps {
    pub(crate) fn compile(ops: &HeaderMutation) -> Self {
        let pair = |(name, value): &(String, String)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            ))
        };
        Self {
            remove: ops
                .remove
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
            set: ops.set.iter().filter_map(pair).collect(),
            add: ops.add.iter().filter_map(pair).collect(),
        }
    }

    /// Applies `remove`, then `set`, then `add` (the order of Envoy's header mutations).
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// One destination of a route.
#[derive(Clone)]
pub(crate) struct DestinationPlan {
    /// The cluster's runtime; `None` if the snapshot has no such cluster (503 UH).
    pub(crate) cluster: Option<Arc<ClusterRuntime>>,
    pub(crate) request_headers: HeaderOps,
    pub(crate) response_headers: HeaderOps,
}

/// What one route needs per call (the default: nothing to edit, no destination).
#[derive(Clone, Default)]
pub(crate) struct RoutePlan {
    pub(crate) request_headers: HeaderOps,
    pub(crate) response_headers: HeaderOps,
    /// Parallel to the route's weighted destinations (empty unless it forwards).
    pub(crate) destinations: Box<[DestinationPlan]>,
    /// Parallel to the route's mirrors: each mirror's cluster runtime, if it exists.
    pub(crate) mirrors: Box<[Option<Arc<ClusterRuntime>>]>,
    /// Whether the request may be sent more than once (a retry policy or a mirror): only then
    /// is its head backed up and its body kept for replay.
    pub(crate) replay: bool,
}

impl RoutePlan {
    pub(crate) fn compile(
        route: &Route,
        clusters: &HashMap<ClusterName, Arc<ClusterRuntime>>,
    ) -> Self {
        let destinations = match &route.action {
            RouteAction::Forward(destinations) => destinations
                .iter()
                .map(|d| DestinationPlan {
                    cluster: clusters.get(&d.cluster).cloned(),
                    request_headers: HeaderOps::compile(&d.request_headers),
                    response_headers: HeaderOps::compile(&d.response_headers),
                })
                .collect(),
            RouteAction::DirectResponse { .. } | RouteAction::Redirect { .. } => Box::default(),
        };
        Self {
            request_headers: HeaderOps::compile(&route.request_headers),
            response_headers: HeaderOps::compile(&route.response_headers),
            destinations,
            mirrors: route
                .mirrors
                .iter()
                .map(|m| clusters.get(&m.cluster).cloned())
                .collect(),
            replay: route.retry.as_ref().is_some_and(|r| r.attempts > 0)
                || !route.mirrors.is_empty(),
        }
    }
}

/// The plans of every route of one snapshot, keyed by the route's address in that snapshot
/// (which the runtime keeps alive, so an address names one route for the map's lifetime).
#[derive(Default)]
pub(crate) struct RoutePlans {
    plans: HashMap<usize, RoutePlan, foldhash::fast::RandomState>,
}

impl RoutePlans {
    pub(crate) fn compile(
        snapshot: &Snapshot,
        clusters: &HashMap<ClusterName, Arc<ClusterRuntime>>,
    ) -> Self {
        let plans = snapshot
            .routes
            .values()
            .flat_map(|config| &config.virtual_hosts)
            .flat_map(|vhost| &vhost.routes)
            .map(|route| (key(route), RoutePlan::compile(route, clusters)))
            .collect();
        Self { plans }
    }

    /// The plan of `route`, a route of the snapshot these plans were compiled from.
    pub(crate) fn get(&self, route: &Route) -> Option<&RoutePlan> {
        self.plans.get(&key(route))
    }
}

fn key(route: &Route) -> usize {
    std::ptr::from_ref(route) as usize
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::HeaderMap;
    use mesh_core::balance::ClientLocality;
    use mesh_core::{BuildContext, Workload, istio};

    use super::super::runtime::Runtimes;

    const YAML: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /once}}]
    retries: {attempts: 0}
    headers:
      request: {set: {x-route: once}, remove: [x-drop]}
    route:
    - destination: {host: reviews}
      headers: {request: {add: {x-dest: a}}, response: {set: {x-answer: "1"}}}
  - match: [{uri: {prefix: /mirrored}}]
    retries: {attempts: 0}
    mirror: {host: reviews}
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
"#;

    /// Plans are compiled with the snapshot's runtime: parsed header operations, resolved
    /// clusters, and replay only where a retry (Istio's default policy included) or a mirror
    /// may send the request again. A snapshot the runtime was not built from gets no plan.
    #[test]
    fn plans_are_compiled_with_the_runtime() {
        let ctx = BuildContext {
            workload: Workload::new("shop", "frontend"),
            ..Default::default()
        };
        let snapshot = Arc::new(istio::load_str("plans.yaml", YAML, &ctx).unwrap());
        let runtimes = Runtimes::new(ClientLocality::from(&ctx.workload), None);
        let runtime = runtimes.get(&snapshot);
        let routes = &snapshot.routes[&9080]
            .virtual_hosts
            .iter()
            .find(|v| v.name.starts_with("reviews"))
            .unwrap()
            .routes;
        let plans: Vec<_> = routes
            .iter()
            .map(|r| runtime.plan(&snapshot, r).expect("compiled"))
            .collect();
        assert_eq!(
            plans.iter().map(|p| p.replay).collect::<Vec<_>>(),
            [false, true, true],
            "attempts 0: sent once; a mirror or Istio's default retries: kept"
        );
        let once = plans[0];
        let cluster = once.destinations[0].cluster.as_ref().expect("resolved");
        assert_eq!(
            cluster.cluster.name.as_str(),
            "outbound|9080||reviews.shop.svc.cluster.local"
        );
        assert!(plans[1].mirrors[0].is_some());
        let mut h = HeaderMap::new();
        h.insert("x-drop", "1".parse().unwrap());
        once.request_headers.apply(&mut h);
        once.destinations[0].request_headers.apply(&mut h);
        assert_eq!(h["x-route"], "once");
        assert_eq!(h["x-dest"], "a");
        assert!(h.get("x-drop").is_none());
        let mut response = HeaderMap::new();
        once.destinations[0].response_headers.apply(&mut response);
        assert_eq!(response["x-answer"], "1");

        // The same config loaded again is another snapshot: its routes have no plan here.
        let other = Arc::new(istio::load_str("plans.yaml", YAML, &ctx).unwrap());
        let route = &other.routes[&9080].virtual_hosts[0].routes[0];
        assert!(runtime.plan(&other, route).is_none());
    }
}
