//! Model → RBAC, shaped like istiod's generator: one RBAC policy per rule, permissions from
//! `to`, principals from `from`, each field an `or` of matchers (its `not` list a `not` of an
//! `or`), every `when` condition added to every permission or every principal.
//!
//! Two things go beyond istiod so that decoding gives back the same model: each `when`
//! condition is wrapped in its own one-element `and` (the decoder reads a nested `and` as a
//! rule-level condition), and a policy without rules gets one entry named after it that matches
//! nothing (`not any` permissions).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac, permission, principal, rbac::Action,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter::ConfigType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, PathMatcher, ValueMatcher, metadata_matcher::PathSegment,
    metadata_matcher::path_segment::Segment, path_matcher, value_matcher,
};
use mesh_core::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, ConditionKey,
    ServiceAccount, StringPattern,
};

use super::super::NodeKind;
use super::super::proto::pack;
use super::matchers::{
    SPIFFE, cidr, ip_value, namespace_regex, port_value, regex, service_account_regex,
    string_matcher, trust_domain_regex,
};
use super::{ALLOW_FILTER, AUDIT_FILTER, DENY_FILTER, ISTIO_AUTHN, REQUEST_PRINCIPAL};

/// See [`super::rbac_filters`].
pub(crate) fn rbac_filters(policies: &[AuthzPolicy], node: NodeKind) -> Vec<HttpFilter> {
    let mut out = Vec::new();
    for (action, name, rbac_action) in [
        (AuthzAction::Deny, DENY_FILTER, Action::Deny),
        (AuthzAction::Allow, ALLOW_FILTER, Action::Allow),
        (AuthzAction::Audit, AUDIT_FILTER, Action::Log),
    ] {
        if action == AuthzAction::Audit && node == NodeKind::ProxylessGrpc {
            continue;
        }
        let mut selected = policies.iter().filter(|p| p.action == action).peekable();
        if selected.peek().is_none() {
            continue;
        }
        let mut entries = HashMap::new();
        for p in selected {
            if p.rules.is_empty() {
                entries.insert(p.name.clone(), matches_nothing());
            }
            for (i, rule) in p.rules.iter().enumerate() {
                entries.insert(format!("{}-{i}", p.name), rule_policy(rule));
            }
        }
        let config = HttpRbac {
            rules: Some(Rbac {
                action: rbac_action as i32,
                policies: entries,
                audit_logging_options: None,
            }),
            ..Default::default()
        };
        out.push(HttpFilter {
            name: name.to_owned(),
            config_type: Some(ConfigType::TypedConfig(pack(&config))),
            ..Default::default()
        });
    }
    out
}

/// The entry standing for a policy without rules: it matches no request.
pub(super) fn matches_nothing() -> Policy {
    Policy {
        permissions: vec![perm_not(perm_any())],
        principals: vec![id_any()],
        ..Default::default()
    }
}

