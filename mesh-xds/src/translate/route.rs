//! RDS: Envoy `RouteConfiguration` ↔ model [`RouteConfiguration`] parts.
//!
//! A model route with several match blocks becomes one Envoy route per block (Envoy routes have
//! one match), as istiod does; the `mesh` metadata `route` index groups them back. Consistent-hash
//! keys, which the model keeps on the cluster, are Envoy `hash_policy` on the routes to it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source::Specifier,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::RetryPolicy as XdsRetry;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, Route as XdsRoute,
    RouteAction as XdsRouteAction, RouteConfiguration as XdsRouteConfiguration,
    RouteMatch as XdsRouteMatch, VirtualHost as XdsVirtualHost, WeightedCluster as XdsWeighted,
    header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode},
    retry_policy::RetryBackOff,
    route::Action,
    route_action::{
        ClusterSpecifier, HashPolicy, HostRewriteSpecifier, RequestMirrorPolicy,
        hash_policy::{ConnectionProperties, Cookie, Header, PolicySpecifier, QueryParameter},
    },
    route_match::PathSpecifier,
    weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay as XdsDelay, fault_delay::FaultDelaySecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort as XdsAbort, HttpFault, fault_abort::ErrorType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use envoy_types::pb::google::protobuf::Value;
use mesh_core::config::Diagnostic;
use mesh_core::model::{
    AbortStatus, Cluster, ClusterName, FaultAbort, FaultDelay, FaultPolicy, HashKey, HeaderMatch,
    HeaderMutation, LbPolicy, Mirror, Percent, QueryMatch, Regex, RetryOn, RetryPolicy, Rewrite,
    Route, RouteAction, RouteConfiguration, RouteMatch, RouteOrigin, StringMatch, VirtualHost,
    WeightedCluster,
};

use super::error::{ResourceKind, Scope, XdsError};
use super::meta::{self, ISTIO, MESH};
use super::proto::{self, duration_from, duration_to, pack, u32v, unpack};

/// The HTTP filter name of fault injection, the key of per-route fault config.
pub(crate) const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// A validated route configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedRouteConfiguration {
    /// Its name (istiod names it by port, e.g. `9080`).
    pub name: String,
    /// Virtual hosts.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Hash keys of the routes' consistent-hash policies, by the clusters they route to.
    pub hash_keys: Vec<(ClusterName, HashKey)>,
    /// Warnings.
    pub warnings: Vec<Diagnostic>,
}

// ---------------------------------------------------------------- model → xDS

/// The RDS resource for `rc`; `clusters` supply consistent-hash keys.
pub(crate) fn to_xds(
    rc: &RouteConfiguration,
    clusters: &BTreeMap<ClusterName, Arc<Cluster>>,
) -> XdsRouteConfiguration {
    XdsRouteConfiguration {
        name: rc.name.clone(),
        virtual_hosts: rc
            .virtual_hosts
            .iter()
            .map(|vh| XdsVirtualHost {
                name: vh.name.clone(),
                domains: vh.domains.clone(),
                routes: vh
                    .routes
                    .iter()
                    .enumerate()
                    .flat_map(|(i, r)| route_to_xds(i, r, clusters))
                    .collect(),
                ..Default::default()
            })
            .collect(),
        validate_clusters: Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        ..Default::default()
    }
}

fn string_matcher(m: &StringMatch) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(match m {
            StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
            StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
            StringMatch::Regex(r) => MatchPattern::SafeRegex(RegexMatcher {
                regex: r.as_str().to_owned(),
                engine_type: None,
            }),
        }),
        ignore_case: false,
    }
}

fn header_matcher(name: &str, value: Option<&StringMatch>, invert: bool) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        invert_match: invert,
        header_match_specifier: Some(match value {
            Some(v) => HeaderMatchSpecifier::StringMatch(string_matcher(v)),
            None => HeaderMatchSpecifier::PresentMatch(true),
        }),
        ..Default::default()
    }
}

fn fraction(p: Percent) -> FractionalPercent {
    FractionalPercent {
        numerator: p.parts_per_million(),
        denominator: DenominatorType::Million as i32,
    }
}

