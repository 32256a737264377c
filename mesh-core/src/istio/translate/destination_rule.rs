//! DestinationRules: validated, merged and looked up for a service the way istiod does.
//!
//! Rules are read in istiod's order (workload-selector rules first, then oldest creation
//! time, then name: `sortConfigBySelectorAndCreationTime`) and merged per namespace and host as
//! `mergeDestinationRule` (pilot/pkg/model/destination_rule.go) merges them: later subsets are
//! appended (a repeated subset name keeps the first), the first top-level `trafficPolicy` wins,
//! and rules with different `exportTo` or different workload selectors stay apart. Each
//! namespace has a local set (every rule of the namespace) and an exported set (rules not
//! private to it).
//!
//! Lookup for a service host, as `PushContext.destinationRule` (pilot/pkg/model/push_context.go):
//! the workload's namespace's local rules, else the service namespace's exported rules visible
//! to the workload, else the root namespace's; within a set the most specific host wins. Among
//! the merged rules found, one whose workload selector matches this workload (same namespace
//! only) wins, else the last without a selector (`SidecarScope.DestinationRule`).
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
use super::export_to::{self, ExportTo};
use super::order;
use super::traffic_policy::{self, LeveledPolicy};
use crate::BuildContext;
use crate::config::ResourceRef;
use crate::model::LbPolicy;

/// The annotation selecting mesh's PEAK_EWMA balancer.
pub(crate) const LB_ANNOTATION: &str = "mesh.dev/load-balancer";

/// A subset.
#[derive(Clone, Debug)]
pub(crate) struct CompiledSubset {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) policy: LeveledPolicy,
}

/// A validated DestinationRule, or several merged.
#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    pub(crate) origin: Origin,
    pub(crate) resource: ResourceRef,
    pub(crate) host: String,
    pub(crate) policy: LeveledPolicy,
    pub(crate) subsets: Vec<CompiledSubset>,
    /// What an unset load balancer means for this rule.
    pub(crate) default_lb: LbPolicy,
    /// Whether `trafficPolicy` was given (the first one given wins a merge).
    pub(crate) has_policy: bool,
    /// `exportTo` as given (not defaulted): merges compare it.
    pub(crate) export_to: ExportTo,
    /// `workloadSelector.matchLabels`.
    pub(crate) selector: Option<BTreeMap<String, String>>,
}

impl CompiledRule {
    pub(crate) fn subset(&self, name: &str) -> Option<&CompiledSubset> {
        self.subsets.iter().find(|s| s.name == name)
    }
}

/// Merged rules, by namespace.
#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    /// Every merged rule (indices below point here).
    pub(crate) rules: Vec<CompiledRule>,
    /// Per namespace: every rule of the namespace, merged.
    local: HashMap<String, Vec<usize>>,
    /// Per namespace: the rules exported beyond it, merged.
    exported: HashMap<String, Vec<usize>>,
}