fn rule_policy(rule: &AuthzRule) -> Policy {
    let mut perm_conds = Vec::new();
    let mut id_conds = Vec::new();
    for c in &rule.when {
        match condition(c) {
            Side::Permission(p) => perm_conds.push(p),
            Side::Principal(p) => id_conds.push(p),
        }
    }
    let permissions = if rule.to.is_empty() {
        vec![if perm_conds.is_empty() {
            perm_any()
        } else {
            perm_and(perm_conds)
        }]
    } else {
        rule.to
            .iter()
            .map(|op| {
                let mut rules = operation(op);
                if rules.is_empty() {
                    rules.push(perm_any());
                }
                rules.extend(perm_conds.iter().cloned());
                perm_and(rules)
            })
            .collect()
    };
    let principals = if rule.from.is_empty() {
        vec![if id_conds.is_empty() {
            id_any()
        } else {
            id_and(id_conds)
        }]
    } else {
        rule.from
            .iter()
            .map(|s| {
                let mut ids = source(s);
                if ids.is_empty() {
                    ids.push(id_any());
                }
                ids.extend(id_conds.iter().cloned());
                id_and(ids)
            })
            .collect()
    };
    Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

fn operation(op: &AuthzOperation) -> Vec<Permission> {
    let mut out = Vec::new();
    field(&mut out, &op.hosts, &op.not_hosts, host, perm_or, perm_not);
    field(
        &mut out,
        &op.methods,
        &op.not_methods,
        |p| perm_header(header(":method", p)),
        perm_or,
        perm_not,
    );
    field(&mut out, &op.paths, &op.not_paths, path, perm_or, perm_not);
    field(
        &mut out,
        &op.ports,
        &op.not_ports,
        |p| port(*p),
        perm_or,
        perm_not,
    );
    out
}

fn source(s: &AuthzSource) -> Vec<Principal> {
    let mut out = Vec::new();
    field(
        &mut out,
        &s.principals,
        &s.not_principals,
        authenticated_principal,
        id_or,
        id_not,
    );
    field(
        &mut out,
        &s.request_principals,
        &s.not_request_principals,
        |p| metadata(REQUEST_PRINCIPAL, p),
        id_or,
        id_not,
    );
    field(
        &mut out,
        &s.namespaces,
        &s.not_namespaces,
        authenticated_namespace,
        id_or,
        id_not,
    );
    field(
        &mut out,
        &s.service_accounts,
        &s.not_service_accounts,
        authenticated_service_account,
        id_or,
        id_not,
    );
    field(
        &mut out,
        &s.trust_domains,
        &s.not_trust_domains,
        authenticated_trust_domain,
        id_or,
        id_not,
    );
    field(
        &mut out,
        &s.ip_blocks,
        &s.not_ip_blocks,
        |b| id(principal::Identifier::DirectRemoteIp(cidr(b))),
        id_or,
        id_not,
    );
    out
}

/// Appends `or(pos)` and `not(or(neg))` for the non-empty lists.
fn field<T, M>(
    out: &mut Vec<M>,
    pos: &[T],
    neg: &[T],
    leaf: impl Fn(&T) -> M,
    or: fn(Vec<M>) -> M,
    not: fn(M) -> M,
) {
    if !pos.is_empty() {
        out.push(or(pos.iter().map(&leaf).collect()));
    }
    if !neg.is_empty() {
        out.push(not(or(neg.iter().map(&leaf).collect())));
    }
}

/// Where a condition goes.
enum Side {
    Permission(Permission),
    Principal(Principal),
}

/// One condition, wrapped in its own `and`.
fn condition(c: &AuthzCondition) -> Side {
    let (pos, neg) = (c.values.as_slice(), c.not_values.as_slice());
    let ids = |leaf: &dyn Fn(&StringPattern) -> Principal| {
        let mut out = Vec::new();
        field(&mut out, pos, neg, leaf, id_or, id_not);
        Side::Principal(id_and(out))
    };
    match &c.key {
        ConditionKey::DestinationIp => match parsed(pos, neg, ip_value) {
            Some((p, n)) => Side::Permission(perm_and(list(&p, &n, |b| Permission {
                rule: Some(permission::Rule::DestinationIp(cidr(b))),
            }))),
            // Values mesh cannot read: the condition is never evaluated either way, so it
            // travels as a key mesh does not evaluate.
            None => ids(&|p| metadata("destination.ip", p)),
        },
        ConditionKey::DestinationPort => match parsed(pos, neg, port_value) {
            Some((p, n)) => Side::Permission(perm_and(list(&p, &n, |p| port(*p)))),
            None => ids(&|p| metadata("destination.port", p)),
        },
        ConditionKey::ConnectionSni => Side::Permission(perm_and(list(pos, neg, |p| Permission {
            rule: Some(permission::Rule::RequestedServerName(string_matcher(p, ""))),
        }))),
        ConditionKey::SourceIp => match parsed(pos, neg, ip_value) {
            Some((p, n)) => {
                let mut out = Vec::new();
                field(
                    &mut out,
                    &p,
                    &n,
                    |b| id(principal::Identifier::DirectRemoteIp(cidr(b))),
                    id_or,
                    id_not,
                );
                Side::Principal(id_and(out))
            }
            None => ids(&|p| metadata("source.ip", p)),
        },
        ConditionKey::SourcePrincipal => ids(&authenticated_principal),
        ConditionKey::SourceNamespace => ids(&authenticated_namespace),
        ConditionKey::SourceTrustDomain => ids(&authenticated_trust_domain),
        ConditionKey::SourceServiceAccount => {
            // Values are `ns/name`; one that is not cannot be evaluated, so it travels as a
            // key mesh does not evaluate (and fails closed on the other side too).
            let accounts = |vs: &[StringPattern]| {
                vs.iter()
                    .map(|p| match p {
                        StringPattern::Exact(v) => ServiceAccount::parse(v, ""),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
            };
            match (accounts(pos), accounts(neg)) {
                (Some(p), Some(n)) => {
                    let mut out = Vec::new();
                    field(
                        &mut out,
                        &p,
                        &n,
                        authenticated_service_account,
                        id_or,
                        id_not,
                    );
                    Side::Principal(id_and(out))
                }
                _ => ids(&|p| metadata("source.serviceAccount", p)),
            }
        }
        ConditionKey::RequestHeader(name) => {
            ids(&|p| id(principal::Identifier::Header(header(name, p))))
        }
        ConditionKey::Unsupported(key) => ids(&|p| metadata(key, p)),
    }
}

/// Both lists read with `f`, if every value reads.
#[allow(clippy::type_complexity)]
fn parsed<T>(
    pos: &[StringPattern],
    neg: &[StringPattern],
    f: fn(&StringPattern) -> Option<T>,
) -> Option<(Vec<T>, Vec<T>)> {
    let pos = pos.iter().map(f).collect::<Option<Vec<_>>>()?;
    let neg = neg.iter().map(f).collect::<Option<Vec<_>>>()?;
    Some((pos, neg))
}

/// The permission elements of one field.
fn list<T>(pos: &[T], neg: &[T], leaf: impl Fn(&T) -> Permission) -> Vec<Permission> {
    let mut out = Vec::new();
    field(&mut out, pos, neg, leaf, perm_or, perm_not);
    out
}

fn header(name: &str, p: &StringPattern) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(match p {
            StringPattern::Any => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
            _ => header_matcher::HeaderMatchSpecifier::StringMatch(string_matcher(p, "")),
        }),
        ..Default::default()
    }
}

fn host(p: &StringPattern) -> Permission {
    let mut h = header(":authority", p);
    if let Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)) =
        &mut h.header_match_specifier
    {
        m.ignore_case = true;
    }
    perm_header(h)
}

