//! AuthorizationPolicy: every policy validated; those selecting this workload translated.
//!
//! A policy applies when it is mesh-wide (root namespace, no selector), namespace-wide (the
//! workload's namespace, no selector), or its `selector.matchLabels` are all on the workload
//! (in the workload's namespace).
//!
//! **What mesh cannot enforce fails closed and is an error.** Every field of the resource is
//! either enforced as istiod means it or reported as an error (so a file load is refused and
//! the last good config keeps serving), and the translated policy is made stricter, never
//! wider, the way istiod treats a field its proxy cannot evaluate
//! (`pilot/pkg/security/authz/model/model.go`, `rule.checkError`): an ALLOW rule with such a
//! field never matches; in a DENY or AUDIT rule the field is dropped, so the rule matches
//! whatever its other fields match. In the model that is one [`ConditionKey::Unsupported`]
//! condition on the rule, named after the field. Policy-level cases:
//!
//! - `action: CUSTOM` (ext_authz, which could deny): kept as a DENY of the same rules.
//! - `targetRef` / `targetRefs` (policies attached to a Gateway or Service, which mesh cannot
//!   resolve): the policy is applied to this workload; an ALLOW one matches nothing, so only
//!   other ALLOW policies can let a request in.

mod rule;
#[cfg(test)]
mod tests;
mod trust_domain;
mod when;

use super::super::diag::{Diagnostics, Field, Reporter};
use super::super::resources::{self as r, labels_match};
use super::Item;
use crate::BuildContext;
use crate::model::{
    AuthzAction, AuthzCondition, AuthzPolicy, AuthzRule, ConditionKey, StringPattern,
};
use trust_domain::Bundle;

/// What translating one policy's rules needs.
pub(super) struct PolicyScope<'a> {
    /// The policy's namespace (a bare service account is resolved in it).
    pub(super) namespace: &'a str,
    /// The mesh's trust domain and aliases.
    pub(super) bundle: &'a Bundle,
}

/// Validates every AuthorizationPolicy and returns those that apply to `ctx.workload`.
pub(crate) fn translate(
    items: &[Item<r::AuthorizationPolicySpec>],
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> Vec<AuthzPolicy> {
    let bundle = Bundle::new(
        &ctx.settings.trust_domain,
        &ctx.settings.trust_domain_aliases,
    );
    let mut out = Vec::new();
    for item in items {
        let mut report = diags.at(&item.origin, &item.resource);
        let (policy, targeted) = policy(item, &bundle, &mut report);
        let ns = item.resource.namespace.as_str();
        let applies = targeted
            || match item
                .spec
                .selector
                .as_ref()
                .filter(|s| !s.match_labels.is_empty())
            {
                Some(s) => {
                    ns == ctx.workload.namespace
                        && labels_match(&s.match_labels, &ctx.workload.labels)
                }
                None => ns == ctx.workload.namespace || ns == ctx.settings.root_namespace,
            };
        if applies {
            out.push(policy);
        }
    }
    out
}

/// The policy, and whether it names a target mesh cannot resolve (then it applies here).
fn policy(
    item: &Item<r::AuthorizationPolicySpec>,
    bundle: &Bundle,
    report: &mut Reporter<'_>,
) -> (AuthzPolicy, bool) {
    let spec = &item.spec;
    let f = Field::new("spec");
    let action = match spec.action {
        None | Some(r::AuthzActionSetting::Allow) => AuthzAction::Allow,
        Some(r::AuthzActionSetting::Deny) => AuthzAction::Deny,
        Some(r::AuthzActionSetting::Audit) => AuthzAction::Audit,
        Some(r::AuthzActionSetting::Custom) => {
            report.error(
                &f.key("action"),
                "CUSTOM authorization (ext_authz) is not supported; the policy is enforced as a DENY of its rules rather than allowing what the provider could deny",
            );
            AuthzAction::Deny
        }
    };
    if spec.provider.is_some() && spec.action != Some(r::AuthzActionSetting::Custom) {
        report.error(
            &f.key("provider"),
            "provider is only valid with action CUSTOM",
        );
    }
    if spec.action == Some(r::AuthzActionSetting::Deny) && spec.rules.is_none() {
        // istiod's ValidateAuthorizationPolicy refuses it: it would never match.
        report.error(
            &f.key("rules"),
            "a DENY policy without rules never matches; add `rules: [{}]` to deny every request",
        );
    }
    let mut targeted = false;
    for (key, set) in [
        ("targetRef", spec.target_ref.is_some()),
        ("targetRefs", spec.target_refs.is_some()),
    ] {
        if set {
            targeted = true;
            report.error(
                &f.key(key),
                "policies attached to a Gateway or Service by targetRef cannot be resolved by mesh; the policy is applied to this workload, failing closed (an ALLOW policy matches nothing, DENY and AUDIT apply as written)",
            );
        }
    }
    if targeted && spec.selector.is_some() {
        report.error(
            &f.key("selector"),
            "only one of selector, targetRef, targetRefs may be set",
        );
    }
    let scope = PolicyScope {
        namespace: &item.resource.namespace,
        bundle,
    };
    let mut rules = Vec::new();
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        rules.push(rule::translate_rule(
            rule,
            &f.key("rules").index(i),
            &scope,
            report,
        ));
    }
    if targeted && action == AuthzAction::Allow {
        rules.clear();
    }
    (
        AuthzPolicy {
            name: format!("{}/{}", item.resource.namespace, item.resource.name),
            action,
            rules,
        },
        targeted,
    )
}

/// Said of a field mesh does not implement.
pub(super) const FAILS_CLOSED: &str = "mesh cannot enforce this, so the rule fails closed (in ALLOW it never matches, in DENY and AUDIT it matches on its other fields)";

/// Reports `why` as an error at `field` and makes `rule` fail closed on it: a condition mesh
/// never evaluates (false in ALLOW, true in DENY and AUDIT). The caller leaves the field out.
pub(super) fn fail_closed(
    rule: &mut AuthzRule,
    field: &Field,
    why: impl Into<String>,
    report: &mut Reporter<'_>,
) {
    report.error(field, why);
    let key = ConditionKey::Unsupported(field.to_string());
    if !rule.when.iter().any(|c| c.key == key) {
        rule.when.push(AuthzCondition {
            key,
            values: vec![StringPattern::Any],
            not_values: Vec::new(),
        });
    }
}
