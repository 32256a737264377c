//! DestinationRules: validated, indexed by host, and looked up for a service the way Istio does.
//!
//! Lookup for a service host: rules in the workload's namespace first, then the service's
//! namespace, then the root namespace, then any other; within a namespace, an exact host beats a
//! wildcard and a longer wildcard beats a shorter one. Two rules for the same host in the same
//! namespace are an error.
//!
//! mesh extension: the annotation `mesh.dev/load-balancer: PEAK_EWMA` on a rule makes every
//! LEAST_REQUEST of that rule (explicit, LEAST_CONN, or the default) use
//! [`LbPolicy::PeakEwma`]: power of two choices on peak-EWMA latency × in-flight requests, a
//! latency-aware refinement of least-request.

use std::collections::{BTreeMap, HashMap};

use super::super::diag::{Diagnostics, Field, Origin};
use super::super::names;
use super::super::resources as r;
use super::Item;
use super::traffic_policy::{self, LeveledPolicy};
use crate::BuildContext;
use crate::config::ResourceRef;
use crate::model::LbPolicy;

/// The annotation selecting mesh's PEAK_EWMA balancer.
pub(crate) const LB_ANNOTATION: &str = "mesh.dev/load-balancer";

/// A subset.
#[derive(Debug)]
pub(crate) struct CompiledSubset {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) policy: LeveledPolicy,
}

/// A validated DestinationRule.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) origin: Origin,
    pub(crate) resource: ResourceRef,
    pub(crate) host: String,
    pub(crate) policy: LeveledPolicy,
    pub(crate) subsets: Vec<CompiledSubset>,
    /// What an unset load balancer means for this rule.
    pub(crate) default_lb: LbPolicy,
}

impl CompiledRule {
    pub(crate) fn subset(&self, name: &str) -> Option<&CompiledSubset> {
        self.subsets.iter().find(|s| s.name == name)
    }
}

/// Rules by host.
#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    pub(crate) rules: Vec<CompiledRule>,
    exact: HashMap<String, Vec<usize>>,
    wildcard: Vec<usize>,
}

impl RuleIndex {
    /// The rule that applies to `host` of a service in `service_ns`, for a workload in
    /// `workload_ns` (see the module docs), with its index.
    pub(crate) fn lookup(
        &self,
        host: &str,
        service_ns: &str,
        ctx: &BuildContext,
    ) -> Option<(usize, &CompiledRule)> {
        let rank = |ns: &str| {
            if ns == ctx.workload.namespace {
                3
            } else if ns == service_ns {
                2
            } else if ns == ctx.settings.root_namespace {
                1
            } else {
                0
            }
        };
        self.exact
            .get(host)
            .into_iter()
            .flatten()
            .chain(self.wildcard.iter())
            .copied()
            .filter(|&i| names::host_matches(&self.rules[i].host, host))
            .max_by_key(|&i| {
                let rule = &self.rules[i];
                (
                    rank(&rule.resource.namespace),
                    names::specificity(&rule.host),
                    std::cmp::Reverse(i),
                )
            })
            .map(|i| (i, &self.rules[i]))
    }
}

/// Validates and indexes DestinationRules.
pub(crate) fn compile_rules(
    items: &[Item<r::DestinationRuleSpec>],
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> RuleIndex {
    let mut index = RuleIndex::default();
    let mut by_ns_host: HashMap<(String, String), usize> = HashMap::new();
    for item in items {
        let mut report = diags.at(&item.origin, &item.resource);
        let spec = &item.spec;
        let f = Field::new("spec");
        report.unimplemented(&spec.export_to, &f.key("exportTo"));
        report.unimplemented(&spec.workload_selector, &f.key("workloadSelector"));
        let default_lb = match item
            .metadata
            .annotations
            .get(LB_ANNOTATION)
            .map(String::as_str)
        {
            None | Some("LEAST_REQUEST") => LbPolicy::LeastRequest,
            Some("PEAK_EWMA") => LbPolicy::PeakEwma,
            Some(other) => {
                report.error(
                    &format!("metadata.annotations.{LB_ANNOTATION}"),
                    format!(
                        "unknown load balancer {other:?} (expected PEAK_EWMA or LEAST_REQUEST)"
                    ),
                );
                LbPolicy::LeastRequest
            }
        };
        let host = match spec.host.as_deref() {
            None | Some("") => {
                report.error(&f.key("host"), "host is required");
                None
            }
            Some(h) => match names::validate_host(h) {
                Ok(()) => Some(names::resolve_host(
                    h,
                    &item.resource.namespace,
                    &ctx.settings,
                )),
                Err(e) => {
                    report.error(&f.key("host"), e);
                    None
                }
            },
        };
        let policy = spec
            .traffic_policy
            .as_ref()
            .map(|tp| {
                traffic_policy::compile(tp, &f.key("trafficPolicy"), &default_lb, &mut report)
            })
            .unwrap_or_default();
        let mut subsets: Vec<CompiledSubset> = Vec::new();
        for (i, s) in spec.subsets.iter().enumerate() {
            let sf = f.key("subsets").index(i);
            let name = s.name.clone().unwrap_or_default();
            if name.is_empty() {
                report.error(&sf.key("name"), "subset name is required");
                continue;
            }
            if subsets.iter().any(|o| o.name == name) {
                report.error(&sf.key("name"), format!("subset {name:?} is defined twice"));
                continue;
            }
            let policy = s
                .traffic_policy
                .as_ref()
                .map(|tp| {
                    traffic_policy::compile(tp, &sf.key("trafficPolicy"), &default_lb, &mut report)
                })
                .unwrap_or_default();
            subsets.push(CompiledSubset {
                name,
                labels: s.labels.clone(),
                policy,
            });
        }
        let Some(host) = host else { continue };
        let key = (item.resource.namespace.clone(), host.clone());
        if let Some(&first) = by_ns_host.get(&key) {
            let first = &index.rules[first];
            report.error(
                &f.key("host"),
                format!(
                    "host {host} already has {} ({}) in namespace {}; merge them into one rule (their merge in Istio depends on creation order)",
                    first.resource,
                    first.origin.describe(),
                    key.0
                ),
            );
            continue;
        }
        let i = index.rules.len();
        by_ns_host.insert(key, i);
        if host.starts_with('*') {
            index.wildcard.push(i);
        } else {
            index.exact.entry(host.clone()).or_default().push(i);
        }
        index.rules.push(CompiledRule {
            origin: item.origin.clone(),
            resource: item.resource.clone(),
            host,
            policy,
            subsets,
            default_lb,
        });
    }
    index
}
