//! Delegate VirtualServices: a root's `http[].delegate` entry replaced by the delegate's routes,
//! merged as istiod's `mergeVirtualServices` (pilot/pkg/model/virtualservice_controller.go) and
//! `MergeHTTPRoutes` (pilot/pkg/model/virtualservice.go) do.
//!
//! Each delegate route inherits what it leaves unset from the root entry (rewrite, timeout,
//! retries, fault, mirrors, headers, …); its match blocks are merged with the root's, a block
//! that conflicts with every root block (`hasConflict`) dropping the whole delegate route. Short
//! hosts resolve in the namespace of the resource that wrote them, so destinations are resolved
//! before merging. A delegate must be exported to the root's namespace.

use super::super::names;
use super::super::resources as r;
use crate::MeshSettings;

/// Resolves the destination hosts of `route` in `namespace` (`ResolveVirtualServiceShortnames`).
pub(crate) fn resolve_hosts(route: &mut r::HttpRoute, namespace: &str, settings: &MeshSettings) {
    let resolve = |d: &mut Option<r::Destination>| {
        if let Some(h) = d.as_mut().and_then(|d| d.host.as_mut())
            && !h.is_empty()
        {
            *h = names::resolve_host(h, namespace, settings);
        }
    };
    for dest in route.route.iter_mut().flatten() {
        resolve(&mut dest.destination);
    }
    resolve(&mut route.mirror);
    for m in route.mirrors.iter_mut().flatten() {
        resolve(&mut m.destination);
    }
}

/// The delegate's routes merged under `root` (`MergeHTTPRoutes`); conflicting ones are dropped.
pub(crate) fn merge_routes(root: &r::HttpRoute, delegate: &[r::HttpRoute]) -> Vec<r::HttpRoute> {
    delegate
        .iter()
        .filter_map(|d| merge_route(root, d.clone()))
        .collect()
}

fn inherit<T: Clone>(leaf: &mut Option<T>, root: &Option<T>) {
    if leaf.is_none() {
        leaf.clone_from(root);
    }
}

fn joined_name(root: &Option<String>, leaf: &Option<String>) -> Option<String> {
    match (root.as_deref().filter(|n| !n.is_empty()), leaf.as_deref()) {
        (r, None | Some("")) => r.map(str::to_owned),
        (Some(r), Some(l)) => Some(format!("{r}-{l}")),
        (None, Some(l)) => Some(l.to_owned()),
    }
}

fn merge_route(root: &r::HttpRoute, mut leaf: r::HttpRoute) -> Option<r::HttpRoute> {
    leaf.matches = Some(merge_matches(
        root.matches.as_deref().unwrap_or_default(),
        leaf.matches.as_deref().unwrap_or_default(),
    )?);
    leaf.name = joined_name(&root.name, &leaf.name);
    inherit(&mut leaf.rewrite, &root.rewrite);
    inherit(&mut leaf.direct_response, &root.direct_response);
    inherit(&mut leaf.timeout, &root.timeout);
    inherit(&mut leaf.retries, &root.retries);
    inherit(&mut leaf.fault, &root.fault);
    inherit(&mut leaf.mirror, &root.mirror);
    inherit(&mut leaf.mirror_percent, &root.mirror_percent);
    inherit(&mut leaf.mirror_percentage, &root.mirror_percentage);
    inherit(&mut leaf.cors_policy, &root.cors_policy);
    inherit(&mut leaf.mirrors, &root.mirrors);
    inherit(&mut leaf.headers, &root.headers);
    leaf.delegate = None;
    // What Envoy gets when several actions are set (route.go TranslateRoute): redirect, else
    // direct response, else the destinations.
    if leaf.redirect.is_some() {
        leaf.direct_response = None;
        leaf.route = None;
    } else if leaf.direct_response.is_some() {
        leaf.route = None;
    }
    Some(leaf)
}

