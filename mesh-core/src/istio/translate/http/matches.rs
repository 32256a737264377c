//! Match blocks (`http[].match[]`), evaluated against this workload where Istio evaluates them
//! against the calling proxy (`sourceLabels`, `sourceNamespace`, `gateways`).

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources::{self as r, labels_match};
use super::super::traffic_policy::port_number;
use crate::BuildContext;
use crate::model::{HeaderMatch, QueryMatch, Regex, RouteMatch, StringMatch};

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
pub(super) fn compile_match(
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