fn header_options(m: &HeaderMutation) -> Vec<HeaderValueOption> {
    let opt = |(k, v): &(String, String), action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue {
            key: k.clone(),
            value: v.clone(),
            raw_value: Vec::new(),
        }),
        append_action: action as i32,
        ..Default::default()
    };
    m.set
        .iter()
        .map(|h| opt(h, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .chain(
            m.add
                .iter()
                .map(|h| opt(h, HeaderAppendAction::AppendIfExistsOrAdd)),
        )
        .collect()
}

fn retry_on_string(r: &RetryOn) -> String {
    let flags = [
        (r.server_error, "5xx"),
        (r.gateway_error, "gateway-error"),
        (r.reset, "reset"),
        (r.connect_failure, "connect-failure"),
        (r.refused_stream, "refused-stream"),
        (r.retriable_4xx, "retriable-4xx"),
        (r.retriable_status_codes, "retriable-status-codes"),
        (r.grpc_cancelled, "cancelled"),
        (r.grpc_deadline_exceeded, "deadline-exceeded"),
        (r.grpc_internal, "internal"),
        (r.grpc_resource_exhausted, "resource-exhausted"),
        (r.grpc_unavailable, "unavailable"),
    ];
    flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn hash_policy(key: &HashKey) -> HashPolicy {
    HashPolicy {
        terminal: false,
        policy_specifier: Some(match key {
            HashKey::Header(h) => PolicySpecifier::Header(Header {
                header_name: h.clone(),
                regex_rewrite: None,
            }),
            HashKey::Cookie { name, path, ttl } => PolicySpecifier::Cookie(Cookie {
                name: name.clone(),
                path: path.clone().unwrap_or_default(),
                ttl: ttl.map(duration_to),
                attributes: Vec::new(),
            }),
            HashKey::SourceIp => {
                PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
            }
            HashKey::QueryParameter(q) => {
                PolicySpecifier::QueryParameter(QueryParameter { name: q.clone() })
            }
        }),
    }
}

fn route_to_xds(
    index: usize,
    r: &Route,
    clusters: &BTreeMap<ClusterName, Arc<Cluster>>,
) -> Vec<XdsRoute> {
    let (name, mut istio_meta, mut mesh_meta) = (
        match &r.origin {
            RouteOrigin::VirtualService { route_name, .. } => {
                route_name.clone().unwrap_or_default()
            }
            RouteOrigin::Default => "default".to_owned(),
            RouteOrigin::Xds { name } => name.clone(),
        },
        HashMap::<String, Value>::new(),
        HashMap::<String, Value>::new(),
    );
    mesh_meta.insert("route".into(), proto::number_value(index as f64));
    if let RouteOrigin::VirtualService { name, index, .. } = &r.origin {
        let (ns, n) = name.split_once('/').unwrap_or(("", name));
        istio_meta.insert(
            "config".into(),
            proto::string_value(format!(
                "/apis/networking.istio.io/v1/namespaces/{ns}/virtual-service/{n}"
            )),
        );
        mesh_meta.insert("index".into(), proto::number_value(*index as f64));
    }
    let mut per_filter = HashMap::new();
    if let Some(f) = &r.fault {
        let fault = HttpFault {
            delay: f.delay.as_ref().map(|d| XdsDelay {
                percentage: Some(fraction(d.percentage)),
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(duration_to(
                    d.fixed_delay,
                ))),
            }),
            abort: f.abort.as_ref().map(|a| XdsAbort {
                percentage: Some(fraction(a.percentage)),
                error_type: Some(match a.status {
                    AbortStatus::Http(s) => ErrorType::HttpStatus(u32::from(s)),
                    AbortStatus::Grpc(s) => ErrorType::GrpcStatus(u32::from(s)),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        per_filter.insert(FAULT_FILTER.to_owned(), pack(&fault));
    }
    let action = match &r.action {
        RouteAction::DirectResponse { status, body } => {
            Action::DirectResponse(DirectResponseAction {
                status: u32::from(*status),
                body: body.as_ref().map(|b| DataSource {
                    specifier: Some(Specifier::InlineString(b.clone())),
                    ..Default::default()
                }),
                body_format: None,
            })
        }
        RouteAction::Redirect {
            path,
            authority,
            status,
        } => Action::Redirect(RedirectAction {
            host_redirect: authority.clone().unwrap_or_default(),
            response_code: match status {
                302 => RedirectResponseCode::Found,
                303 => RedirectResponseCode::SeeOther,
                307 => RedirectResponseCode::TemporaryRedirect,
                308 => RedirectResponseCode::PermanentRedirect,
                _ => RedirectResponseCode::MovedPermanently,
            } as i32,
            path_rewrite_specifier: path.clone().map(PathRewriteSpecifier::PathRedirect),
            ..Default::default()
        }),
        RouteAction::Forward(targets) => {
            let single = match targets.as_slice() {
                [t] if t.weight == 100
                    && t.request_headers.is_empty()
                    && t.response_headers.is_empty() =>
                {
                    Some(t.cluster.to_string())
                }
                _ => None,
            };
            let specifier = match single {
                Some(c) => ClusterSpecifier::Cluster(c),
                None => ClusterSpecifier::WeightedClusters(XdsWeighted {
                    clusters: targets
                        .iter()
                        .map(|t| ClusterWeight {
                            name: t.cluster.to_string(),
                            weight: u32v(t.weight),
                            request_headers_to_add: header_options(&t.request_headers),
                            request_headers_to_remove: t.request_headers.remove.clone(),
                            response_headers_to_add: header_options(&t.response_headers),
                            response_headers_to_remove: t.response_headers.remove.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
            };
            let hash = targets
                .iter()
                .find_map(|t| match &clusters.get(&t.cluster)?.lb {
                    LbPolicy::RingHash { key, .. } | LbPolicy::Maglev { key, .. } => Some(key),
                    _ => None,
                });
            Action::Route(XdsRouteAction {
                cluster_specifier: Some(specifier),
                timeout: Some(duration_to(r.timeout.unwrap_or_default())),
                retry_policy: r.retry.as_ref().map(|p| XdsRetry {
                    retry_on: retry_on_string(&p.retry_on),
                    num_retries: u32v(p.attempts),
                    per_try_timeout: p.per_try_timeout.map(duration_to),
                    retriable_status_codes: p
                        .retriable_status_codes
                        .iter()
                        .map(|c| u32::from(*c))
                        .collect(),
                    retry_back_off: Some(RetryBackOff {
                        base_interval: Some(duration_to(p.backoff_base)),
                        max_interval: Some(duration_to(p.backoff_max)),
                    }),
                    ..Default::default()
                }),
                request_mirror_policies: r
                    .mirrors
                    .iter()
                    .map(|m| RequestMirrorPolicy {
                        cluster: m.cluster.to_string(),
                        runtime_fraction: Some(RuntimeFractionalPercent {
                            default_value: Some(fraction(m.percentage)),
                            runtime_key: String::new(),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                hash_policy: hash.map(hash_policy).into_iter().collect(),
                prefix_rewrite: r
                    .rewrite
                    .as_ref()
                    .and_then(|w| w.uri.clone())
                    .unwrap_or_default(),
                host_rewrite_specifier: r
                    .rewrite
                    .as_ref()
                    .and_then(|w| w.authority.clone())
                    .map(HostRewriteSpecifier::HostRewriteLiteral),
                ..Default::default()
            })
        }
    };
    let matches: Vec<Option<&RouteMatch>> = if r.matches.is_empty() {
        vec![None]
    } else {
        r.matches.iter().map(Some).collect()
    };
    matches
        .into_iter()
        .map(|m| {
            let mut mesh_meta = mesh_meta.clone();
            if let Some(m) = m {
                if let Some(n) = &m.name {
                    mesh_meta.insert("match_name".into(), proto::string_value(n.clone()));
                }
                if let Some(p) = m.port {
                    mesh_meta.insert("port".into(), proto::number_value(f64::from(p)));
                }
            }
            XdsRoute {
                name: name.clone(),
                r#match: Some(match_to_xds(m)),
                metadata: meta::metadata(vec![(ISTIO, istio_meta.clone()), (MESH, mesh_meta)]),
                typed_per_filter_config: per_filter.clone(),
                request_headers_to_add: header_options(&r.request_headers),
                request_headers_to_remove: r.request_headers.remove.clone(),
                response_headers_to_add: header_options(&r.response_headers),
                response_headers_to_remove: r.response_headers.remove.clone(),
                action: Some(action.clone()),
                ..Default::default()
            }
        })
        .collect()
}

fn match_to_xds(m: Option<&RouteMatch>) -> XdsRouteMatch {
    let Some(m) = m else {
        return XdsRouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        };
    };
    let mut headers = Vec::new();
    if let Some(method) = &m.method {
        headers.push(header_matcher(":method", Some(method), false));
    }
    if let Some(authority) = &m.authority {
        headers.push(header_matcher(":authority", Some(authority), false));
    }
    headers.extend(
        m.headers
            .iter()
            .map(|h| header_matcher(&h.name, h.value.as_ref(), h.invert)),
    );
    XdsRouteMatch {
        path_specifier: Some(match &m.path {
            None => PathSpecifier::Prefix("/".into()),
            Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
            Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
            Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(RegexMatcher {
                regex: r.as_str().to_owned(),
                engine_type: None,
            }),
        }),
        case_sensitive: m
            .ignore_uri_case
            .then_some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        headers,
        query_parameters: m
            .query
            .iter()
            .map(|q| QueryParameterMatcher {
                name: q.name.clone(),
                query_parameter_match_specifier: Some(match &q.value {
                    Some(v) => QueryParameterMatchSpecifier::StringMatch(string_matcher(v)),
                    None => QueryParameterMatchSpecifier::PresentMatch(true),
                }),
            })
            .collect(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------- xDS → model

fn string_match(m: &StringMatcher, scope: &Scope, path: &str) -> Result<StringMatch, XdsError> {
    if m.ignore_case {
        return Err(scope.error(
            format!("{path}.ignore_case"),
            "case-insensitive matching is not supported here",
        ));
    }
    Ok(match &m.match_pattern {
        Some(MatchPattern::Exact(s)) => StringMatch::Exact(s.clone()),
        Some(MatchPattern::Prefix(s)) => StringMatch::Prefix(s.clone()),
        Some(MatchPattern::Suffix(s)) => {
            StringMatch::Regex(compile(&format!(".*{}", regex_escape(s)), scope, path)?)
        }
        Some(MatchPattern::Contains(s)) => {
            StringMatch::Regex(compile(&format!(".*{}.*", regex_escape(s)), scope, path)?)
        }
        Some(MatchPattern::SafeRegex(r)) => {
            StringMatch::Regex(compile(&r.regex, scope, &format!("{path}.safe_regex"))?)
        }
        Some(MatchPattern::Custom(_)) | None => {
            return Err(scope.error(path, "unsupported or missing match pattern"));
        }
    })
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

fn compile(re: &str, scope: &Scope, path: &str) -> Result<Regex, XdsError> {
    Regex::new(re).map_err(|e| scope.error(path, format!("invalid regex: {e}")))
}

fn percent(f: Option<&FractionalPercent>, scope: &Scope, path: &str) -> Result<Percent, XdsError> {
    let Some(f) = f else { return Ok(Percent::ALL) };
    let per_million = match DenominatorType::try_from(f.denominator) {
        Ok(DenominatorType::Hundred) => 10_000u64,
        Ok(DenominatorType::TenThousand) => 100,
        Ok(DenominatorType::Million) => 1,
        Err(_) => return Err(scope.error(format!("{path}.denominator"), "unknown denominator")),
    };
    let ppm = u64::from(f.numerator).saturating_mul(per_million);
    Ok(Percent::from_parts_per_million(
        u32::try_from(ppm).unwrap_or(u32::MAX),
    ))
}

fn header_mutation(
    add: &[HeaderValueOption],
    remove: &[String],
    scope: &mut Scope,
    path: &str,
) -> HeaderMutation {
    let mut m = HeaderMutation {
        remove: remove.to_vec(),
        ..Default::default()
    };
    for (i, o) in add.iter().enumerate() {
        let Some(h) = &o.header else { continue };
        let pair = (h.key.clone(), h.value.clone());
        match (
            HeaderAppendAction::try_from(o.append_action),
            o.append.as_ref().map(|a| a.value),
        ) {
            (Ok(HeaderAppendAction::AppendIfExistsOrAdd), Some(false))
            | (Ok(HeaderAppendAction::OverwriteIfExistsOrAdd), _) => m.set.push(pair),
            (Ok(HeaderAppendAction::AppendIfExistsOrAdd), _) => m.add.push(pair),
            _ => {
                scope.warn(format!("{path}[{i}].append_action"), "only APPEND_IF_EXISTS_OR_ADD and OVERWRITE_IF_EXISTS_OR_ADD are implemented; treated as overwrite");
                m.set.push(pair);
            }
        }
    }
    m
}

fn retry_on(s: &str, scope: &mut Scope, path: &str) -> RetryOn {
    let mut r = RetryOn::default();
    for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match token {
            "5xx" => r.server_error = true,
            "gateway-error" => r.gateway_error = true,
            "reset" => r.reset = true,
            "connect-failure" => r.connect_failure = true,
            "refused-stream" => r.refused_stream = true,
            "retriable-4xx" => r.retriable_4xx = true,
            "retriable-status-codes" => r.retriable_status_codes = true,
            "cancelled" => r.grpc_cancelled = true,
            "deadline-exceeded" => r.grpc_deadline_exceeded = true,
            "internal" => r.grpc_internal = true,
            "resource-exhausted" => r.grpc_resource_exhausted = true,
            "unavailable" => r.grpc_unavailable = true,
            other => scope.warn(
                path,
                format!("retry condition {other:?} not implemented; ignored"),
            ),
        }
    }
    r
}

fn hash_key(h: &HashPolicy, scope: &mut Scope, path: &str) -> Option<HashKey> {
    match &h.policy_specifier {
        Some(PolicySpecifier::Header(h)) => {
            Some(HashKey::Header(h.header_name.to_ascii_lowercase()))
        }
        Some(PolicySpecifier::Cookie(c)) => Some(HashKey::Cookie {
            name: c.name.clone(),
            path: (!c.path.is_empty()).then(|| c.path.clone()),
            ttl: c.ttl.as_ref().and_then(duration_from),
        }),
        Some(PolicySpecifier::ConnectionProperties(p)) if p.source_ip => Some(HashKey::SourceIp),
        Some(PolicySpecifier::QueryParameter(q)) => Some(HashKey::QueryParameter(q.name.clone())),
        _ => {
            scope.warn(path, "hash policy not implemented; ignored");
            None
        }
    }
}

fn match_from_xds(
    m: &XdsRouteMatch,
    route: &XdsRoute,
    scope: &mut Scope,
    path: &str,
) -> Result<RouteMatch, XdsError> {
    let mut out = RouteMatch {
        name: meta::field(route.metadata.as_ref(), MESH, "match_name")
            .and_then(proto::as_str)
            .map(str::to_owned),
        port: meta::field(route.metadata.as_ref(), MESH, "port")
            .and_then(proto::as_number)
            .and_then(|p| u16::try_from(p as u64).ok()),
        ignore_uri_case: m.case_sensitive.as_ref().is_some_and(|c| !c.value),
        ..Default::default()
    };
    out.path = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) if p == "/" || p.is_empty() => None,
        Some(PathSpecifier::Prefix(p)) => Some(StringMatch::Prefix(p.clone())),
        Some(PathSpecifier::Path(p)) => Some(StringMatch::Exact(p.clone())),
        Some(PathSpecifier::SafeRegex(r)) => Some(StringMatch::Regex(compile(
            &r.regex,
            scope,
            &format!("{path}.safe_regex"),
        )?)),
        Some(PathSpecifier::PathSeparatedPrefix(p)) => Some(StringMatch::Regex(compile(
            &format!("{}(/.*)?", regex_escape(p)),
            scope,
            &format!("{path}.path_separated_prefix"),
        )?)),
        Some(_) => {
            return Err(scope.error(format!("{path}.path_specifier"), "unsupported path matcher"));
        }
        None => return Err(scope.error(format!("{path}.path_specifier"), "missing")),
    };
    for (i, h) in m.headers.iter().enumerate() {
        let hpath = format!("{path}.headers[{i}]");
        let value = match &h.header_match_specifier {
            Some(HeaderMatchSpecifier::StringMatch(s)) => {
                Some(string_match(s, scope, &format!("{hpath}.string_match"))?)
            }
            Some(HeaderMatchSpecifier::ExactMatch(s)) => Some(StringMatch::Exact(s.clone())),
            Some(HeaderMatchSpecifier::PrefixMatch(s)) => Some(StringMatch::Prefix(s.clone())),
            Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => Some(StringMatch::Regex(compile(
                &r.regex,
                scope,
                &format!("{hpath}.safe_regex_match"),
            )?)),
            Some(HeaderMatchSpecifier::SuffixMatch(s)) => Some(StringMatch::Regex(compile(
                &format!(".*{}", regex_escape(s)),
                scope,
                &hpath,
            )?)),
            Some(HeaderMatchSpecifier::ContainsMatch(s)) => Some(StringMatch::Regex(compile(
                &format!(".*{}.*", regex_escape(s)),
                scope,
                &hpath,
            )?)),
            Some(HeaderMatchSpecifier::PresentMatch(true)) => None,
            Some(HeaderMatchSpecifier::PresentMatch(false)) => {
                out.headers.push(HeaderMatch {
                    name: h.name.to_ascii_lowercase(),
                    value: None,
                    invert: !h.invert_match,
                });
                continue;
            }
            Some(HeaderMatchSpecifier::RangeMatch(_)) => {
                return Err(scope.error(format!("{hpath}.range_match"), "not supported"));
            }
            None => None,
        };
        let name = h.name.to_ascii_lowercase();
        match (name.as_str(), &value, h.invert_match) {
            (":method", Some(_), false) => out.method = value,
            (":authority" | "host", Some(_), false) => out.authority = value,
            _ => out.headers.push(HeaderMatch {
                name,
                value,
                invert: h.invert_match,
            }),
        }
    }
    for (i, q) in m.query_parameters.iter().enumerate() {
        let value = match &q.query_parameter_match_specifier {
            Some(QueryParameterMatchSpecifier::StringMatch(s)) => Some(string_match(
                s,
                scope,
                &format!("{path}.query_parameters[{i}].string_match"),
            )?),
            Some(QueryParameterMatchSpecifier::PresentMatch(_)) | None => None,
        };
        out.query.push(QueryMatch {
            name: q.name.clone(),
            value,
        });
    }
    let mut r = m.clone();
    r.path_specifier = None;
    r.case_sensitive = None;
    r.headers.clear();
    r.query_parameters.clear();
    scope.unsupported(path, &r);
    Ok(out)
}

fn dur(
    d: &Option<envoy_types::pb::google::protobuf::Duration>,
    scope: &Scope,
    path: &str,
) -> Result<Option<std::time::Duration>, XdsError> {
    d.as_ref()
        .map(|d| duration_from(d).ok_or_else(|| scope.error(path, "negative or invalid duration")))
        .transpose()
}

/// One Envoy route as a model route with one match (grouping happens in the caller).
fn route_from_xds(
    route: &XdsRoute,
    path: &str,
    scope: &mut Scope,
    hash_keys: &mut Vec<(ClusterName, HashKey)>,
) -> Result<Route, XdsError> {
    let m = route
        .r#match
        .as_ref()
        .ok_or_else(|| scope.error(format!("{path}.match"), "missing"))?;
    let matched = match_from_xds(m, route, scope, &format!("{path}.match"))?;
    let config = meta::field(route.metadata.as_ref(), ISTIO, "config").and_then(proto::as_str);
    let vs = config.and_then(|c| {
        let rest = c.strip_prefix("/apis/networking.istio.io/")?;
        let mut parts = rest.split('/').skip(1);
        let (_, ns, _, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some(format!("{ns}/{name}"))
    });
    let origin = match vs {
        Some(name) => RouteOrigin::VirtualService {
            name,
            index: meta::field(route.metadata.as_ref(), MESH, "index")
                .and_then(proto::as_number)
                .unwrap_or(0.0) as usize,
            route_name: (!route.name.is_empty()).then(|| route.name.clone()),
        },
        None if route.name == "default" => RouteOrigin::Default,
        None => RouteOrigin::Xds {
            name: route.name.clone(),
        },
    };
    let mut out = Route {
        origin,
        matches: vec![matched],
        action: RouteAction::DirectResponse {
            status: 500,
            body: None,
        },
        timeout: None,
        retry: None,
        fault: None,
        mirrors: Vec::new(),
        request_headers: header_mutation(
            &route.request_headers_to_add,
            &route.request_headers_to_remove,
            scope,
            &format!("{path}.request_headers_to_add"),
        ),
        response_headers: header_mutation(
            &route.response_headers_to_add,
            &route.response_headers_to_remove,
            scope,
            &format!("{path}.response_headers_to_add"),
        ),
        rewrite: None,
    };
    for (key, any) in &route.typed_per_filter_config {
        let fpath = format!("{path}.typed_per_filter_config[{key:?}]");
        if key != FAULT_FILTER {
            scope.warn(fpath, "filter config not implemented; ignored");
            continue;
        }
        let f: HttpFault = unpack(any).map_err(|e| scope.error(&fpath, e))?;
        let delay = match &f.delay {
            None => None,
            Some(d) => match &d.fault_delay_secifier {
                Some(FaultDelaySecifier::FixedDelay(t)) => Some(FaultDelay {
                    fixed_delay: duration_from(t).ok_or_else(|| {
                        scope.error(format!("{fpath}.delay.fixed_delay"), "invalid duration")
                    })?,
                    percentage: percent(
                        d.percentage.as_ref(),
                        scope,
                        &format!("{fpath}.delay.percentage"),
                    )?,
                }),
                _ => {
                    return Err(
                        scope.error(format!("{fpath}.delay"), "only fixed delays are supported")
                    );
                }
            },
        };
        let abort = match &f.abort {
            None => None,
            Some(a) => Some(FaultAbort {
                status: match a.error_type {
                    Some(ErrorType::HttpStatus(s)) => AbortStatus::Http(
                        u16::try_from(s)
                            .ok()
                            .filter(|s| (200..600).contains(s))
                            .ok_or_else(|| {
                                scope.error(
                                    format!("{fpath}.abort.http_status"),
                                    format!("{s} is not an HTTP status"),
                                )
                            })?,
                    ),
                    Some(ErrorType::GrpcStatus(s)) => AbortStatus::Grpc(
                        u16::try_from(s).ok().filter(|s| *s <= 16).ok_or_else(|| {
                            scope.error(
                                format!("{fpath}.abort.grpc_status"),
                                format!("{s} is not a gRPC status"),
                            )
                        })?,
                    ),
                    _ => {
                        return Err(scope.error(
                            format!("{fpath}.abort"),
                            "only http_status and grpc_status aborts are supported",
                        ));
                    }
                },
                percentage: percent(
                    a.percentage.as_ref(),
                    scope,
                    &format!("{fpath}.abort.percentage"),
                )?,
            }),
        };
        out.fault = Some(FaultPolicy { delay, abort });
    }
    match &route.action {
        None => return Err(scope.error(format!("{path}.action"), "missing")),
        Some(Action::DirectResponse(d)) => {
            let status = u16::try_from(d.status)
                .ok()
                .filter(|s| (200..600).contains(s))
                .ok_or_else(|| {
                    scope.error(
                        format!("{path}.direct_response.status"),
                        format!("{} is not an HTTP status", d.status),
                    )
                })?;
            let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                None => None,
                Some(Specifier::InlineString(s)) => Some(s.clone()),
                Some(Specifier::InlineBytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                Some(_) => {
                    return Err(scope.error(
                        format!("{path}.direct_response.body"),
                        "only inline bodies are supported",
                    ));
                }
            };
            out.action = RouteAction::DirectResponse { status, body };
        }
        Some(Action::Redirect(r)) => {
            let status = match RedirectResponseCode::try_from(r.response_code) {
                Ok(RedirectResponseCode::MovedPermanently) => 301,
                Ok(RedirectResponseCode::Found) => 302,
                Ok(RedirectResponseCode::SeeOther) => 303,
                Ok(RedirectResponseCode::TemporaryRedirect) => 307,
                Ok(RedirectResponseCode::PermanentRedirect) => 308,
                Err(_) => {
                    return Err(
                        scope.error(format!("{path}.redirect.response_code"), "unknown value")
                    );
                }
            };
            let p = match &r.path_rewrite_specifier {
                None => None,
                Some(PathRewriteSpecifier::PathRedirect(p)) => Some(p.clone()),
                Some(_) => {
                    return Err(scope.error(
                        format!("{path}.redirect"),
                        "only path_redirect is supported",
                    ));
                }
            };
            out.action = RouteAction::Redirect {
                path: p,
                authority: (!r.host_redirect.is_empty()).then(|| r.host_redirect.clone()),
                status,
            };
        }
        Some(Action::Route(a)) => {
            let apath = format!("{path}.route");
            let targets =
                match &a.cluster_specifier {
                    Some(ClusterSpecifier::Cluster(c)) if !c.is_empty() => vec![WeightedCluster {
                        cluster: ClusterName::new(c.as_str()),
                        weight: 100,
                        request_headers: HeaderMutation::default(),
                        response_headers: HeaderMutation::default(),
                    }],
                    Some(ClusterSpecifier::WeightedClusters(w)) => {
                        let mut list = Vec::new();
                        for (i, c) in w.clusters.iter().enumerate() {
                            let cpath = format!("{apath}.weighted_clusters.clusters[{i}]");
                            if c.name.is_empty() {
                                return Err(scope.error(format!("{cpath}.name"), "empty"));
                            }
                            list.push(WeightedCluster {
                                cluster: ClusterName::new(c.name.as_str()),
                                weight: c.weight.as_ref().map_or(0, |w| w.value),
                                request_headers: header_mutation(
                                    &c.request_headers_to_add,
                                    &c.request_headers_to_remove,
                                    scope,
                                    &format!("{cpath}.request_headers_to_add"),
                                ),
                                response_headers: header_mutation(
                                    &c.response_headers_to_add,
                                    &c.response_headers_to_remove,
                                    scope,
                                    &format!("{cpath}.response_headers_to_add"),
                                ),
                            });
                        }
                        let total: u64 = list.iter().map(|c| u64::from(c.weight)).sum();
                        if total == 0 {
                            return Err(scope
                                .error(format!("{apath}.weighted_clusters"), "weights sum to 0"));
                        }
                        if total > u64::from(u32::MAX) {
                            return Err(scope
                                .error(format!("{apath}.weighted_clusters"), "weights overflow"));
                        }
                        list
                    }
                    _ => {
                        return Err(scope.error(
                            format!("{apath}.cluster_specifier"),
                            "only cluster and weighted_clusters are supported",
                        ));
                    }
                };
            for (i, h) in a.hash_policy.iter().enumerate() {
                if let Some(key) = hash_key(h, scope, &format!("{apath}.hash_policy[{i}]")) {
                    for t in &targets {
                        hash_keys.push((t.cluster.clone(), key.clone()));
                    }
                    break;
                }
            }
            out.action = RouteAction::Forward(targets);
            out.timeout =
                dur(&a.timeout, scope, &format!("{apath}.timeout"))?.filter(|t| !t.is_zero());
            if let Some(m) = &a.max_stream_duration {
                // gRPC reads the route timeout from here (istiod sets it for proxyless clients).
                let limit = dur(
                    &m.max_stream_duration,
                    scope,
                    &format!("{apath}.max_stream_duration.max_stream_duration"),
                )?
                .filter(|t| !t.is_zero());
                out.timeout = out.timeout.or(limit);
                if m.grpc_timeout_header_max.is_some() || m.grpc_timeout_header_offset.is_some() {
                    scope.warn(
                        format!("{apath}.max_stream_duration"),
                        "grpc-timeout header caps are not implemented; ignored",
                    );
                }
            }
            if let Some(p) = &a.retry_policy {
                let rpath = format!("{apath}.retry_policy");
                let backoff = p.retry_back_off.unwrap_or_default();
                let base = dur(
                    &backoff.base_interval,
                    scope,
                    &format!("{rpath}.retry_back_off.base_interval"),
                )?
                .unwrap_or(std::time::Duration::from_millis(25));
                let mut codes = Vec::new();
                for (i, c) in p.retriable_status_codes.iter().enumerate() {
                    codes.push(
                        u16::try_from(*c)
                            .ok()
                            .filter(|c| (100..600).contains(c))
                            .ok_or_else(|| {
                                scope.error(
                                    format!("{rpath}.retriable_status_codes[{i}]"),
                                    format!("{c} is not an HTTP status"),
                                )
                            })?,
                    );
                }
                out.retry = Some(RetryPolicy {
                    attempts: p.num_retries.as_ref().map_or(1, |n| n.value),
                    per_try_timeout: dur(
                        &p.per_try_timeout,
                        scope,
                        &format!("{rpath}.per_try_timeout"),
                    )?
                    .filter(|t| !t.is_zero()),
                    retry_on: retry_on(&p.retry_on, scope, &format!("{rpath}.retry_on")),
                    retriable_status_codes: codes,
                    backoff_base: base,
                    backoff_max: dur(
                        &backoff.max_interval,
                        scope,
                        &format!("{rpath}.retry_back_off.max_interval"),
                    )?
                    .unwrap_or(base * 10),
                });
                let mut r = p.clone();
                r.retry_on.clear();
                r.num_retries = None;
                r.per_try_timeout = None;
                r.retriable_status_codes.clear();
                r.retry_back_off = None;
                scope.unsupported(&rpath, &r);
            }
            for (i, m) in a.request_mirror_policies.iter().enumerate() {
                if m.cluster.is_empty() {
                    return Err(scope.error(
                        format!("{apath}.request_mirror_policies[{i}].cluster"),
                        "empty",
                    ));
                }
                out.mirrors.push(Mirror {
                    cluster: ClusterName::new(m.cluster.as_str()),
                    percentage: percent(
                        m.runtime_fraction
                            .as_ref()
                            .and_then(|f| f.default_value.as_ref()),
                        scope,
                        &format!("{apath}.request_mirror_policies[{i}].runtime_fraction"),
                    )?,
                });
            }
            let uri = (!a.prefix_rewrite.is_empty()).then(|| a.prefix_rewrite.clone());
            let authority = match &a.host_rewrite_specifier {
                Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => Some(h.clone()),
                Some(_) => {
                    scope.warn(
                        format!("{apath}.host_rewrite_specifier"),
                        "only host_rewrite_literal is implemented; ignored",
                    );
                    None
                }
                None => None,
            };
            if uri.is_some() || authority.is_some() {
                out.rewrite = Some(Rewrite { uri, authority });
            }
            let mut r = a.clone();
            r.cluster_specifier = None;
            r.hash_policy.clear();
            r.timeout = None;
            r.retry_policy = None;
            r.request_mirror_policies.clear();
            r.prefix_rewrite.clear();
            r.host_rewrite_specifier = None;
            r.max_stream_duration = None;
            scope.unsupported(&apath, &r);
        }
        Some(_) => {
            return Err(scope.error(
                format!("{path}.action"),
                "only route, redirect and direct_response are supported",
            ));
        }
    }
    let mut r = route.clone();
    r.name.clear();
    r.r#match = None;
    r.metadata = None;
    r.typed_per_filter_config.clear();
    r.request_headers_to_add.clear();
    r.request_headers_to_remove.clear();
    r.response_headers_to_add.clear();
    r.response_headers_to_remove.clear();
    r.action = None;
    r.decorator = None;
    scope.unsupported(path, &r);
    Ok(out)
}

/// Decodes and validates one RDS resource.
pub fn decode_route_configuration(
    rc: &XdsRouteConfiguration,
) -> Result<DecodedRouteConfiguration, XdsError> {
    let mut scope = Scope::new(ResourceKind::RouteConfiguration, rc.name.clone());
    if rc.name.is_empty() {
        return Err(scope.error("name", "empty"));
    }
    let mut hash_keys = Vec::new();
    let mut virtual_hosts = Vec::new();
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vpath = format!("virtual_hosts[{i}]");
        if vh.domains.is_empty() {
            return Err(scope.error(format!("{vpath}.domains"), "empty"));
        }
        let mut routes: Vec<(Option<f64>, Route)> = Vec::new();
        for (j, r) in vh.routes.iter().enumerate() {
            let group = meta::field(r.metadata.as_ref(), MESH, "route").and_then(proto::as_number);
            let route = route_from_xds(
                r,
                &format!("{vpath}.routes[{j}]"),
                &mut scope,
                &mut hash_keys,
            )?;
            match routes.last_mut() {
                Some((Some(g), last)) if group == Some(*g) => last.matches.extend(route.matches),
                _ => routes.push((group, route)),
            }
        }
        let routes = routes
            .into_iter()
            .map(|(_, mut r)| {
                if r.matches.len() == 1 && r.matches[0] == RouteMatch::default() {
                    r.matches.clear();
                }
                r
            })
            .collect();
        let mut residual = vh.clone();
        residual.name.clear();
        residual.domains.clear();
        residual.routes.clear();
        scope.unsupported(&vpath, &residual);
        virtual_hosts.push(VirtualHost {
            name: vh.name.clone(),
            domains: vh.domains.clone(),
            routes,
        });
    }
    let mut residual = rc.clone();
    residual.name.clear();
    residual.virtual_hosts.clear();
    residual.validate_clusters = None;
    scope.unsupported("", &residual);
    Ok(DecodedRouteConfiguration {
        name: rc.name.clone(),
        virtual_hosts,
        hash_keys,
        warnings: scope.warnings,
    })
}
