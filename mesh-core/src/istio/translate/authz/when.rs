//! `when[]` conditions: the attribute keys of istiod's `authz/model/model.go` (`New`), each
//! read as istiod reads it or failing closed.

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::rule::{Checker, wildcard};
use super::{FAILS_CLOSED, PolicyScope, fail_closed};
use crate::model::{AuthzCondition, AuthzRule, ConditionKey, StringPattern};

/// Istio keys that need a JWT (RequestAuthentication) or Envoy metadata; mesh has neither.
const UNSUPPORTED_KEYS: [&str; 5] = [
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[",
    "experimental.envoy.filters.",
];

/// Translates one condition into `rule.when` (or fails the rule closed on it).
pub(super) fn condition(
    c: &r::Condition,
    f: &Field,
    scope: &PolicyScope<'_>,
    rule: &mut AuthzRule,
    report: &mut Reporter<'_>,
) {
    let Some(key) = c.key.as_deref().filter(|k| !k.is_empty()) else {
        fail_closed(rule, &f.key("key"), "key is required", report);
        return;
    };
    if c.values.is_empty() && c.not_values.is_empty() {
        fail_closed(
            rule,
            f,
            format!("at least one of values, notValues is required for key {key}"),
            report,
        );
        return;
    }
    let (vf, nf) = (f.key("values"), f.key("notValues"));
    let mut check = Checker { out: rule, report };
    // Every value is checked; on a bad one the checker has already failed the rule closed.
    let before = check.out.when.len();
    let (key, values, not_values) = match key {
        "source.ip" | "remote.ip" | "destination.ip" => {
            if key == "remote.ip" {
                check.report.warn(
                    &f.key("key"),
                    "remote.ip is read as source.ip (no proxy in front)",
                );
            }
            check.ip_blocks(&c.values, &vf);
            check.ip_blocks(&c.not_values, &nf);
            let k = if key == "destination.ip" {
                ConditionKey::DestinationIp
            } else {
                ConditionKey::SourceIp
            };
            (k, plain(&c.values), plain(&c.not_values))
        }
        "destination.port" => {
            check.ports(&c.values, &vf);
            check.ports(&c.not_values, &nf);
            (
                ConditionKey::DestinationPort,
                plain(&c.values),
                plain(&c.not_values),
            )
        }
        "source.principal" => (
            ConditionKey::SourcePrincipal,
            check.patterns(&scope.bundle.replace_aliases(&c.values), &vf),
            check.patterns(&scope.bundle.replace_aliases(&c.not_values), &nf),
        ),
        "source.namespace" => (
            ConditionKey::SourceNamespace,
            check.patterns(&c.values, &vf),
            check.patterns(&c.not_values, &nf),
        ),
        "source.serviceAccount" => {
            // Stored as `ns/name`, the bare form resolved in the policy's namespace.
            let read = |vs: &[String], field: &Field, check: &mut Checker<'_, '_, '_>| {
                check
                    .service_accounts(vs, field, scope.namespace)
                    .iter()
                    .map(|sa| StringPattern::Exact(sa.to_string()))
                    .collect::<Vec<_>>()
            };
            let values = read(&c.values, &vf, &mut check);
            let not_values = read(&c.not_values, &nf, &mut check);
            (ConditionKey::SourceServiceAccount, values, not_values)
        }
        "source.trustDomain" => {
            let read = |vs: &[String], field: &Field, check: &mut Checker<'_, '_, '_>| {
                let vs = scope.bundle.expand(vs);
                for (i, v) in vs.iter().enumerate() {
                    if let Err(why) = wildcard(v) {
                        fail_closed(check.out, &field.index(i), why, check.report);
                        return Vec::new();
                    }
                }
                plain(&vs)
            };
            let values = read(&c.values, &vf, &mut check);
            let not_values = read(&c.not_values, &nf, &mut check);
            (ConditionKey::SourceTrustDomain, values, not_values)
        }
        "connection.sni" => (
            ConditionKey::ConnectionSni,
            check.patterns(&c.values, &vf),
            check.patterns(&c.not_values, &nf),
        ),
        k => {
            if let Some(name) = k
                .strip_prefix("request.headers[")
                .and_then(|h| h.strip_suffix(']'))
            {
                if name.is_empty() {
                    fail_closed(
                        check.out,
                        &f.key("key"),
                        "header name must not be empty",
                        check.report,
                    );
                    return;
                }
                (
                    ConditionKey::RequestHeader(name.to_ascii_lowercase()),
                    check.patterns(&c.values, &vf),
                    check.patterns(&c.not_values, &nf),
                )
            } else if UNSUPPORTED_KEYS.iter().any(|u| k.starts_with(u)) {
                check.report.error(
                    &f.key("key"),
                    format!("{k} needs a JWT (RequestAuthentication) or Envoy metadata, which mesh does not have; {FAILS_CLOSED}"),
                );
                (
                    ConditionKey::Unsupported(k.to_owned()),
                    plain(&c.values),
                    plain(&c.not_values),
                )
            } else {
                fail_closed(
                    check.out,
                    &f.key("key"),
                    format!("unknown condition key {k:?}"),
                    check.report,
                );
                return;
            }
        }
    };
    if rule.when.len() > before {
        // A value could not be read: the rule already fails closed on this condition.
        return;
    }
    rule.when.push(AuthzCondition {
        key,
        values,
        not_values,
    });
}

fn plain(values: &[String]) -> Vec<StringPattern> {
    values.iter().map(|v| StringPattern::parse(v)).collect()
}
