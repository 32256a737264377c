//! VirtualServices: validated, delegates merged into their roots, checked against the
//! DestinationRules their destinations name, and indexed by host for this workload.
//!
//! Which VirtualService routes a host follows istiod: only those exported to the workload's
//! namespace count (`exportTo`, default from the mesh settings); they are taken in istiod's
//! order — the namespace's private ones, then ones exported to it by name, then public ones,
//! each group oldest first (`sortConfigByCreationTime`) — and the first to name a host keeps it
//! (later ones are reported). For a service, a VirtualService naming its exact host beats one
//! naming a wildcard that covers it.

use std::collections::{BTreeMap, HashMap};

use super::super::diag::{Diagnostics, Field, Origin, Reporter};
use super::super::names;
use super::super::resources as r;
use super::Item;
use super::delegate;
use super::destination_rule::RuleIndex;
use super::export_to::{self, ExportTo};
use super::http::{self, ActionSpec, CompiledRoute, DestSpec};
use super::order;
use super::services::Service;
use crate::BuildContext;
use crate::config::ResourceRef;

/// A validated VirtualService that applies to the mesh.
#[derive(Debug)]
pub(crate) struct CompiledVs {
    pub(crate) origin: Origin,
    pub(crate) resource: ResourceRef,
    pub(crate) routes: Vec<CompiledRoute>,
}

/// VirtualServices by host.
#[derive(Debug, Default)]
pub(crate) struct VsIndex {
    pub(crate) services: Vec<CompiledVs>,
    exact: HashMap<String, usize>,
    wildcard: Vec<(String, usize)>,
}

impl VsIndex {
    /// The VirtualService for a service host: exact host first, then the most specific wildcard.
    pub(crate) fn lookup(&self, host: &str) -> Option<&CompiledVs> {
        if let Some(&i) = self.exact.get(host) {
            return self.services.get(i);
        }
        self.wildcard
            .iter()
            .filter(|(pattern, _)| names::host_matches(pattern, host))
            .max_by_key(|(pattern, i)| (names::specificity(pattern), std::cmp::Reverse(*i)))
            .and_then(|(_, i)| self.services.get(*i))
    }
}

fn check_destination(
    dest: &DestSpec,
    services: &BTreeMap<String, Service>,
    rules: &RuleIndex,
    ctx: &BuildContext,
    warned: &mut Vec<String>,
    report: &mut Reporter<'_>,
) {
    let service = services.get(&dest.host);
    if service.is_none() && !warned.contains(&dest.host) {
        warned.push(dest.host.clone());
        report.warn(
            &dest.field.key("host"),
            format!(
                "IST0101 ReferencedResourceNotFound: no Service or ServiceEntry declares {}; \
                 requests routed there will fail (no cluster)",
                dest.host
            ),
        );
    }
    if let (Some(port), Some(s)) = (dest.port, service)
        && s.port(port).is_none()
    {
        report.warn(
            &dest.field.key("port").key("number"),
            format!("{} does not declare port {port}", dest.host),
        );
    }
    let Some(subset) = &dest.subset else { return };
    let service_ns = service.map_or(ctx.workload.namespace.as_str(), |s| s.namespace.as_str());
    match rules.lookup(&dest.host, service_ns, ctx) {
        Some((_, rule)) if rule.subset(subset).is_none() => report.error(
            &dest.field.key("subset"),
            format!(
                "IST0101 ReferencedResourceNotFound: subset {subset:?} is not defined by {} ({}) \
                 for host {}",
                rule.resource,
                rule.origin.describe(),
                dest.host
            ),
        ),
        Some(_) => {}
        None if service.is_some() => report.warn(
            &dest.field.key("subset"),
            format!(
                "IST0101 ReferencedResourceNotFound: no DestinationRule defines subsets for {}; \
                 subset {subset:?} has no cluster",
                dest.host
            ),
        ),
        // The host's own warning says it all.
        None => {}
    }
}

/// Istio's "duplicate hosts in virtual service" (pkg/config/validation ValidateVirtualService:
/// two hosts as written where one matches the other, wildcards included).
fn duplicate_hosts(hosts: &[String], f: &Field, report: &mut Reporter<'_>) {
    if hosts.iter().any(|h| names::validate_host(h).is_err()) {
        return;
    }
    for (i, a) in hosts.iter().enumerate() {
        for (j, b) in hosts.iter().enumerate().skip(i + 1) {
            if names::host_matches(a, b) || names::host_matches(b, a) {
                report.error(
                    &f.key("hosts").index(j),
                    format!("duplicate hosts in virtual service: {a} & {b}"),
                );
            }
        }
    }
}

/// A delegate VirtualService (no hosts), validated, with its routes' hosts resolved.
struct DelegateVs {
    routes: Vec<r::HttpRoute>,
    export_to: ExportTo,
}

