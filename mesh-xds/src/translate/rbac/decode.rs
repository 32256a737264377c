//! RBAC → model: filters into policies, entries into rules, our encoding and istiod's alike.

use envoy_types::pb::envoy::config::rbac::v3::{Policy, rbac::Action};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter::ConfigType,
};
use mesh_core::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, IpBlock,
    ServiceAccount, StringPattern,
};

use super::super::error::{Scope, XdsError};
use super::super::proto::unpack;
use super::encode::matches_nothing;
use super::tree::{Entry, Group, Slot, Tree, Value, elements, entry};

/// See [`super::decode_rbac_filters`].
pub(crate) fn decode_rbac_filters(
    filters: &[HttpFilter],
    path: &str,
    scope: &mut Scope,
) -> Result<Vec<AuthzPolicy>, XdsError> {
    let mut out = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        if is_ext_authz(f) {
            // istiod's CUSTOM action: an external service decides, and could deny.
            return Err(scope.error(
                format!("{path}[{i}]"),
                format!(
                    "filter {:?} is external authorization (AuthorizationPolicy CUSTOM), which mesh cannot call; refusing rather than allowing what it would deny",
                    f.name
                ),
            ));
        }
        let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
            continue;
        };
        if !super::is_rbac(f) {
            continue;
        }
        if f.disabled {
            // Enabled per route (not implemented): enforcing it everywhere only refuses more.
            scope.warn(
                format!("{path}[{i}].disabled"),
                format!(
                    "RBAC filter {:?} is disabled (enabled per route, which is not implemented); enforced on every route, failing closed",
                    f.name
                ),
            );
        }
        let fpath = format!("{path}[{i}].typed_config");
        let config: HttpRbac = unpack(any).map_err(|e| scope.error(&fpath, e))?;
        out.extend(filter(&f.name, &config, &fpath, scope)?);
    }
    let rank = |a: AuthzAction| match a {
        AuthzAction::Deny => 0,
        AuthzAction::Allow => 1,
        AuthzAction::Audit => 2,
    };
    out.sort_by_key(|p| rank(p.action));
    Ok(out)
}

/// The ext_authz filter, by name or by its typed config.
fn is_ext_authz(f: &HttpFilter) -> bool {
    const NAME: &str = "envoy.filters.http.ext_authz";
    const TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
    f.name == NAME
        || matches!(&f.config_type, Some(ConfigType::TypedConfig(any)) if any.type_url == TYPE)
}

fn filter(
    name: &str,
    config: &HttpRbac,
    path: &str,
    scope: &mut Scope,
) -> Result<Vec<AuthzPolicy>, XdsError> {
    if config.matcher.is_some() {
        return Err(scope.error(
            format!("{path}.matcher"),
            "the unified matcher API is not implemented; ignoring it would change the verdict",
        ));
    }
    if config.shadow_rules.is_some() {
        scope.warn(
            format!("{path}.shadow_rules"),
            "shadow rules (dry run) are not implemented; ignored",
        );
    }
    if config.shadow_matcher.is_some() {
        scope.warn(
            format!("{path}.shadow_matcher"),
            "shadow matchers (dry run) are not implemented; ignored",
        );
    }
    let residual = HttpRbac {
        rules: None,
        matcher: None,
        shadow_rules: None,
        shadow_matcher: None,
        ..config.clone()
    };
    scope.unsupported(path, &residual);
    let Some(rules) = &config.rules else {
        // No rules: the filter enforces nothing.
        return Ok(Vec::new());
    };
    let rpath = format!("{path}.rules");
    let action = match Action::try_from(rules.action) {
        Ok(Action::Allow) => AuthzAction::Allow,
        Ok(Action::Deny) => AuthzAction::Deny,
        Ok(Action::Log) => AuthzAction::Audit,
        Err(_) => {
            return Err(scope.error(
                format!("{rpath}.action"),
                format!("unknown action {}", rules.action),
            ));
        }
    };
    if rules.audit_logging_options.is_some() {
        scope.warn(
            format!("{rpath}.audit_logging_options"),
            "audit loggers are not implemented; ignored",
        );
    }
    if rules.policies.is_empty() {
        return Ok(match action {
            // An ALLOW filter without policies allows nothing.
            AuthzAction::Allow => vec![AuthzPolicy {
                name: name.to_owned(),
                action,
                rules: Vec::new(),
            }],
            _ => Vec::new(),
        });
    }
    let mut entries: Vec<(String, u64, &String, &Policy)> = rules
        .policies
        .iter()
        .map(|(key, p)| {
            if *p == matches_nothing() {
                return (key.clone(), 0, key, p);
            }
            let (name, index) = split_key(key);
            (name, index, key, p)
        })
        .collect();
    entries.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    let mut out: Vec<AuthzPolicy> = Vec::new();
    for (name, _, key, p) in entries {
        let ppath = format!("{rpath}.policies[{key:?}]");
        let rule = if *p == matches_nothing() {
            None
        } else {
            Some(rule(p, &ppath, scope)?)
        };
        match out.last_mut() {
            Some(last) if last.name == name => last.rules.extend(rule),
            _ => out.push(AuthzPolicy {
                name,
                action,
                rules: rule.into_iter().collect(),
            }),
        }
    }
    Ok(out)
}

