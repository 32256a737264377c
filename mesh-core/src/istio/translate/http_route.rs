//! One `http[]` entry of a VirtualService: validated into route parts whose destinations are
//! still hosts (the route builder turns them into cluster names per port).

use std::time::Duration;

use super::super::diag::{Field, Reporter};
use super::super::names;
use super::super::resources::{self as r, labels_match};
use super::parse_duration_at;
use super::traffic_policy::port_number;
use crate::BuildContext;
use crate::model::{
    AbortStatus, FaultAbort, FaultDelay, FaultPolicy, HeaderMatch, HeaderMutation, Percent,
    QueryMatch, Regex, RetryOn, RetryPolicy, Rewrite, RouteMatch, StringMatch,
};

/// A destination (route or mirror) before ports are resolved.
#[derive(Clone, Debug)]
pub(crate) struct DestSpec {
    pub(crate) host: String,
    pub(crate) subset: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) field: Field,
}

/// A weighted route destination.
#[derive(Clone, Debug)]
pub(crate) struct WeightedDest {
    pub(crate) dest: DestSpec,
    pub(crate) weight: u32,
    pub(crate) request_headers: HeaderMutation,
    pub(crate) response_headers: HeaderMutation,
}

/// What the route does.
#[derive(Clone, Debug)]
pub(crate) enum ActionSpec {
    Forward(Vec<WeightedDest>),
    Direct {
        status: u16,
        body: Option<String>,
    },
    Redirect {
        path: Option<String>,
        authority: Option<String>,
        status: u16,
    },
}

/// A mirror before ports are resolved.
#[derive(Clone, Debug)]
pub(crate) struct MirrorSpec {
    pub(crate) dest: DestSpec,
    pub(crate) percentage: Percent,
}

/// A validated `http[]` entry.
#[derive(Clone, Debug)]
pub(crate) struct CompiledRoute {
    pub(crate) index: usize,
    pub(crate) name: Option<String>,
    /// Match blocks that can match this workload.
    pub(crate) matches: Vec<RouteMatch>,
    /// Whether the entry had match blocks at all (if all were dropped it never matches).
    pub(crate) had_matches: bool,
    pub(crate) action: ActionSpec,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) fault: Option<FaultPolicy>,
    pub(crate) mirrors: Vec<MirrorSpec>,
    pub(crate) request_headers: HeaderMutation,
    pub(crate) response_headers: HeaderMutation,
    pub(crate) rewrite: Option<Rewrite>,
}

/// Istio's default retry policy for routes without `retries`: 2 attempts on connect failures,
/// refused streams, gRPC UNAVAILABLE and CANCELLED, and HTTP 503; backoff 25 ms to 250 ms.
pub(crate) fn default_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        per_try_timeout: None,
        retry_on: default_retry_on(),
        retriable_status_codes: vec![503],
        backoff_base: Duration::from_millis(25),
        backoff_max: Duration::from_millis(250),
    }
}

fn default_retry_on() -> RetryOn {
    RetryOn {
        connect_failure: true,
        refused_stream: true,
        grpc_unavailable: true,
        grpc_cancelled: true,
        retriable_status_codes: true,
        ..RetryOn::default()
    }
}