/// `mergeHTTPMatchRequests`: every delegate block must merge with at least one root block.
fn merge_matches(
    root: &[r::HttpMatchRequest],
    leaf: &[r::HttpMatchRequest],
) -> Option<Vec<r::HttpMatchRequest>> {
    if root.is_empty() {
        return Some(leaf.to_vec());
    }
    if leaf.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for sub in leaf {
        let before = out.len();
        for rm in root {
            if !has_conflict(rm, sub) {
                out.push(merge_match(rm, sub));
            }
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_map<V: Clone>(
    root: &Option<std::collections::BTreeMap<String, V>>,
    leaf: &Option<std::collections::BTreeMap<String, V>>,
) -> Option<std::collections::BTreeMap<String, V>> {
    match (root, leaf) {
        (None, None) => None,
        _ => {
            let mut out = root.clone().unwrap_or_default();
            out.extend(leaf.clone().unwrap_or_default());
            Some(out)
        }
    }
}

fn merge_match(root: &r::HttpMatchRequest, leaf: &r::HttpMatchRequest) -> r::HttpMatchRequest {
    let mut out = leaf.clone();
    out.name = joined_name(&root.name, &leaf.name);
    inherit(&mut out.uri, &root.uri);
    inherit(&mut out.scheme, &root.scheme);
    inherit(&mut out.method, &root.method);
    inherit(&mut out.authority, &root.authority);
    out.headers = merge_map(&root.headers, &leaf.headers);
    out.without_headers = merge_map(&root.without_headers, &leaf.without_headers);
    out.query_params = merge_map(&root.query_params, &leaf.query_params);
    if out.port.unwrap_or(0) == 0 {
        out.port = root.port;
    }
    out.source_labels = merge_map(&root.source_labels, &leaf.source_labels);
    if out
        .source_namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        out.source_namespace.clone_from(&root.source_namespace);
    }
    if out.gateways.as_ref().is_none_or(Vec::is_empty) {
        out.gateways.clone_from(&root.gateways);
    }
    inherit(&mut out.stat_prefix, &root.stat_prefix);
    out
}

fn has_conflict(root: &r::HttpMatchRequest, leaf: &r::HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(a, b)| string_conflict(a.as_ref(), b.as_ref()))
    {
        return true;
    }
    // `scheme` is not implemented by mesh (warned); istiod compares it like the others.
    let map_conflict =
        |a: &Option<std::collections::BTreeMap<String, r::StringMatchSpec>>,
         b: &Option<std::collections::BTreeMap<String, r::StringMatchSpec>>| {
            b.iter()
                .flatten()
                .any(|(k, leaf)| string_conflict(a.as_ref().and_then(|a| a.get(k)), Some(leaf)))
        };
    if map_conflict(&root.headers, &leaf.headers)
        || map_conflict(&root.without_headers, &leaf.without_headers)
        || map_conflict(&root.query_params, &leaf.query_params)
    {
        return true;
    }
    if root.ignore_uri_case.unwrap_or(false) != leaf.ignore_uri_case.unwrap_or(false) {
        return true;
    }
    let (rp, lp) = (root.port.unwrap_or(0), leaf.port.unwrap_or(0));
    if rp > 0 && lp > 0 && rp != lp {
        return true;
    }
    if let Some(ns) = root.source_namespace.as_deref().filter(|n| !n.is_empty())
        && leaf.source_namespace.as_deref() != Some(ns)
    {
        return true;
    }
    for (k, v) in leaf.source_labels.iter().flatten() {
        if root
            .source_labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|rv| rv != v)
        {
            return true;
        }
    }
    let (rg, lg) = (
        root.gateways.as_deref().unwrap_or_default(),
        leaf.gateways.as_deref().unwrap_or_default(),
    );
    if !rg.is_empty()
        && !lg.is_empty()
        && (rg.len() < lg.len() || lg.iter().any(|g| !rg.contains(g)))
    {
        return true;
    }
    false
}

/// `stringMatchConflict`: whether `leaf` is not within `root`.
fn string_conflict(root: Option<&r::StringMatchSpec>, leaf: Option<&r::StringMatchSpec>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    let set = |s: &Option<String>| s.as_deref().is_some_and(|v| !v.is_empty());
    let any = |m: &r::StringMatchSpec| set(&m.regex) || set(&m.prefix) || set(&m.exact);
    if set(&root.regex) && any(leaf) {
        return true;
    }
    if set(&leaf.regex) && any(root) {
        return true;
    }
    if let Some(exact) = root.exact.as_deref().filter(|e| !e.is_empty()) {
        return set(&leaf.prefix) || leaf.exact.as_deref().unwrap_or_default() != exact;
    }
    if let Some(prefix) = root.prefix.as_deref().filter(|p| !p.is_empty()) {
        if let Some(lp) = leaf.prefix.as_deref().filter(|p| !p.is_empty()) {
            return !lp.starts_with(prefix);
        }
        if let Some(le) = leaf.exact.as_deref().filter(|e| !e.is_empty()) {
            return !le.starts_with(prefix);
        }
    }
    true
}