/// `default/x-3` → (`default/x`, 3); istiod's `ns[default]-policy[x]-rule[3]` → (`default/x`,
/// 3); anything else is a policy with one rule.
fn split_key(key: &str) -> (String, u64) {
    let istiod = key
        .strip_prefix("ns[")
        .and_then(|k| k.split_once("]-policy["))
        .and_then(|(ns, rest)| {
            let (name, rule) = rest.rsplit_once("]-rule[")?;
            Some((ns, name, rule.strip_suffix(']')?.parse().ok()?))
        });
    if let Some((ns, name, index)) = istiod {
        return (format!("{ns}/{name}"), index);
    }
    match key.rsplit_once('-') {
        Some((name, index))
            if !name.is_empty()
                && !index.is_empty()
                && index.bytes().all(|b| b.is_ascii_digit()) =>
        {
            match index.parse() {
                Ok(i) => (name.to_owned(), i),
                Err(_) => (key.to_owned(), 0),
            }
        }
        _ => (key.to_owned(), 0),
    }
}

fn rule(p: &Policy, path: &str, scope: &mut Scope) -> Result<AuthzRule, XdsError> {
    if p.condition.is_some() || p.checked_condition.is_some() {
        return Err(scope.error(
            format!("{path}.condition"),
            "CEL conditions are not implemented; ignoring them would change the verdict",
        ));
    }
    let residual = Policy {
        permissions: Vec::new(),
        principals: Vec::new(),
        ..p.clone()
    };
    scope.unsupported(path, &residual);
    let (to, perm_when) = entries(
        &p.permissions,
        &format!("{path}.permissions"),
        "operations",
        scope,
    )?;
    let (from, id_when) = entries(
        &p.principals,
        &format!("{path}.principals"),
        "sources",
        scope,
    )?;
    let to = to
        .into_iter()
        .map(|e| operation(e, scope))
        .collect::<Result<_, _>>()?;
    let from = from
        .into_iter()
        .map(|e| source(e, scope))
        .collect::<Result<_, _>>()?;
    let mut when = id_when;
    when.extend(perm_when);
    Ok(AuthzRule { from, to, when })
}

/// Reads a permission or principal list: the entries standing for operations / sources (none
/// for "any") and the conditions they all carry.
fn entries<T: Tree + PartialEq>(
    list: &[T],
    path: &str,
    what: &str,
    scope: &mut Scope,
) -> Result<(Vec<Entry>, Vec<AuthzCondition>), XdsError> {
    if list.is_empty() {
        return Err(scope.error(
            path,
            "at least one is required (an empty list matches nothing)",
        ));
    }
    let read_all = |forced_tail: usize, scope: &mut Scope| -> Result<Vec<Entry>, XdsError> {
        let mut read = Vec::with_capacity(list.len());
        for (i, node) in list.iter().enumerate() {
            read.push(entry(node, &format!("{path}[{i}]"), forced_tail, scope)?);
        }
        Ok(read)
    };
    let differs = |read: &[Entry]| read.iter().position(|e| e.conditions != read[0].conditions);
    let warnings_before = scope.warnings.len();
    let mut read = read_all(0, scope)?;
    if let Some(i) = differs(&read) {
        // istiod appends the rule's conditions, bare, to every entry: where the first reading
        // put some of them in a still-empty field of one entry, read the elements that every
        // entry ends with as the conditions.
        let tail = common_tail(list);
        let retry = if tail > 0 {
            let mut probe = Scope::new(scope.kind, scope.name.clone());
            read_all(tail, &mut probe)
                .ok()
                .filter(|r| differs(r).is_none())
                .map(|r| (r, probe))
        } else {
            None
        };
        match retry {
            Some((r, probe)) => {
                scope.warnings.truncate(warnings_before);
                scope.warnings.extend(probe.warnings);
                read = r;
            }
            None => {
                return Err(scope.error(
                    format!("{path}[{i}]"),
                    format!(
                        "its conditions differ from those of {path}[0]: mesh cannot express a condition that only some {what} carry"
                    ),
                ));
            }
        }
    }
    let when = read[0].conditions.clone();
    if read.len() == 1 && !read[0].explicit {
        read.clear();
    }
    Ok((read, when))
}

