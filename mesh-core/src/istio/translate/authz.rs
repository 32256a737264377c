//! AuthorizationPolicy: every policy validated; those selecting this workload translated.
//!
//! A policy applies when it is mesh-wide (root namespace, no selector), namespace-wide (the
//! workload's namespace, no selector), or its `selector.matchLabels` are all on the workload
//! (in the workload's namespace). CUSTOM (ext_authz) is refused: ignoring it would allow what it
//! would deny.

use super::super::diag::{Diagnostics, Field, Reporter};
use super::super::resources::{self as r, labels_match};
use super::Item;
use crate::BuildContext;
use crate::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, ConditionKey,
    IpBlock, StringPattern,
};

/// Validates every AuthorizationPolicy and returns those that apply to `ctx.workload`.
pub(crate) fn translate(
    items: &[Item<r::AuthorizationPolicySpec>],
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> Vec<AuthzPolicy> {
    let mut out = Vec::new();
    for item in items {
        let mut report = diags.at(&item.origin, &item.resource);
        let Some(policy) = policy(item, &mut report) else {
            continue;
        };
        let ns = item.resource.namespace.as_str();
        let applies = match item
            .spec
            .selector
            .as_ref()
            .filter(|s| !s.match_labels.is_empty())
        {
            Some(s) => {
                ns == ctx.workload.namespace && labels_match(&s.match_labels, &ctx.workload.labels)
            }
            None => ns == ctx.workload.namespace || ns == ctx.settings.root_namespace,
        };
        if applies {
            out.push(policy);
        }
    }
    out
}

fn policy(
    item: &Item<r::AuthorizationPolicySpec>,
    report: &mut Reporter<'_>,
) -> Option<AuthzPolicy> {
    let spec = &item.spec;
    let f = Field::new("spec");
    report.unimplemented(&spec.target_ref, &f.key("targetRef"));
    report.unimplemented(&spec.target_refs, &f.key("targetRefs"));
    let action = match spec.action {
        None | Some(r::AuthzActionSetting::Allow) => AuthzAction::Allow,
        Some(r::AuthzActionSetting::Deny) => AuthzAction::Deny,
        Some(r::AuthzActionSetting::Audit) => AuthzAction::Audit,
        Some(r::AuthzActionSetting::Custom) => {
            report.error(
                &f.key("action"),
                "CUSTOM authorization (ext_authz) is not supported; refusing rather than allowing what it would deny",
            );
            return None;
        }
    };
    if spec.provider.is_some() {
        report.error(
            &f.key("provider"),
            "provider is only valid with action CUSTOM",
        );
    }
    let mut rules = Vec::new();
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        rules.push(translate_rule(rule, &f.key("rules").index(i), report));
    }
    Some(AuthzPolicy {
        name: format!("{}/{}", item.resource.namespace, item.resource.name),
        action,
        rules,
    })
}

fn patterns(values: &[String]) -> Vec<StringPattern> {
    values.iter().map(|v| StringPattern::parse(v)).collect()
}

fn ip_blocks(values: &[String], field: &Field, report: &mut Reporter<'_>) -> Vec<IpBlock> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match IpBlock::parse(v) {
            Some(b) => out.push(b),
            None => report.error(
                &field.index(i),
                format!("{v:?} is not an IP address or CIDR block"),
            ),
        }
    }
    out
}

fn ports(values: &[String], field: &Field, report: &mut Reporter<'_>) -> Vec<u16> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v.parse::<u16>() {
            Ok(p) if p > 0 => out.push(p),
            _ => report.error(
                &field.index(i),
                format!("{v:?} is not a port number 1..65535"),
            ),
        }
    }
    out
}