impl RuleIndex {
    /// The merged rules of `set` for the most specific host matching `host`.
    fn most_specific<'a>(&'a self, set: Option<&'a Vec<usize>>, host: &str) -> Vec<usize> {
        let set = set.map_or(&[][..], Vec::as_slice);
        let best = set
            .iter()
            .map(|&i| &self.rules[i].host)
            .filter(|h| names::host_matches(h, host))
            .max_by_key(|h| names::specificity(h));
        match best {
            Some(best) => set
                .iter()
                .copied()
                .filter(|&i| self.rules[i].host == *best)
                .collect(),
            None => Vec::new(),
        }
    }

    /// The rule that applies to `host` of a service in `service_ns` for this workload (see the
    /// module docs), with its index.
    pub(crate) fn lookup(
        &self,
        host: &str,
        service_ns: &str,
        ctx: &BuildContext,
    ) -> Option<(usize, &CompiledRule)> {
        let ns = ctx.workload.namespace.as_str();
        let mut found = self.most_specific(self.local.get(ns), host);
        for owner in [service_ns, ctx.settings.root_namespace.as_str()] {
            if !found.is_empty() {
                break;
            }
            found = self.most_specific(self.exported.get(owner), host);
            found.retain(|&i| {
                let e = &self.rules[i].export_to;
                !e.explicit || e.visible_to(ns)
            });
        }
        let mut catch_all = None;
        for i in found {
            let rule = &self.rules[i];
            match &rule.selector {
                None => catch_all = Some(i),
                Some(sel) if rule.resource.namespace == ns => {
                    if sel
                        .iter()
                        .all(|(k, v)| ctx.workload.labels.get(k) == Some(v))
                    {
                        return Some((i, rule));
                    }
                }
                Some(_) => {}
            }
        }
        catch_all.map(|i| (i, &self.rules[i]))
    }

    /// Merges `rule` into the namespace set `set` as `mergeDestinationRule` does.
    fn merge(&mut self, set: SetKind, rule: &CompiledRule) {
        let map = match set {
            SetKind::Local => &mut self.local,
            SetKind::Exported => &mut self.exported,
        };
        let entries = map
            .get(&rule.resource.namespace)
            .cloned()
            .unwrap_or_default();
        let mut separately = true;
        for i in entries {
            let existing = &mut self.rules[i];
            if existing.host != rule.host {
                continue;
            }
            if rule.export_to.same(&existing.export_to) {
                separately = false;
            } else if existing.export_to.explicit && rule.export_to.covers(&existing.export_to) {
                separately = true;
            } else {
                separately = true;
                continue;
            }
            match (&rule.selector, &existing.selector) {
                (Some(a), Some(b)) if a != b => {
                    separately = true;
                    continue;
                }
                (None, None) | (Some(_), Some(_)) => separately = false,
                _ => {}
            }
            for subset in &rule.subsets {
                if existing.subset(&subset.name).is_none() {
                    existing.subsets.push(subset.clone());
                }
            }
            if !existing.has_policy && rule.has_policy {
                existing.policy = rule.policy.clone();
                existing.has_policy = true;
            }
        }
        if separately {
            let i = self.rules.len();
            self.rules.push(rule.clone());
            let map = match set {
                SetKind::Local => &mut self.local,
                SetKind::Exported => &mut self.exported,
            };
            map.entry(rule.resource.namespace.clone())
                .or_default()
                .push(i);
        }
    }
}

#[derive(Clone, Copy)]
enum SetKind {
    Local,
    Exported,
}

/// Validates and indexes DestinationRules.
pub(crate) fn compile_rules(
    items: &[Item<r::DestinationRuleSpec>],
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> RuleIndex {
    let mut index = RuleIndex::default();
    // istiod's sortConfigBySelectorAndCreationTime: selector rules first, then by creation.
    let mut sorted = order::by_creation(items, diags);
    sorted.sort_by_key(|item| item.spec.workload_selector.is_none());
    for item in sorted {
        let mut report = diags.at(&item.origin, &item.resource);
        let spec = &item.spec;
        let f = Field::new("spec");
        let ns = item.resource.namespace.as_str();
        let export_to = if spec.export_to.is_empty() {
            ExportTo::default()
        } else {
            export_to::read(
                &spec.export_to,
                ns,
                &[],
                false,
                &f.key("exportTo"),
                &mut report,
            )
        };
        let selector = spec
            .workload_selector
            .as_ref()
            .map(|s| s.match_labels.clone());
        // validateExportTo: a rule with a workload selector stays in its namespace.
        if selector.is_some() && export_to.explicit {
            if !export_to.namespaces.contains(ns) || export_to.public {
                report.error(
                    &f.key("exportTo"),
                    "destination rule with workload selector cannot have exportTo beyond current namespace",
                );
            } else if export_to.namespaces.len() > 1 {
                report.error(
                    &f.key("exportTo"),
                    "destination rule with workload selector cannot have multiple entries in exportTo",
                );
            }
        }
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
        let rule = CompiledRule {
            origin: item.origin.clone(),
            resource: item.resource.clone(),
            host,
            policy,
            subsets,
            default_lb,
            has_policy: spec.traffic_policy.is_some(),
            // setDestinationRules: a selector rule is private to its namespace.
            export_to: if selector.is_some() {
                ExportTo {
                    namespaces: [ns.to_owned()].into(),
                    explicit: true,
                    public: false,
                }
            } else {
                export_to
            },
            selector,
        };
        // setDestinationRules: every rule of a namespace is local to it; a rule not private to
        // its namespace (given, or by default) is also exported.
        let private_only = if rule.export_to.explicit {
            rule.export_to.private_to(ns)
        } else {
            let defaults = &ctx.settings.default_destination_rule_export_to;
            defaults.iter().any(|d| d == ".")
        };
        let local = !rule.export_to.explicit
            || rule.export_to.public
            || rule.export_to.namespaces.contains(ns);
        if local {
            index.merge(SetKind::Local, &rule);
        }
        if !private_only {
            index.merge(SetKind::Exported, &rule);
        }
    }
    index
}
