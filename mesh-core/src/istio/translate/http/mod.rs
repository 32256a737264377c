//! One `http[]` entry of a VirtualService, validated into route parts whose destinations are
//! still hosts (the route builder turns them into cluster names per port).
//!
//! One file per part: match blocks, the action (destinations and weights, redirect, direct
//! response) with header operations, faults, retries, mirrors.

mod action;
mod faults;
mod matches;
mod mirrors;
mod retries;

use std::time::Duration;

use super::super::diag::{Field, Reporter};
use super::super::resources as r;
use super::parse_duration_at;
use crate::BuildContext;
use crate::model::{FaultPolicy, HeaderMutation, Percent, RetryPolicy, Rewrite, RouteMatch};

pub(crate) use retries::default_retry;

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

/// Validates one `http[]` entry of a VirtualService in `namespace`.
pub(crate) fn compile_route(
    route: &r::HttpRoute,
    index: usize,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<CompiledRoute> {
    let f = Field::new("spec").key("http").index(index);
    report.unimplemented(&route.cors_policy, &f.key("corsPolicy"));
    let had_matches = route.matches.as_ref().is_some_and(|m| !m.is_empty());
    let mut matches = Vec::new();
    for (i, m) in route.matches.iter().flatten().enumerate() {
        if let Some(m) = matches::compile_match(m, &f.key("match").index(i), ctx, report) {
            matches.push(m);
        }
    }
    let (request_headers, response_headers) =
        action::headers(route.headers.as_ref(), &f.key("headers"), report);
    let timeout = route
        .timeout
        .as_deref()
        .and_then(|t| parse_duration_at(t, &f.key("timeout"), report))
        .filter(|d| !d.is_zero());
    let retry = match &route.retries {
        None => Some(default_retry()),
        Some(r) => retries::retries(r, &f.key("retries"), report),
    };
    let fault = route
        .fault
        .as_ref()
        .and_then(|x| faults::fault(x, &f.key("fault"), report));
    let mirrors = mirrors::mirrors(route, &f, namespace, ctx, report);
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
    let action = action::action(route, &f, namespace, ctx, report)?;
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