fn translate_rule(rule: &r::Rule, f: &Field, report: &mut Reporter<'_>) -> AuthzRule {
    let mut out = AuthzRule::default();
    for (i, from) in rule.from.iter().enumerate() {
        let sf = f.key("from").index(i).key("source");
        let Some(s) = &from.source else {
            report.error(&sf, "source is required");
            continue;
        };
        report.unimplemented(&s.service_accounts, &sf.key("serviceAccounts"));
        report.unimplemented(&s.not_service_accounts, &sf.key("notServiceAccounts"));
        let mut ip = ip_blocks(&s.ip_blocks, &sf.key("ipBlocks"), report);
        let mut not_ip = ip_blocks(&s.not_ip_blocks, &sf.key("notIpBlocks"), report);
        if !s.remote_ip_blocks.is_empty() || !s.not_remote_ip_blocks.is_empty() {
            report.warn(
                &sf.key("remoteIpBlocks"),
                "mesh has no proxy in front of it: the remote IP is the peer IP, so these are read as ipBlocks",
            );
            ip.extend(ip_blocks(
                &s.remote_ip_blocks,
                &sf.key("remoteIpBlocks"),
                report,
            ));
            not_ip.extend(ip_blocks(
                &s.not_remote_ip_blocks,
                &sf.key("notRemoteIpBlocks"),
                report,
            ));
        }
        out.from.push(AuthzSource {
            principals: patterns(&s.principals),
            not_principals: patterns(&s.not_principals),
            namespaces: patterns(&s.namespaces),
            not_namespaces: patterns(&s.not_namespaces),
            ip_blocks: ip,
            not_ip_blocks: not_ip,
            request_principals: patterns(&s.request_principals),
            not_request_principals: patterns(&s.not_request_principals),
        });
    }
    for (i, to) in rule.to.iter().enumerate() {
        let of = f.key("to").index(i).key("operation");
        let Some(o) = &to.operation else {
            report.error(&of, "operation is required");
            continue;
        };
        out.to.push(AuthzOperation {
            hosts: patterns(&o.hosts),
            not_hosts: patterns(&o.not_hosts),
            ports: ports(&o.ports, &of.key("ports"), report),
            not_ports: ports(&o.not_ports, &of.key("notPorts"), report),
            methods: patterns(&o.methods),
            not_methods: patterns(&o.not_methods),
            paths: patterns(&o.paths),
            not_paths: patterns(&o.not_paths),
        });
    }
    for (i, c) in rule.when.iter().enumerate() {
        let cf = f.key("when").index(i);
        if let Some(cond) = condition(c, &cf, report) {
            out.when.push(cond);
        }
    }
    out
}

/// Istio condition keys mesh does not evaluate (they fail closed).
const UNSUPPORTED_KEYS: [&str; 5] = [
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[",
    "experimental.envoy.filters.",
];

fn condition(c: &r::Condition, f: &Field, report: &mut Reporter<'_>) -> Option<AuthzCondition> {
    let Some(key) = c.key.as_deref().filter(|k| !k.is_empty()) else {
        report.error(&f.key("key"), "key is required");
        return None;
    };
    if c.values.is_empty() && c.not_values.is_empty() {
        report.error(f, "at least one of values, notValues is required");
        return None;
    }
    let key = match key {
        "source.ip" | "remote.ip" => {
            if key == "remote.ip" {
                report.warn(
                    &f.key("key"),
                    "remote.ip is read as source.ip (no proxy in front)",
                );
            }
            check_ips(c, f, report);
            ConditionKey::SourceIp
        }
        "destination.ip" => {
            check_ips(c, f, report);
            ConditionKey::DestinationIp
        }
        "destination.port" => {
            ports(&c.values, &f.key("values"), report);
            ports(&c.not_values, &f.key("notValues"), report);
            ConditionKey::DestinationPort
        }
        "source.principal" => ConditionKey::SourcePrincipal,
        "source.namespace" => ConditionKey::SourceNamespace,
        "connection.sni" => ConditionKey::ConnectionSni,
        k => {
            if let Some(name) = k
                .strip_prefix("request.headers[")
                .and_then(|h| h.strip_suffix(']'))
            {
                if name.is_empty() {
                    report.error(&f.key("key"), "header name must not be empty");
                    return None;
                }
                ConditionKey::RequestHeader(name.to_ascii_lowercase())
            } else if UNSUPPORTED_KEYS.iter().any(|u| k.starts_with(u)) {
                report.warn(
                    &f.key("key"),
                    format!("{k} is not supported (no RequestAuthentication); it never matches an ALLOW rule and always matches a DENY rule"),
                );
                ConditionKey::Unsupported(k.to_owned())
            } else {
                report.error(&f.key("key"), format!("unknown condition key {k:?}"));
                return None;
            }
        }
    };
    Some(AuthzCondition {
        key,
        values: patterns(&c.values),
        not_values: patterns(&c.not_values),
    })
}

fn check_ips(c: &r::Condition, f: &Field, report: &mut Reporter<'_>) {
    ip_blocks(&c.values, &f.key("values"), report);
    ip_blocks(&c.not_values, &f.key("notValues"), report);
}
