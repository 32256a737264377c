//! Route configurations: virtual hosts matched by authority, each an ordered list of routes.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::cluster::ClusterName;
use super::matcher::StringMatch;

/// The routes for one outbound port (Envoy's RouteConfiguration; Istio names it by the port).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteConfiguration {
    /// Name, e.g. `"9080"`.
    pub name: String,
    /// Virtual hosts in the order given.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Domain → index into `virtual_hosts`, for exact domains (lowercase).
    #[serde(skip)]
    exact: HashMap<Box<str>, usize>,
    /// Suffix wildcards (`*.example.com` stored as `.example.com`), longest first.
    #[serde(skip)]
    suffixes: Vec<(Box<str>, usize)>,
    /// The `*` virtual host, if any.
    #[serde(skip)]
    catch_all: Option<usize>,
}

impl RouteConfiguration {
    /// Builds the configuration and its domain index. When two virtual hosts claim the same
    /// domain, the first keeps it (the translators report such conflicts before this point).
    pub fn new(name: impl Into<String>, virtual_hosts: Vec<VirtualHost>) -> Self {
        let mut exact = HashMap::new();
        let mut suffixes = Vec::new();
        let mut catch_all = None;
        for (i, vh) in virtual_hosts.iter().enumerate() {
            for domain in &vh.domains {
                let domain = domain.to_ascii_lowercase();
                if domain == "*" {
                    catch_all.get_or_insert(i);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    suffixes.push((suffix.into(), i));
                } else {
                    exact.entry(domain.into_boxed_str()).or_insert(i);
                }
            }
        }
        suffixes.sort_by(|a: &(Box<str>, usize), b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self {
            name: name.into(),
            virtual_hosts,
            exact,
            suffixes,
            catch_all,
        }
    }

    /// The virtual host serving `authority` (host, or host:port), as Envoy picks it: an exact
    /// domain first, then the longest suffix wildcard, then `*`. Case-insensitive; allocates only
    /// when the authority has upper-case letters.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        let lowered;
        let authority = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = authority.to_ascii_lowercase();
            lowered.as_str()
        } else {
            authority
        };
        let index = self
            .exact
            .get(authority)
            .copied()
            .or_else(|| {
                self.suffixes
                    .iter()
                    .find(|(suffix, _)| {
                        authority.len() > suffix.len() && authority.ends_with(&**suffix)
                    })
                    .map(|(_, i)| *i)
            })
            .or(self.catch_all)?;
        self.virtual_hosts.get(index)
    }
}

/// A virtual host: a set of domains and the routes for them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VirtualHost {
    /// Name, e.g. `reviews.default.svc.cluster.local:9080`.
    pub name: String,
    /// Domains served, with and without port (`reviews`, `reviews:9080`, the FQDN, …).
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
}

/// Where a route came from, for `explain` and logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RouteOrigin {
    /// An `http` entry of a VirtualService.
    VirtualService {
        /// `namespace/name`.
        name: String,
        /// Index in `spec.http`.
        index: usize,
        /// The entry's `name`, if it has one.
        route_name: Option<String>,
    },
    /// The default route to a whole service that has no VirtualService.
    Default,
    /// A route from an xDS control plane.
    Xds {
        /// The route's name in the RouteConfiguration.
        name: String,
    },
}

/// One route: conditions, then what to do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route {
    /// Where the route came from.
    pub origin: RouteOrigin,
    /// Any one of these must match; empty matches every request.
    pub matches: Vec<RouteMatch>,
    /// What to do with a matching request.
    pub action: RouteAction,
    /// Overall timeout (retries included); `None` means no timeout, as Istio's default.
    #[serde(serialize_with = "super::duration::serialize_opt")]
    pub timeout: Option<Duration>,
    /// Retry policy; `None` disables retries.
    pub retry: Option<RetryPolicy>,
    /// Fault injection.
    pub fault: Option<FaultPolicy>,
    /// Shadow copies.
    pub mirrors: Vec<Mirror>,
    /// Header operations on the request.
    pub request_headers: HeaderMutation,
    /// Header operations on the response.
    pub response_headers: HeaderMutation,
    /// Path and authority rewrites.
    pub rewrite: Option<Rewrite>,
}