/// Validates one `http[]` entry of a VirtualService in `namespace`.
pub(crate) fn compile_route(
    route: &r::HttpRoute,
    index: usize,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<CompiledRoute> {
    let f = Field::new("spec").key("http").index(index);
    report.unimplemented(&route.delegate, &f.key("delegate"));
    report.unimplemented(&route.cors_policy, &f.key("corsPolicy"));
    let had_matches = route.matches.as_ref().is_some_and(|m| !m.is_empty());
    let mut matches = Vec::new();
    for (i, m) in route.matches.iter().flatten().enumerate() {
        if let Some(m) = compile_match(m, &f.key("match").index(i), ctx, report) {
            matches.push(m);
        }
    }
    let (request_headers, response_headers) =
        headers(route.headers.as_ref(), &f.key("headers"), report);
    let timeout = route
        .timeout
        .as_deref()
        .and_then(|t| parse_duration_at(t, &f.key("timeout"), report))
        .filter(|d| !d.is_zero());
    let retry = match &route.retries {
        None => Some(default_retry()),
        Some(r) => retries(r, &f.key("retries"), report),
    };
    let fault = route
        .fault
        .as_ref()
        .and_then(|x| fault(x, &f.key("fault"), report));
    let mirrors = mirrors(route, &f, namespace, ctx, report);
    let rewrite = route.rewrite.as_ref().map(|rw| {
        report.unimplemented(
            &rw.uri_regex_rewrite,
            &f.key("rewrite").key("uriRegexRewrite"),
        );
        Rewrite {
            uri: rw.uri.clone(),
            authority: rw.authority.clone(),
        }
    });
    let action = action(route, &f, namespace, ctx, report)?;
    if rewrite.is_some() && !matches!(action, ActionSpec::Forward(_)) {
        report.error(
            &f.key("rewrite"),
            "rewrite applies only to routes (not redirect or directResponse)",
        );
    }
    Some(CompiledRoute {
        index,
        name: route.name.clone(),
        matches,
        had_matches,
        action,
        timeout,
        retry,
        fault,
        mirrors,
        request_headers,
        response_headers,
        rewrite: rewrite.filter(|r| r.uri.is_some() || r.authority.is_some()),
    })
}

fn string_match(
    m: &r::StringMatchSpec,
    field: &Field,
    report: &mut Reporter<'_>,
) -> Option<Option<StringMatch>> {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        report.error(field, "only one of exact, prefix, regex may be set");
        return None;
    }
    if let Some(e) = &m.exact {
        return Some(Some(StringMatch::Exact(e.clone())));
    }
    if let Some(p) = &m.prefix {
        return Some(Some(StringMatch::Prefix(p.clone())));
    }
    if let Some(re) = &m.regex {
        return match Regex::new(re) {
            Ok(re) => Some(Some(StringMatch::Regex(re))),
            Err(e) => {
                report.error(
                    &field.key("regex"),
                    format!("invalid regex: {}", first_line(&e.to_string())),
                );
                None
            }
        };
    }
    Some(None)
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
}

fn required_match(
    m: &Option<r::StringMatchSpec>,
    field: &Field,
    report: &mut Reporter<'_>,
) -> Option<StringMatch> {
    let m = m.as_ref()?;
    match string_match(m, field, report)? {
        Some(sm) => Some(sm),
        None => {
            report.error(field, "one of exact, prefix, regex is required");
            None
        }
    }
}

