//! VirtualServices: validated, checked against the DestinationRules their destinations name,
//! and indexed by host.
//!
//! When several VirtualServices claim the same host, the first one read (files in sorted order,
//! documents in order) keeps it and the others are reported; for a service, a VirtualService
//! naming its exact host beats one naming a wildcard that covers it.

use std::collections::{BTreeMap, HashMap};

use super::super::diag::{Diagnostics, Field, Origin};
use super::super::names;
use super::super::resources as r;
use super::Item;
use super::destination_rule::RuleIndex;
use super::http::{self, ActionSpec, CompiledRoute, DestSpec};
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
    report: &mut super::super::diag::Reporter<'_>,
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

/// Validates VirtualServices and indexes those that apply to the mesh.
pub(crate) fn compile_virtual_services(
    items: &[Item<r::VirtualServiceSpec>],
    services: &BTreeMap<String, Service>,
    rules: &RuleIndex,
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> VsIndex {
    let mut index = VsIndex::default();
    let mut claimed: HashMap<String, usize> = HashMap::new();
    for item in items {
        let mut report = diags.at(&item.origin, &item.resource);
        let spec = &item.spec;
        let ns = item.resource.namespace.as_str();
        let f = Field::new("spec");
        report.unimplemented(&spec.tls, &f.key("tls"));
        report.unimplemented(&spec.tcp, &f.key("tcp"));
        report.unimplemented(&spec.export_to, &f.key("exportTo"));
        if spec.hosts.is_empty() {
            report.error(&f.key("hosts"), "at least one host is required");
        }
        let gateways_only = !spec.gateways.is_empty() && !spec.gateways.iter().any(|g| g == "mesh");
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
        let routes: Vec<CompiledRoute> = spec
            .http
            .iter()
            .enumerate()
            .filter_map(|(i, route)| http::compile_route(route, i, ns, ctx, &mut report))
            .collect();
        let mut warned = Vec::new();
        for route in &routes {
            if let ActionSpec::Forward(dests) = &route.action {
                for d in dests {
                    check_destination(&d.dest, services, rules, ctx, &mut warned, &mut report);
                }
            }
            for m in &route.mirrors {
                check_destination(&m.dest, services, rules, ctx, &mut warned, &mut report);
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
        let vs_index = index.services.len();
        for (i, host) in hosts {
            let hf = f.key("hosts").index(i);
            if let Some(&first) = claimed.get(&host) {
                let first: &CompiledVs = &index.services[first];
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