/// Conditions of one match block; all given conditions must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RouteMatch {
    /// Optional name (Istio `match[].name`).
    pub name: Option<String>,
    /// Path (`uri`).
    pub path: Option<StringMatch>,
    /// Match path and method case-insensitively (`ignoreUriCase`).
    pub ignore_uri_case: bool,
    /// Method.
    pub method: Option<StringMatch>,
    /// Authority (`:authority` / `Host`).
    pub authority: Option<StringMatch>,
    /// Request headers.
    pub headers: Vec<HeaderMatch>,
    /// Query parameters.
    pub query: Vec<QueryMatch>,
    /// The destination port the request was sent to.
    pub port: Option<u16>,
}

/// A header condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeaderMatch {
    /// Header name, lowercase.
    pub name: String,
    /// How the value must match; `None` means the header must merely be present.
    pub value: Option<StringMatch>,
    /// Invert: the request must *not* have a matching header (`withoutHeaders`).
    pub invert: bool,
}

/// A query-parameter condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueryMatch {
    /// Parameter name.
    pub name: String,
    /// How the value must match; `None` means present.
    pub value: Option<StringMatch>,
}

/// What a route does.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    /// Forward to one of these clusters, chosen by weight.
    Forward(Vec<WeightedCluster>),
    /// Answer directly.
    DirectResponse {
        /// HTTP status.
        status: u16,
        /// Body, if any.
        body: Option<String>,
    },
    /// Redirect the client.
    Redirect {
        /// New path, if it changes.
        path: Option<String>,
        /// New authority, if it changes.
        authority: Option<String>,
        /// Status code (301 by default).
        status: u16,
    },
}

/// A weighted destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WeightedCluster {
    /// Cluster name.
    pub cluster: ClusterName,
    /// Relative weight: the share is this weight over the sum of the route's weights (Istio
    /// weights need not add up to 100).
    pub weight: u32,
    /// Header operations for requests sent to this destination.
    pub request_headers: HeaderMutation,
    /// Header operations on responses from this destination.
    pub response_headers: HeaderMutation,
}

/// Retry policy of a route (Istio `retries`, Envoy `retry_policy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Timeout of each attempt; `None` uses the route timeout.
    #[serde(serialize_with = "super::duration::serialize_opt")]
    pub per_try_timeout: Option<Duration>,
    /// Conditions that trigger a retry.
    pub retry_on: RetryOn,
    /// Extra HTTP status codes that are retried.
    pub retriable_status_codes: Vec<u16>,
    /// Backoff base interval (Envoy default 25 ms).
    #[serde(serialize_with = "super::duration::serialize")]
    pub backoff_base: Duration,
    /// Backoff maximum (Envoy default 10 × base).
    #[serde(serialize_with = "super::duration::serialize")]
    pub backoff_max: Duration,
}

/// Retry conditions (Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetryOn {
    /// Any 5xx response, or a reset / connect failure.
    pub server_error: bool,
    /// 502, 503, 504.
    pub gateway_error: bool,
    /// Stream or connection reset.
    pub reset: bool,
    /// TCP connect failure.
    pub connect_failure: bool,
    /// HTTP/2 REFUSED_STREAM.
    pub refused_stream: bool,
    /// 409.
    pub retriable_4xx: bool,
    /// Statuses listed in `retriable_status_codes`.
    pub retriable_status_codes: bool,
    /// gRPC CANCELLED.
    pub grpc_cancelled: bool,
    /// gRPC DEADLINE_EXCEEDED.
    pub grpc_deadline_exceeded: bool,
    /// gRPC INTERNAL.
    pub grpc_internal: bool,
    /// gRPC RESOURCE_EXHAUSTED.
    pub grpc_resource_exhausted: bool,
    /// gRPC UNAVAILABLE.
    pub grpc_unavailable: bool,
}