/// A match block, or `None` when it cannot match this workload (or is invalid).
fn compile_match(
    m: &r::HttpMatchRequest,
    f: &Field,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<RouteMatch> {
    report.unimplemented(&m.scheme, &f.key("scheme"));
    report.unimplemented(&m.stat_prefix, &f.key("statPrefix"));
    let mut out = RouteMatch {
        name: m.name.clone(),
        path: required_match(&m.uri, &f.key("uri"), report),
        ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
        method: required_match(&m.method, &f.key("method"), report),
        authority: required_match(&m.authority, &f.key("authority"), report),
        ..RouteMatch::default()
    };
    for (key, invert) in [(&m.headers, false), (&m.without_headers, true)] {
        let hf = f.key(if invert { "withoutHeaders" } else { "headers" });
        for (name, sm) in key.iter().flatten() {
            if name.is_empty() {
                report.error(&hf, "header name must not be empty");
                continue;
            }
            if let Some(value) = string_match(sm, &hf.key(name), report) {
                out.headers.push(HeaderMatch {
                    name: name.to_ascii_lowercase(),
                    value,
                    invert,
                });
            }
        }
    }
    for (name, sm) in m.query_params.iter().flatten() {
        if let Some(value) = string_match(sm, &f.key("queryParams").key(name), report) {
            out.query.push(QueryMatch {
                name: name.clone(),
                value,
            });
        }
    }
    if let Some(p) = m.port {
        out.port = port_number(Some(p), &f.key("port"), report);
    }
    let for_this_workload = m
        .source_labels
        .as_ref()
        .is_none_or(|l| labels_match(l, &ctx.workload.labels))
        && m.source_namespace
            .as_ref()
            .is_none_or(|ns| *ns == ctx.workload.namespace)
        && m.gateways
            .as_ref()
            .is_none_or(|g| g.is_empty() || g.iter().any(|g| g == "mesh"));
    for_this_workload.then_some(out)
}

fn mutation(ops: Option<&r::HeaderOperations>) -> HeaderMutation {
    let Some(ops) = ops else {
        return HeaderMutation::default();
    };
    HeaderMutation {
        set: ops
            .set
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        add: ops
            .add
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        remove: ops.remove.iter().map(|k| k.to_ascii_lowercase()).collect(),
    }
}

fn headers(
    h: Option<&r::Headers>,
    field: &Field,
    report: &mut Reporter<'_>,
) -> (HeaderMutation, HeaderMutation) {
    let Some(h) = h else {
        return Default::default();
    };
    let req = mutation(h.request.as_ref());
    let resp = mutation(h.response.as_ref());
    for (m, name) in [(&req, "request"), (&resp, "response")] {
        for (k, _) in m.set.iter().chain(&m.add) {
            if k.is_empty() || k.starts_with(':') || http_name_invalid(k) {
                report.error(&field.key(name), format!("invalid header name {k:?}"));
            }
        }
    }
    (req, resp)
}

fn http_name_invalid(name: &str) -> bool {
    !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn destination(
    d: &Option<r::Destination>,
    field: &Field,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<DestSpec> {
    let Some(d) = d else {
        report.error(field, "destination is required");
        return None;
    };
    let host = match d.host.as_deref() {
        None | Some("") => {
            report.error(&field.key("host"), "host is required");
            return None;
        }
        Some(h) => {
            if let Err(e) = names::validate_host(h) {
                report.error(&field.key("host"), e);
                return None;
            }
            if h.contains('*') {
                report.error(
                    &field.key("host"),
                    "a destination host must not be a wildcard",
                );
                return None;
            }
            names::resolve_host(h, namespace, &ctx.settings)
        }
    };
    let port = match &d.port {
        Some(p) => Some(port_number(
            p.number,
            &field.key("port").key("number"),
            report,
        )?),
        None => None,
    };
    Some(DestSpec {
        host,
        subset: d.subset.clone().filter(|s| !s.is_empty()),
        port,
        field: field.clone(),
    })
}

fn action(
    route: &r::HttpRoute,
    f: &Field,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<ActionSpec> {
    let given = [
        route.route.is_some(),
        route.redirect.is_some(),
        route.direct_response.is_some(),
    ];
    match given {
        [false, false, false] => {
            report.error(f, "one of route, redirect, directResponse is required");
            None
        }
        [true, false, false] => forward(
            route.route.as_deref().unwrap_or_default(),
            f,
            namespace,
            ctx,
            report,
        ),
        [false, true, false] => {
            let rd = route.redirect.as_ref()?;
            let rf = f.key("redirect");
            report.unimplemented(&rd.port, &rf.key("port"));
            report.unimplemented(&rd.derive_port, &rf.key("derivePort"));
            report.unimplemented(&rd.scheme, &rf.key("scheme"));
            let status = match rd.redirect_code {
                None | Some(0) => 301,
                Some(c @ (301 | 302 | 303 | 307 | 308)) => c as u16,
                Some(c) => {
                    report.error(
                        &rf.key("redirectCode"),
                        format!("{c} is not a redirect status (301, 302, 303, 307, 308)"),
                    );
                    return None;
                }
            };
            Some(ActionSpec::Redirect {
                path: rd.uri.clone(),
                authority: rd.authority.clone(),
                status,
            })
        }
        [false, false, true] => {
            let dr = route.direct_response.as_ref()?;
            let df = f.key("directResponse");
            let status = match dr.status {
                Some(s @ 200..=599) => s as u16,
                Some(s) => {
                    report.error(&df.key("status"), format!("status {s} is outside 200..599"));
                    return None;
                }
                None => {
                    report.error(&df.key("status"), "status is required");
                    return None;
                }
            };
            if let Some(b) = &dr.body {
                report.unimplemented(&b.bytes, &df.key("body").key("bytes"));
            }
            Some(ActionSpec::Direct {
                status,
                body: dr.body.as_ref().and_then(|b| b.string.clone()),
            })
        }
        _ => {
            report.error(
                f,
                "route, redirect and directResponse are mutually exclusive",
            );
            None
        }
    }
}

fn forward(
    dests: &[r::HttpRouteDestination],
    f: &Field,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<ActionSpec> {
    if dests.is_empty() {
        report.error(&f.key("route"), "at least one destination is required");
        return None;
    }
    let mut out = Vec::new();
    let mut total: i64 = 0;
    let mut ok = true;
    for (i, d) in dests.iter().enumerate() {
        let df = f.key("route").index(i);
        let weight = match d.weight {
            None if dests.len() == 1 => 100,
            None => {
                report.error(
                    &df.key("weight"),
                    "weight is required when a route has several destinations",
                );
                ok = false;
                0
            }
            Some(w @ 0..=100) => w,
            Some(w) => {
                report.error(&df.key("weight"), format!("weight {w} is outside 0..100"));
                ok = false;
                0
            }
        };
        total += weight;
        let (request_headers, response_headers) =
            headers(d.headers.as_ref(), &df.key("headers"), report);
        let Some(dest) = destination(
            &d.destination,
            &df.key("destination"),
            namespace,
            ctx,
            report,
        ) else {
            ok = false;
            continue;
        };
        out.push(WeightedDest {
            dest,
            // In 0..=100 from the match above.
            weight: weight as u32,
            request_headers,
            response_headers,
        });
    }
    if ok && total != 100 {
        let field = if dests.len() == 1 {
            f.key("route").index(0).key("weight")
        } else {
            f.key("route")
        };
        report.error(&field, format!("weights sum to {total}, expected 100"));
        return None;
    }
    ok.then_some(ActionSpec::Forward(out))
}

/// A percentage at `field.<name>.value`, else the legacy integer at `field.<legacy_name>`, else
/// 100 %.
fn percentage(
    p: &Option<r::Percentage>,
    legacy: Option<i64>,
    field: &Field,
    (name, legacy_name): (&str, &str),
    report: &mut Reporter<'_>,
) -> Option<Percent> {
    if let Some(p) = p {
        let value = p.value.unwrap_or(0.0);
        return match Percent::from_percent(value) {
            Some(p) => Some(p),
            None => {
                report.error(
                    &field.key(name).key("value"),
                    format!("percentage {value} is outside 0..100"),
                );
                None
            }
        };
    }
    if let Some(v) = legacy {
        return match Percent::from_percent(v as f64) {
            Some(p) if (0..=100).contains(&v) => Some(p),
            _ => {
                report.error(
                    &field.key(legacy_name),
                    format!("percentage {v} is outside 0..100"),
                );
                None
            }
        };
    }
    Some(Percent::ALL)
}

fn fault(x: &r::HttpFaultInjection, f: &Field, report: &mut Reporter<'_>) -> Option<FaultPolicy> {
    let delay = match &x.delay {
        None => None,
        Some(d) => {
            let df = f.key("delay");
            report.unimplemented(&d.exponential_delay, &df.key("exponentialDelay"));
            let percentage = percentage(
                &d.percentage,
                d.percent,
                &df,
                ("percentage", "percent"),
                report,
            );
            match d.fixed_delay.as_deref() {
                None => {
                    report.error(&df.key("fixedDelay"), "fixedDelay is required");
                    None
                }
                Some(t) => {
                    let fixed_delay = parse_duration_at(t, &df.key("fixedDelay"), report);
                    if fixed_delay.is_some_and(|d| d < Duration::from_millis(1)) {
                        report.error(&df.key("fixedDelay"), "must be at least 1ms");
                    }
                    Some(FaultDelay {
                        fixed_delay: fixed_delay?,
                        percentage: percentage?,
                    })
                }
            }
        }
    };
    let abort = match &x.abort {
        None => None,
        Some(a) => {
            let af = f.key("abort");
            report.unimplemented(&a.http2_error, &af.key("http2Error"));
            let percentage = percentage(&a.percentage, None, &af, ("percentage", ""), report);
            let status = match (a.http_status, a.grpc_status.as_deref()) {
                (Some(_), Some(_)) => {
                    report.error(&af, "httpStatus and grpcStatus are mutually exclusive");
                    None
                }
                (Some(s @ 200..=599), None) => Some(AbortStatus::Http(s as u16)),
                (Some(s), None) => {
                    report.error(
                        &af.key("httpStatus"),
                        format!("status {s} is outside 200..599"),
                    );
                    None
                }
                (None, Some(name)) => match grpc_code(name) {
                    Some(c) => Some(AbortStatus::Grpc(c)),
                    None => {
                        report.error(
                            &af.key("grpcStatus"),
                            format!("unknown gRPC status {name:?}"),
                        );
                        None
                    }
                },
                (None, None) => {
                    if a.http2_error.is_none() {
                        report.error(&af, "one of httpStatus, grpcStatus is required");
                    }
                    None
                }
            };
            status
                .zip(percentage)
                .map(|(status, percentage)| FaultAbort { status, percentage })
        }
    };
    (delay.is_some() || abort.is_some()).then_some(FaultPolicy { delay, abort })
}

/// gRPC status codes by name (and as numbers).
fn grpc_code(name: &str) -> Option<u16> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    let upper = name.to_ascii_uppercase();
    NAMES
        .iter()
        .position(|n| *n == upper)
        .and_then(|i| u16::try_from(i).ok())
        .or_else(|| name.parse::<u16>().ok().filter(|&c| c <= 16))
}

fn retries(rt: &r::HttpRetry, f: &Field, report: &mut Reporter<'_>) -> Option<RetryPolicy> {
    report.unimplemented(&rt.retry_remote_localities, &f.key("retryRemoteLocalities"));
    report.unimplemented(
        &rt.retry_ignore_previous_hosts,
        &f.key("retryIgnorePreviousHosts"),
    );
    let mut policy = default_retry();
    let attempts = match rt.attempts {
        None => 2,
        Some(a) if a < 0 => {
            report.error(&f.key("attempts"), "attempts must not be negative");
            return None;
        }
        Some(a) => u32::try_from(a).unwrap_or(u32::MAX),
    };
    policy.attempts = attempts;
    if let Some(t) = &rt.per_try_timeout {
        let d = parse_duration_at(t, &f.key("perTryTimeout"), report);
        if d.is_some_and(|d| d < Duration::from_millis(1)) {
            report.error(&f.key("perTryTimeout"), "must be at least 1ms");
        }
        policy.per_try_timeout = d;
    }
    if let Some(b) = &rt.backoff
        && let Some(d) = parse_duration_at(b, &f.key("backoff"), report)
    {
        policy.backoff_base = d;
        policy.backoff_max = d * 10;
    }
    if let Some(on) = &rt.retry_on {
        let (retry_on, codes) = retry_on(on, &f.key("retryOn"), report);
        policy.retry_on = retry_on;
        policy.retriable_status_codes = codes;
    }
    (attempts > 0).then_some(policy)
}

fn retry_on(s: &str, field: &Field, report: &mut Reporter<'_>) -> (RetryOn, Vec<u16>) {
    let mut on = RetryOn::default();
    let mut codes = Vec::new();
    for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match token {
            "5xx" => on.server_error = true,
            "gateway-error" => on.gateway_error = true,
            "reset" => on.reset = true,
            "connect-failure" => on.connect_failure = true,
            "refused-stream" => on.refused_stream = true,
            "retriable-4xx" => on.retriable_4xx = true,
            "retriable-status-codes" => on.retriable_status_codes = true,
            "cancelled" => on.grpc_cancelled = true,
            "deadline-exceeded" => on.grpc_deadline_exceeded = true,
            "internal" => on.grpc_internal = true,
            "resource-exhausted" => on.grpc_resource_exhausted = true,
            "unavailable" => on.grpc_unavailable = true,
            "envoy-ratelimited"
            | "retriable-headers"
            | "reset-before-request"
            | "http3-post-connect-failure" => {
                report.warn(
                    field,
                    format!("retry condition {token:?} is not implemented; ignored"),
                );
            }
            code => match code.parse::<u16>() {
                Ok(c @ 100..=599) => {
                    on.retriable_status_codes = true;
                    if !codes.contains(&c) {
                        codes.push(c);
                    }
                }
                _ => report.error(field, format!("unknown retry condition {token:?}")),
            },
        }
    }
    (on, codes)
}

fn mirrors(
    route: &r::HttpRoute,
    f: &Field,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Vec<MirrorSpec> {
    let mut out = Vec::new();
    if route.mirror.is_some() && route.mirrors.is_some() {
        report.error(
            &f.key("mirrors"),
            "mirror and mirrors are mutually exclusive",
        );
        return out;
    }
    if let Some(m) = &route.mirror {
        let percentage = percentage(
            &route.mirror_percentage,
            route.mirror_percent.map(i64::from),
            f,
            ("mirrorPercentage", "mirrorPercent"),
            report,
        );
        if let (Some(dest), Some(percentage)) = (
            destination(&Some(m.clone()), &f.key("mirror"), namespace, ctx, report),
            percentage,
        ) {
            out.push(MirrorSpec { dest, percentage });
        }
    } else if route.mirror_percentage.is_some() || route.mirror_percent.is_some() {
        report.warn(&f.key("mirrorPercentage"), "no mirror is set; ignored");
    }
    for (i, m) in route.mirrors.iter().flatten().enumerate() {
        let mf = f.key("mirrors").index(i);
        let percentage = percentage(&m.percentage, None, &mf, ("percentage", ""), report);
        if let (Some(dest), Some(percentage)) = (
            destination(
                &m.destination,
                &mf.key("destination"),
                namespace,
                ctx,
                report,
            ),
            percentage,
        ) {
            out.push(MirrorSpec { dest, percentage });
        }
    }
    out
}
