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
            // `regex: "*"` is not a regex but Istio's "present" match, as an empty match is
            // (pilot/pkg/networking/core/route canBeConvertedToPresentMatch): under
            // withoutHeaders it means "absent".
            let present =
                sm.regex.as_deref() == Some("*") && sm.exact.is_none() && sm.prefix.is_none();
            if present {
                out.headers.push(HeaderMatch {
                    name: name.to_ascii_lowercase(),
                    value: None,
                    invert,
                });
            } else if let Some(value) = string_match(sm, &hf.key(name), report) {
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
    for_this_workload(m, ctx).then_some(out)
}

/// Whether a match block applies to this workload, as istiod's `sourceMatchHTTP`
/// (pilot/pkg/networking/core/route/route.go) decides for a sidecar: when the block names
/// `gateways`, only they count (it applies when one is `mesh`; `sourceLabels` and
/// `sourceNamespace` are then ignored); otherwise `sourceLabels` must be a subset of the
/// workload's labels and `sourceNamespace`, when set, its namespace.
fn for_this_workload(m: &r::HttpMatchRequest, ctx: &BuildContext) -> bool {
    match m.gateways.as_deref() {
        Some(gateways) if !gateways.is_empty() => gateways.iter().any(|g| g == "mesh"),
        _ => {
            m.source_labels
                .as_ref()
                .is_none_or(|l| labels_match(l, &ctx.workload.labels))
                && m.source_namespace
                    .as_deref()
                    .is_none_or(|ns| ns.is_empty() || ns == ctx.workload.namespace)
        }
    }
}