/// Validates the delegates (host-less VirtualServices) and indexes them by namespace and name.
fn index_delegates(
    items: &[Item<r::VirtualServiceSpec>],
    services: &BTreeMap<String, Service>,
    rules: &RuleIndex,
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> HashMap<(String, String), DelegateVs> {
    let mut out = HashMap::new();
    for item in items.iter().filter(|i| i.spec.hosts.is_empty()) {
        let mut report = diags.at(&item.origin, &item.resource);
        let spec = &item.spec;
        let ns = item.resource.namespace.as_str();
        let f = Field::new("spec");
        // pkg/config/validation ValidateVirtualService, for a VirtualService without hosts.
        if !spec.gateways.is_empty() {
            report.error(
                &f.key("gateways"),
                "delegate virtual service must have no gateways specified",
            );
        }
        if spec.tls.is_some() {
            report.error(
                &f.key("tls"),
                "delegate virtual service must have no tls route specified",
            );
        }
        if spec.tcp.is_some() {
            report.error(
                &f.key("tcp"),
                "delegate virtual service must have no tcp route specified",
            );
        }
        if spec.http.is_empty() {
            report.error(&f.key("http"), "at least one of http, tcp, tls is required");
        }
        let export_to = export_to::read(
            &spec.export_to,
            ns,
            &ctx.settings.default_virtual_service_export_to,
            false,
            &f.key("exportTo"),
            &mut report,
        );
        let mut warned = Vec::new();
        for (i, route) in spec.http.iter().enumerate() {
            if route.delegate.is_some() {
                report.error(
                    &f.key("http").index(i).key("delegate"),
                    "delegate HTTP route cannot contain delegate",
                );
                continue;
            }
            if let Some(c) = http::compile_route(route, i, ns, ctx, &mut report) {
                check_route(&c, services, rules, ctx, &mut warned, &mut report);
            }
        }
        let routes = spec
            .http
            .iter()
            .map(|route| {
                let mut route = route.clone();
                delegate::resolve_hosts(&mut route, ns, &ctx.settings);
                route
            })
            .collect();
        out.insert(
            (ns.to_owned(), item.resource.name.clone()),
            DelegateVs { routes, export_to },
        );
    }
    out
}

fn check_route(
    route: &CompiledRoute,
    services: &BTreeMap<String, Service>,
    rules: &RuleIndex,
    ctx: &BuildContext,
    warned: &mut Vec<String>,
    report: &mut Reporter<'_>,
) {
    if let ActionSpec::Forward(dests) = &route.action {
        for d in dests {
            check_destination(&d.dest, services, rules, ctx, warned, report);
        }
    }
    for m in &route.mirrors {
        check_destination(&m.dest, services, rules, ctx, warned, report);
    }
}

/// The routes of root entry `http[index]` that delegates: the delegate's routes merged under it,
/// or none (with a warning) when the delegate is missing or not exported to the root.
fn delegated_routes(
    route: &r::HttpRoute,
    delegate: &r::Delegate,
    index: usize,
    ns: &str,
    delegates: &HashMap<(String, String), DelegateVs>,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Vec<CompiledRoute> {
    let f = Field::new("spec").key("http").index(index);
    // pkg/config/validation validateHTTPRouteConflict: a root entry names no destination or
    // redirect (a direct response is inherited by the delegate's routes).
    let name_of = route.name.as_deref().unwrap_or_default();
    let mut conflict = false;
    if route.redirect.is_some() {
        report.error(
            &f.key("redirect"),
            format!("root HTTP route {name_of} must not specify redirect"),
        );
        conflict = true;
    }
    if route.route.is_some() {
        report.error(
            &f.key("route"),
            format!("root HTTP route {name_of} must not specify route"),
        );
        conflict = true;
    }
    if conflict {
        return Vec::new();
    }
    let Some(name) = delegate.name.as_deref().filter(|n| !n.is_empty()) else {
        report.error(&f.key("delegate").key("name"), "name is required");
        return Vec::new();
    };
    let delegate_ns = delegate
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(ns);
    let Some(found) = delegates.get(&(delegate_ns.to_owned(), name.to_owned())) else {
        report.warn(
            &f.key("delegate"),
            format!("delegate virtual service {delegate_ns}/{name} not found; entry skipped"),
        );
        return Vec::new();
    };
    if !found.export_to.visible_to(ns) {
        report.warn(
            &f.key("delegate"),
            format!(
                "delegate virtual service {delegate_ns}/{name} is not exported to {ns}; entry skipped"
            ),
        );
        return Vec::new();
    }
    let mut root = route.clone();
    delegate::resolve_hosts(&mut root, ns, &ctx.settings);
    // The delegate's own document reports its problems; the merged copies are not re-reported.
    let mut scratch = Diagnostics::default();
    let mut quiet = scratch.at(report.origin(), report.resource());
    delegate::merge_routes(&root, &found.routes)
        .iter()
        .filter_map(|merged| http::compile_route(merged, index, ns, ctx, &mut quiet))
        .collect()
}

/// A root VirtualService this workload sees: its rank (private, exported, public), the
/// resource, its routes and its resolved hosts (with their index in `hosts`).
type Visible<'a> = (
    u8,
    &'a Item<r::VirtualServiceSpec>,
    Vec<CompiledRoute>,
    Vec<(usize, String)>,
);

/// Validates VirtualServices and indexes those this workload sees, as istiod does: delegates
/// merged into their roots, roots in creation order, the workload namespace's private ones
/// first, then those exported to it, then public ones
/// (`PushContext.VirtualServicesForGateway`); the first to claim a host keeps it.
pub(crate) fn compile_virtual_services(
    items: &[Item<r::VirtualServiceSpec>],
    services: &BTreeMap<String, Service>,
    rules: &RuleIndex,
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> VsIndex {
    let delegates = index_delegates(items, services, rules, ctx, diags);
    let roots = order::by_creation(items.iter().filter(|i| !i.spec.hosts.is_empty()), diags);
    let workload_ns = ctx.workload.namespace.as_str();
    let mut visible: Vec<Visible<'_>> = Vec::new();
    for item in roots {
        let mut report = diags.at(&item.origin, &item.resource);
        let spec = &item.spec;
        let ns = item.resource.namespace.as_str();
        let f = Field::new("spec");
        report.unimplemented(&spec.tls, &f.key("tls"));
        report.unimplemented(&spec.tcp, &f.key("tcp"));
        let export_to = export_to::read(
            &spec.export_to,
            ns,
            &ctx.settings.default_virtual_service_export_to,
            false,
            &f.key("exportTo"),
            &mut report,
        );
        let gateways_only = !spec.gateways.is_empty() && !spec.gateways.iter().any(|g| g == "mesh");
        duplicate_hosts(&spec.hosts, &f, &mut report);
        let mut hosts = Vec::new();
        for (i, h) in spec.hosts.iter().enumerate() {
            match names::validate_host(h) {
                Ok(()) if h == "*" && !gateways_only => report.error(
                    &f.key("hosts").index(i),
                    "host * is only allowed for gateways, not the mesh",
                ),
                Ok(()) => hosts.push((i, names::resolve_host(h, ns, &ctx.settings))),
                Err(e) => report.error(&f.key("hosts").index(i), e),
            }
        }
        let mut routes: Vec<CompiledRoute> = Vec::new();
        let mut warned = Vec::new();
        for (i, route) in spec.http.iter().enumerate() {
            if let Some(d) = &route.delegate {
                let merged = delegated_routes(route, d, i, ns, &delegates, ctx, &mut report);
                routes.extend(merged);
            } else if let Some(c) = http::compile_route(route, i, ns, ctx, &mut report) {
                check_route(&c, services, rules, ctx, &mut warned, &mut report);
                routes.push(c);
            }
        }
        if gateways_only {
            report.warn(
                &f.key("gateways"),
                "applies to gateways only (not \"mesh\"); skipped",
            );
            continue;
        }
        if spec.http.is_empty() {
            if spec.tcp.is_none() && spec.tls.is_none() {
                report.error(&f.key("http"), "at least one of http, tcp, tls is required");
            }
            // Only TCP/TLS routes, which mesh does not implement: keep the default routes.
            continue;
        }
        // initVirtualServices / VirtualServicesForGateway: private, then exported, then public.
        let rank = if export_to.public {
            2
        } else if export_to.namespaces.contains(workload_ns) {
            u8::from(ns != workload_ns)
        } else {
            continue;
        };
        visible.push((rank, item, routes, hosts));
    }
    visible.sort_by_key(|(rank, ..)| *rank);

    let mut index = VsIndex::default();
    let mut claimed: HashMap<String, usize> = HashMap::new();
    for (_, item, routes, hosts) in visible {
        let mut report = diags.at(&item.origin, &item.resource);
        let f = Field::new("spec");
        let vs_index = index.services.len();
        let mut hosts_seen: Vec<String> = Vec::new();
        for (i, host) in hosts {
            let hf = f.key("hosts").index(i);
            if hosts_seen.contains(&host) {
                // Two spellings of one host (`reviews` and its FQDN): the same routes, once.
                continue;
            }
            hosts_seen.push(host.clone());
            if let Some(&first) = claimed.get(&host)
                && let Some(first) = index.services.get(first)
            {
                report.warn(
                    &hf,
                    format!(
                        "{host} is already routed by {} ({}); this VirtualService is ignored for it",
                        first.resource,
                        first.origin.describe()
                    ),
                );
                continue;
            }
            let matched = if host.starts_with('*') {
                services.keys().any(|s| names::host_matches(&host, s))
            } else {
                services.contains_key(&host)
            };
            if !matched {
                report.warn(
                    &hf,
                    format!(
                        "no Service or ServiceEntry declares {host}; its routes are not installed"
                    ),
                );
            }
            claimed.insert(host.clone(), vs_index);
            if host.starts_with('*') {
                index.wildcard.push((host, vs_index));
            } else {
                index.exact.insert(host, vs_index);
            }
        }
        index.services.push(CompiledVs {
            origin: item.origin.clone(),
            resource: item.resource.clone(),
            routes,
        });
    }
    index
}