/// A fraction expressed in parts per million, exact for Istio's percentages (`0.1` → 1,000).
/// Serializes as a percentage (`10.0`), as Istio writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u32);

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_percent())
    }
}

impl Percent {
    /// One million parts.
    pub const MILLION: u32 = 1_000_000;
    /// 100 %.
    pub const ALL: Percent = Percent(Self::MILLION);

    /// From a percentage in 0.0..=100.0; `None` outside that range or for NaN.
    pub fn from_percent(p: f64) -> Option<Self> {
        if !(0.0..=100.0).contains(&p) {
            return None;
        }
        // In range, so the product fits in u32.
        Some(Percent((p * 10_000.0).round() as u32))
    }

    /// As a percentage, 0.0 to 100.0.
    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// Parts per million.
    pub fn parts_per_million(self) -> u32 {
        self.0
    }

    /// From parts per million, capped at one million.
    pub fn from_parts_per_million(ppm: u32) -> Self {
        Percent(ppm.min(Self::MILLION))
    }

    /// Whether a uniform draw in `0..1_000_000` falls inside this fraction.
    pub fn hit(self, draw: u32) -> bool {
        draw < self.0
    }
}

/// Fault injection (Istio `fault`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultPolicy {
    /// Delay some requests.
    pub delay: Option<FaultDelay>,
    /// Abort some requests.
    pub abort: Option<FaultAbort>,
}

/// Delay fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultDelay {
    /// How long.
    #[serde(serialize_with = "super::duration::serialize")]
    pub fixed_delay: Duration,
    /// Share of requests delayed.
    pub percentage: Percent,
}

/// Abort fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultAbort {
    /// What the aborted request gets.
    pub status: AbortStatus,
    /// Share of requests aborted.
    pub percentage: Percent,
}

/// The answer of an aborted request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortStatus {
    /// An HTTP status.
    Http(u16),
    /// A gRPC status code (the response is HTTP 200 with `grpc-status`).
    Grpc(u16),
}

/// A mirror (shadow) destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mirror {
    /// Cluster the copy goes to.
    pub cluster: ClusterName,
    /// Share of requests copied.
    pub percentage: Percent,
}

/// Header operations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderMutation {
    /// Overwrite (or add) these headers.
    pub set: Vec<(String, String)>,
    /// Append these values.
    pub add: Vec<(String, String)>,
    /// Remove these headers.
    pub remove: Vec<String>,
}

impl HeaderMutation {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Rewrites applied before forwarding (Istio `rewrite`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// Replace the matched path prefix (or the whole exact path) with this.
    pub uri: Option<String>,
    /// Replace the authority with this.
    pub authority: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vh(name: &str, domains: &[&str]) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: vec![],
        }
    }

    #[test]
    fn virtual_host_selection_follows_envoy() {
        let rc = RouteConfiguration::new(
            "80",
            vec![
                vh("a", &["a.example.com", "a"]),
                vh("wild", &["*.example.com"]),
                vh("deeper", &["*.b.example.com"]),
                vh("any", &["*"]),
            ],
        );
        let name = |a: &str| rc.virtual_host(a).map(|v| v.name.as_str());
        assert_eq!(name("a.example.com"), Some("a"));
        assert_eq!(name("A.Example.COM"), Some("a"));
        assert_eq!(name("x.example.com"), Some("wild"));
        assert_eq!(name("x.b.example.com"), Some("deeper"));
        assert_eq!(
            name(".example.com"),
            Some("any"),
            "a wildcard needs a non-empty label"
        );
        assert_eq!(name("other"), Some("any"));
    }

    #[test]
    fn percent_is_exact() {
        assert_eq!(
            Percent::from_percent(0.1).unwrap().parts_per_million(),
            1_000
        );
        assert_eq!(Percent::from_percent(100.0), Some(Percent::ALL));
        assert_eq!(Percent::from_percent(100.5), None);
        assert_eq!(Percent::from_percent(f64::NAN), None);
        assert!(Percent::ALL.hit(999_999));
        assert!(!Percent::from_percent(0.0).unwrap().hit(0));
    }
}
