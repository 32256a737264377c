//! Checks across resources that istiod accepts but `istioctl analyze` (or istiod's validation
//! warnings) flags, reported as warnings carrying Istio's message code and name so they read
//! like, and can be searched like, Istio's own:
//!
//! - `IST0109 ConflictingMeshGatewayVirtualServiceHosts`: two mesh VirtualServices claim the
//!   same host in a scope, exportTo taken into account (`pkg/config/analysis/analyzers/
//!   virtualservice/conflictingmeshgatewayhosts.go`).
//! - `IST0112 VirtualServiceDestinationPortSelectorRequired`: a destination without a port on a
//!   service with more than one port (`destinationhosts.go` `checkServiceEntryPorts`).
//! - `IST0130 VirtualServiceUnreachableRule` and `IST0131 VirtualServiceIneffectiveMatch`: HTTP
//!   rules after a catch-all rule, and matches equal to an earlier one
//!   (`pkg/config/validation/validation.go` `analyzeUnreachableHTTPRules`), and matches whose
//!   URI prefix an earlier match covers (its prefix-overlap check, in `overlap`).
//!
//! They run on the documents as read (before translation), over every namespace, as the
//! analyzers do: what a resource *says*, not what one workload sees.

mod overlap;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::diag::{Diagnostics, Field};
use super::documents::{Kind, RawResource};
use super::names;
use crate::MeshSettings;

/// Runs every check on the resources read.
pub(crate) fn analyze(raw: &[RawResource], settings: &MeshSettings, diags: &mut Diagnostics) {
    let ports = service_ports(raw, settings);
    let vss: Vec<&RawResource> = raw
        .iter()
        .filter(|r| r.kind == Kind::VirtualService)
        .collect();
    for vs in &vss {
        unreachable_rules(vs, diags);
        port_selectors(vs, &ports, settings, diags);
    }
    conflicting_hosts(&vss, settings, diags);
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Service hosts (FQDN, or wildcard) and their port numbers, from ServiceEntries and
/// Kubernetes Services in every namespace.
fn service_ports(raw: &[RawResource], settings: &MeshSettings) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in raw {
        let ns = r.resource.namespace.as_str();
        match r.kind {
            Kind::ServiceEntry => {
                let ports: Vec<i64> = r
                    .spec
                    .get("ports")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.get("number").and_then(Value::as_i64))
                            .collect()
                    })
                    .unwrap_or_default();
                for h in strings(r.spec.get("hosts")) {
                    let host = names::resolve_host(h, ns, settings);
                    out.entry(host).or_insert_with(|| ports.clone());
                }
            }
            Kind::KubeService => {
                let ports: Vec<i64> = r
                    .spec
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.get("port").and_then(Value::as_i64))
                            .collect()
                    })
                    .unwrap_or_default();
                let host = format!(
                    "{}.{ns}.svc.{}",
                    r.resource.name.to_ascii_lowercase(),
                    settings.domain_suffix
                );
                // A Kubernetes Service takes precedence over a ServiceEntry.
                out.insert(host, ports);
            }
            _ => {}
        }
    }
    out
}

/// `"name"` when the rule or match has a name, else `#index` (`validation.go` `routeName`).
fn rule_name(value: &Value, index: usize) -> String {
    match value.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => format!("{n:?}"),
        _ => format!("#{index}"),
    }
}