fn path(p: &StringPattern) -> Permission {
    Permission {
        rule: Some(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(string_matcher(p, ""))),
        })),
    }
}

fn port(p: u16) -> Permission {
    Permission {
        rule: Some(permission::Rule::DestinationPort(u32::from(p))),
    }
}

fn authenticated_principal(p: &StringPattern) -> Principal {
    authenticated(string_matcher(p, SPIFFE))
}

fn authenticated_service_account(sa: &ServiceAccount) -> Principal {
    authenticated(regex(service_account_regex(sa)))
}

fn authenticated_trust_domain(p: &StringPattern) -> Principal {
    authenticated(regex(trust_domain_regex(p)))
}

fn authenticated_namespace(p: &StringPattern) -> Principal {
    authenticated(regex(namespace_regex(p)))
}

fn authenticated(m: envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher) -> Principal {
    id(principal::Identifier::Authenticated(
        principal::Authenticated {
            principal_name: Some(m),
        },
    ))
}

/// A dynamic-metadata matcher on `istio_authn` (never set for mesh: it fails closed).
fn metadata(key: &str, p: &StringPattern) -> Principal {
    id(principal::Identifier::Metadata(MetadataMatcher {
        filter: ISTIO_AUTHN.to_owned(),
        path: vec![PathSegment {
            segment: Some(Segment::Key(key.to_owned())),
        }],
        value: Some(ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::StringMatch(string_matcher(
                p, "",
            ))),
        }),
        invert: false,
    }))
}

fn perm_header(h: HeaderMatcher) -> Permission {
    Permission {
        rule: Some(permission::Rule::Header(h)),
    }
}

fn perm_any() -> Permission {
    Permission {
        rule: Some(permission::Rule::Any(true)),
    }
}

fn perm_and(rules: Vec<Permission>) -> Permission {
    Permission {
        rule: Some(permission::Rule::AndRules(permission::Set { rules })),
    }
}

fn perm_or(rules: Vec<Permission>) -> Permission {
    Permission {
        rule: Some(permission::Rule::OrRules(permission::Set { rules })),
    }
}

fn perm_not(p: Permission) -> Permission {
    Permission {
        rule: Some(permission::Rule::NotRule(Box::new(p))),
    }
}

fn id(i: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(i),
    }
}

fn id_any() -> Principal {
    id(principal::Identifier::Any(true))
}

fn id_and(ids: Vec<Principal>) -> Principal {
    id(principal::Identifier::AndIds(principal::Set { ids }))
}

fn id_or(ids: Vec<Principal>) -> Principal {
    id(principal::Identifier::OrIds(principal::Set { ids }))
}

fn id_not(p: Principal) -> Principal {
    id(principal::Identifier::NotId(Box::new(p)))
}