/// How many elements every entry of `list` ends with, alike.
fn common_tail<T: Tree + PartialEq>(list: &[T]) -> usize {
    let lists: Vec<&[T]> = list.iter().map(elements).collect();
    let shortest = lists.iter().map(|l| l.len()).min().unwrap_or(0);
    (0..shortest)
        .take_while(|&k| {
            let first = &lists[0][lists[0].len() - 1 - k];
            lists.iter().all(|l| &l[l.len() - 1 - k] == first)
        })
        .count()
}

fn patterns(g: Group, scope: &Scope) -> Result<Vec<StringPattern>, XdsError> {
    g.values
        .into_iter()
        .map(|v| match v {
            Value::Pattern(p) => Ok(p),
            _ => Err(scope.error(&g.path, "unexpected value")),
        })
        .collect()
}

fn operation(e: Entry, scope: &Scope) -> Result<AuthzOperation, XdsError> {
    let mut op = AuthzOperation::default();
    for g in e.fields {
        match (&g.slot, g.negated) {
            (Slot::Ports, neg) => {
                let ports = g
                    .values
                    .iter()
                    .map(|v| match v {
                        Value::Port(p) => Ok(*p),
                        _ => Err(scope.error(&g.path, "unexpected value")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                *if neg {
                    &mut op.not_ports
                } else {
                    &mut op.ports
                } = ports;
            }
            (Slot::Hosts, false) => op.hosts = patterns(g, scope)?,
            (Slot::Hosts, true) => op.not_hosts = patterns(g, scope)?,
            (Slot::Methods, false) => op.methods = patterns(g, scope)?,
            (Slot::Methods, true) => op.not_methods = patterns(g, scope)?,
            (Slot::Paths, false) => op.paths = patterns(g, scope)?,
            (Slot::Paths, true) => op.not_paths = patterns(g, scope)?,
            _ => return Err(scope.error(&g.path, "not an operation field")),
        }
    }
    Ok(op)
}

fn source(e: Entry, scope: &Scope) -> Result<AuthzSource, XdsError> {
    let mut s = AuthzSource::default();
    for g in e.fields {
        match (&g.slot, g.negated) {
            (Slot::IpBlocks, neg) => {
                let blocks = g
                    .values
                    .iter()
                    .map(|v| match v {
                        Value::Ip(b) => Ok(*b),
                        _ => Err(scope.error(&g.path, "unexpected value")),
                    })
                    .collect::<Result<Vec<IpBlock>, _>>()?;
                *if neg {
                    &mut s.not_ip_blocks
                } else {
                    &mut s.ip_blocks
                } = blocks;
            }
            (Slot::Principals, false) => s.principals = patterns(g, scope)?,
            (Slot::Principals, true) => s.not_principals = patterns(g, scope)?,
            (Slot::Namespaces, false) => s.namespaces = patterns(g, scope)?,
            (Slot::Namespaces, true) => s.not_namespaces = patterns(g, scope)?,
            (Slot::RequestPrincipals, false) => s.request_principals = patterns(g, scope)?,
            (Slot::RequestPrincipals, true) => s.not_request_principals = patterns(g, scope)?,
            (Slot::TrustDomains, false) => s.trust_domains = patterns(g, scope)?,
            (Slot::TrustDomains, true) => s.not_trust_domains = patterns(g, scope)?,
            (Slot::ServiceAccounts, neg) => {
                let accounts = patterns(g.clone(), scope)?
                    .iter()
                    .map(|p| match p {
                        StringPattern::Exact(v) => ServiceAccount::parse(v, "")
                            .ok_or_else(|| scope.error(&g.path, "unexpected value")),
                        _ => Err(scope.error(&g.path, "unexpected value")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                *if neg {
                    &mut s.not_service_accounts
                } else {
                    &mut s.service_accounts
                } = accounts;
            }
            _ => return Err(scope.error(&g.path, "not a source field")),
        }
    }
    Ok(s)
}