/// A match as a canonical string without its name (`validation.go` `asJSON`).
fn match_key(m: &Value) -> String {
    fn canonical(v: &Value) -> Value {
        match v {
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    let mut m = canonical(m);
    if let Some(o) = m.as_object_mut() {
        o.remove("name");
    }
    let mut sorted = String::new();
    write_sorted(&m, &mut sorted);
    sorted
}

/// Writes `v` with object keys in sorted order, whatever the map's own order.
fn write_sorted(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            let keys: BTreeSet<&String> = o.keys().collect();
            out.push('{');
            for k in keys {
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_sorted(&o[k.as_str()], out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for x in a {
                write_sorted(x, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// IST0130 / IST0131, as `validation.go` `analyzeUnreachableHTTPRules` (duplicate part).
fn unreachable_rules(vs: &RawResource, diags: &mut Diagnostics) {
    let Some(http) = vs.spec.get("http").and_then(Value::as_array) else {
        return;
    };
    let mut report = diags.at(&vs.origin, &vs.resource);
    let f = Field::new("spec").key("http");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut catch_all: Option<usize> = None;
    let mut prefixes = Vec::new();
    for (i, route) in http.iter().enumerate() {
        let rf = f.index(i);
        let matches = route
            .get("match")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let unreachable = |reason: &str| {
            format!(
                "IST0130 VirtualServiceUnreachableRule: VirtualService rule {} not used ({reason})",
                rule_name(route, i)
            )
        };
        if matches.is_empty() {
            if catch_all.is_some() {
                report.warn(&rf, unreachable("only the last rule can have no matches"));
            }
            catch_all = Some(i);
            continue;
        }
        let mut duplicates = 0;
        for (j, m) in matches.iter().enumerate() {
            if catch_all.is_some() {
                report.warn(
                    &rf.key("match").index(j),
                    unreachable("route without matches defined before"),
                );
                continue;
            }
            let key = match_key(m);
            if let Some(&first) = seen.get(&key) {
                report.warn(
                    &rf.key("match").index(j),
                    format!(
                        "IST0131 VirtualServiceIneffectiveMatch: VirtualService rule {} match {} \
                         is not used (duplicate/overlapping match in rule {})",
                        rule_name(route, i),
                        rule_name(m, j),
                        rule_name(&http[first], first)
                    ),
                );
                duplicates += 1;
                continue;
            }
            seen.insert(key, i);
            prefixes.extend(overlap::PrefixMatch::new(
                m,
                (i, rule_name(route, i)),
                (j, rule_name(m, j)),
            ));
        }
        if duplicates == matches.len() {
            report.warn(&rf, unreachable("all matches used by prior rules"));
        }
    }
    for (later, earlier) in overlap::covered(&prefixes) {
        report.warn(
            &f.index(later.rule.0).key("match").index(later.matched.0),
            format!(
                "IST0131 VirtualServiceIneffectiveMatch: VirtualService rule {} match {} is not \
                 used (duplicate/overlapping match in rule {} on {})",
                later.rule.1,
                later.describe(),
                earlier.describe(),
                earlier.rule.1
            ),
        );
    }
}

/// IST0112, as `destinationhosts.go` `checkServiceEntryPorts`: route, mirror and mirrors
/// destinations.
fn port_selectors(
    vs: &RawResource,
    ports: &BTreeMap<String, Vec<i64>>,
    settings: &MeshSettings,
    diags: &mut Diagnostics,
) {
    let Some(http) = vs.spec.get("http").and_then(Value::as_array) else {
        return;
    };
    let ns = vs.resource.namespace.as_str();
    let mut report = diags.at(&vs.origin, &vs.resource);
    let f = Field::new("spec").key("http");
    for (i, route) in http.iter().enumerate() {
        let rf = f.index(i);
        let mut dests: Vec<(Field, &Value)> = Vec::new();
        for (j, d) in route
            .get("route")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(d) = d.get("destination") {
                dests.push((rf.key("route").index(j).key("destination"), d));
            }
        }
        if let Some(d) = route.get("mirror") {
            dests.push((rf.key("mirror"), d));
        }
        for (j, m) in route
            .get("mirrors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(d) = m.get("destination") {
                dests.push((rf.key("mirrors").index(j).key("destination"), d));
            }
        }
        for (df, d) in dests {
            if d.get("port").is_some_and(|p| !p.is_null()) {
                continue;
            }
            let Some(written) = d.get("host").and_then(Value::as_str) else {
                continue;
            };
            let host = names::resolve_host(written, ns, settings);
            let service_ports = ports.get(&host).or_else(|| {
                ports
                    .iter()
                    .filter(|(pattern, _)| {
                        pattern.starts_with('*') && names::host_matches(pattern, &host)
                    })
                    .max_by_key(|(pattern, _)| pattern.len())
                    .map(|(_, p)| p)
            });
            if let Some(p) = service_ports.filter(|p| p.len() > 1) {
                let list: Vec<String> = p.iter().map(ToString::to_string).collect();
                report.warn(
                    &df,
                    format!(
                        "IST0112 VirtualServiceDestinationPortSelectorRequired: this \
                         VirtualService routes to a service {written:?} that exposes multiple \
                         ports [{}]. Specifying a port in the destination is required to \
                         disambiguate.",
                        list.join(" ")
                    ),
                );
            }
        }
    }
}

/// IST0109, as `conflictingmeshgatewayhosts.go`: hosts of mesh VirtualServices per exportTo
/// scope; a namespace scope also conflicts with the hosts exported to all namespaces.
fn conflicting_hosts(vss: &[&RawResource], settings: &MeshSettings, diags: &mut Diagnostics) {
    // (scope, host) → the VirtualServices (indices into `vss`).
    let mut scoped: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, vs) in vss.iter().enumerate() {
        let gateways = strings(vs.spec.get("gateways"));
        if !gateways.is_empty() && !gateways.contains(&"mesh") {
            continue;
        }
        let ns = vs.resource.namespace.as_str();
        let export_to = strings(vs.spec.get("exportTo"));
        let scopes: BTreeSet<String> = if export_to.is_empty() || export_to.contains(&"*") {
            BTreeSet::from(["*".to_owned()])
        } else {
            export_to
                .iter()
                .map(|e| {
                    if *e == "." {
                        ns.to_owned()
                    } else {
                        (*e).to_owned()
                    }
                })
                .collect()
        };
        for scope in scopes {
            for h in strings(vs.spec.get("hosts")) {
                let host = names::resolve_host(h, ns, settings);
                scoped.entry((scope.clone(), host)).or_default().push(i);
            }
        }
    }
    let mut reported = vec![false; vss.len()];
    for ((scope, host), list) in &scoped {
        let mut list = list.clone();
        if scope != "*" {
            for ((other_scope, other_host), more) in &scoped {
                if other_scope == "*"
                    && (names::host_matches(other_host, host)
                        || names::host_matches(host, other_host))
                {
                    list.extend(more);
                }
            }
        }
        if list.len() < 2 {
            continue;
        }
        let mut names: Vec<String> = list
            .iter()
            .map(|&i| format!("{}/{}", vss[i].resource.namespace, vss[i].resource.name))
            .collect();
        names.sort();
        names.dedup();
        if names.len() < 2 {
            continue;
        }
        let names = names.join(",");
        for &i in &list {
            if std::mem::replace(&mut reported[i], true) {
                continue;
            }
            diags.at(&vss[i].origin, &vss[i].resource).warn(
                "metadata.name",
                format!(
                    "IST0109 ConflictingMeshGatewayVirtualServiceHosts: the VirtualServices \
                     {names} associated with mesh gateway define the same host {scope}/{host} \
                     which can lead to undefined behavior. This can be fixed by merging the \
                     conflicting VirtualServices into a single resource."
                ),
            );
        }
    }
}
