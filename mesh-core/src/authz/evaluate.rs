//! Istio's evaluation order and match semantics for AuthorizationPolicy.

use std::net::IpAddr;

use super::decision::{Decision, Reason, RuleRef};
use super::request::AuthzRequest;
use crate::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, ConditionKey,
    IpBlock, ServiceAccount, StringPattern, trust_domain_matches,
};

/// Decides whether `req` may pass `policies` (the AuthorizationPolicies that select this
/// workload), in Istio's order
/// (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>):
///
/// 1. If any DENY policy matches, deny (naming the policy and rule).
/// 2. If no ALLOW policy applies to the workload, allow.
/// 3. If any ALLOW policy matches, allow (naming the policy and rule).
/// 4. Otherwise deny: ALLOW policies exist and none matched.
///
/// AUDIT policies never change the verdict; every matching one is named in
/// [`Decision::audit`]. CUSTOM policies are not in the model.
///
/// A policy matches when any of its rules does; an ALLOW policy with no rules matches nothing,
/// and a rule `{}` matches everything. Within a rule, `from`, `to` and `when` must all hold; any
/// entry of `from` (and of `to`) may; within one source or operation, every field that is set
/// must hold: the positive list any-of, the `not` list none-of.
///
/// - **Service accounts and trust domains** are read from the principal as istiod's matchers
///   read it ([`ServiceAccount::matches`], [`trust_domain_matches`]).
/// - **Plaintext peers** (no principal) match no `principals` or `namespaces` pattern, not even
///   `*`, and therefore match every `notPrincipals` / `notNamespaces`: Istio documents
///   `principals: ["*"]` as "requires mTLS", and a DENY with `notPrincipals: ["*"]` as refusing
///   plaintext. The same holds for a `when` key with no value (a missing header, no SNI):
///   `values` do not match, `notValues` do.
/// - **Hosts** compare case-insensitively; a pattern matches the authority as sent or the
///   authority without its `:port`, so `example.com` matches `Example.COM:8080`.
/// - **Ports** compare with the connection's destination port; **methods** and **paths** are
///   case-sensitive (paths are the [`normalize_path`](super::normalize_path) form).
///
/// **Failing closed.** What mesh cannot evaluate — `requestPrincipals` / `notRequestPrincipals`
/// (no JWT support), a [`ConditionKey::Unsupported`] key (which is also how the Istio
/// translation marks every field it could not read or cannot enforce), a `when` IP, port or
/// service-account value that does not read, an address the server did not supply — never
/// matches in an ALLOW rule and always matches in a DENY (and AUDIT) rule, so such a rule can
/// only make mesh refuse more. This is what Istio does with a field a proxy cannot enforce: on TCP traffic it
/// drops an ALLOW rule that uses HTTP-only fields and keeps a DENY rule with those fields
/// removed, i.e. matching more
/// (<https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/>, "Istio ignores …
/// fields that only apply to HTTP", "the DENY policy … more restrictive").
pub fn evaluate<'p>(policies: &'p [AuthzPolicy], req: &AuthzRequest<'_>) -> Decision<'p> {
    let mut audit = Vec::new();
    for policy in policies.iter().filter(|p| p.action == AuthzAction::Audit) {
        if matching_rule(policy, req).is_some() {
            audit.push(policy.name.as_str());
        }
    }
    for policy in policies.iter().filter(|p| p.action == AuthzAction::Deny) {
        if let Some(rule) = matching_rule(policy, req) {
            return Decision {
                reason: Reason::DenyMatched,
                rule: Some(rule),
                audit,
            };
        }
    }
    let mut any_allow = false;
    for policy in policies.iter().filter(|p| p.action == AuthzAction::Allow) {
        any_allow = true;
        if let Some(rule) = matching_rule(policy, req) {
            return Decision {
                reason: Reason::AllowMatched,
                rule: Some(rule),
                audit,
            };
        }
    }
    let reason = if any_allow {
        Reason::NoAllowMatched
    } else {
        Reason::NoAllowPolicy
    };
    Decision {
        reason,
        rule: None,
        audit,
    }
}

/// The first rule of `policy` that matches.
fn matching_rule<'p>(policy: &'p AuthzPolicy, req: &AuthzRequest<'_>) -> Option<RuleRef<'p>> {
    let m = Matcher {
        req,
        unknown: policy.action != AuthzAction::Allow,
    };
    let rule = policy.rules.iter().position(|r| m.rule(r))?;
    Some(RuleRef {
        policy: &policy.name,
        rule,
    })
}

/// Matches one policy's rules; `unknown` is the answer for what cannot be evaluated (false for
/// ALLOW, true for DENY and AUDIT).
struct Matcher<'r, 'a> {
    req: &'r AuthzRequest<'a>,
    unknown: bool,
}

impl Matcher<'_, '_> {
    fn rule(&self, rule: &AuthzRule) -> bool {
        (rule.from.is_empty() || rule.from.iter().any(|s| self.source(s)))
            && (rule.to.is_empty() || rule.to.iter().any(|o| self.operation(o)))
            && rule.when.iter().all(|c| self.condition(c))
    }

    fn source(&self, s: &AuthzSource) -> bool {
        let req = self.req;
        let ip = |blocks: &[IpBlock]| {
            req.source_ip
                .map(|ip| blocks.iter().any(|b| b.contains(ip)))
        };
        either(&s.principals, &s.not_principals, |p| {
            optional(req.source_principal, p)
        }) && either(&s.namespaces, &s.not_namespaces, |p| {
            optional(req.source_namespace, p)
        }) && either(&s.service_accounts, &s.not_service_accounts, |sa| {
            req.source_principal.is_some_and(|p| sa.matches(p))
        }) && either(&s.trust_domains, &s.not_trust_domains, |td| {
            req.source_principal
                .is_some_and(|p| trust_domain_matches(td, p))
        }) && (s.ip_blocks.is_empty() || ip(&s.ip_blocks).unwrap_or(self.unknown))
            && (s.not_ip_blocks.is_empty() || ip(&s.not_ip_blocks).map_or(self.unknown, |m| !m))
            && (s.request_principals.is_empty() || self.unknown)
            && (s.not_request_principals.is_empty() || self.unknown)
    }

    fn operation(&self, o: &AuthzOperation) -> bool {
        let req = self.req;
        let port = |ports: &[u16]| req.destination_port.map(|p| ports.contains(&p));
        // No authority (HTTP/1.0 without `Host`) is absent, like a plaintext principal.
        let has_authority = !req.authority.is_empty();
        either(&o.hosts, &o.not_hosts, |p| {
            has_authority
                && (matches_ignore_case(p, req.authority) || matches_ignore_case(p, req.host()))
        }) && (o.ports.is_empty() || port(&o.ports).unwrap_or(self.unknown))
            && (o.not_ports.is_empty() || port(&o.not_ports).map_or(self.unknown, |m| !m))
            && either(&o.methods, &o.not_methods, |p| p.matches(req.method))
            && either(&o.paths, &o.not_paths, |p| p.matches(req.path))
    }

    fn condition(&self, c: &AuthzCondition) -> bool {
        let req = self.req;
        match &c.key {
            ConditionKey::RequestHeader(name) => {
                let any = |patterns: &[StringPattern]| {
                    req.headers
                        .any_value(name, &mut |v| patterns.iter().any(|p| p.matches(v)))
                };
                (c.values.is_empty() || any(&c.values))
                    && (c.not_values.is_empty() || !any(&c.not_values))
            }
            ConditionKey::SourcePrincipal => either(&c.values, &c.not_values, |p| {
                optional(req.source_principal, p)
            }),
            ConditionKey::SourceNamespace => either(&c.values, &c.not_values, |p| {
                optional(req.source_namespace, p)
            }),
            ConditionKey::SourceServiceAccount => {
                // Values were checked when translated; one that does not read as `ns/name`
                // cannot be evaluated.
                let p = req.source_principal;
                let test = |v: &StringPattern| match v {
                    StringPattern::Exact(s) => {
                        ServiceAccount::parse(s, "").map(|sa| p.is_some_and(|p| sa.matches(p)))
                    }
                    _ => None,
                };
                let all = |vs: &[StringPattern]| -> Option<bool> {
                    let mut hit = false;
                    for v in vs {
                        hit |= test(v)?;
                    }
                    Some(hit)
                };
                match (all(&c.values), all(&c.not_values)) {
                    (Some(pos), Some(neg)) => (c.values.is_empty() || pos) && !neg,
                    _ => self.unknown,
                }
            }
            ConditionKey::SourceTrustDomain => either(&c.values, &c.not_values, |td| {
                req.source_principal
                    .is_some_and(|p| trust_domain_matches(td, p))
            }),
            ConditionKey::ConnectionSni => {
                either(&c.values, &c.not_values, |p| optional(req.sni, p))
            }
            ConditionKey::SourceIp => self.typed(c, req.source_ip, ip_value),
            ConditionKey::DestinationIp => self.typed(c, req.destination_ip, ip_value),
            ConditionKey::DestinationPort => self.typed(c, req.destination_port, port_value),
            ConditionKey::Unsupported(_) => self.unknown,
        }
    }

    /// A condition whose values must be parsed (CIDR blocks, port numbers); an unknown request
    /// value or an unreadable condition value is `unknown`.
    fn typed<T: Copy>(
        &self,
        c: &AuthzCondition,
        value: Option<T>,
        test: fn(&StringPattern, T) -> Option<bool>,
    ) -> bool {
        let Some(value) = value else {
            return self.unknown;
        };
        let any = |patterns: &[StringPattern]| -> Option<bool> {
            let mut hit = false;
            for p in patterns {
                hit |= test(p, value)?;
            }
            Some(hit)
        };
        let pos = if c.values.is_empty() {
            Some(true)
        } else {
            any(&c.values)
        };
        let neg = if c.not_values.is_empty() {
            Some(true)
        } else {
            any(&c.not_values).map(|m| !m)
        };
        match (pos, neg) {
            (Some(pos), Some(neg)) => pos && neg,
            _ => self.unknown,
        }
    }
}

/// Positive list any-of (or empty), negative list none-of (or empty).
fn either<T>(pos: &[T], neg: &[T], m: impl Fn(&T) -> bool) -> bool {
    (pos.is_empty() || pos.iter().any(&m)) && !neg.iter().any(&m)
}

/// A pattern against a value that may be absent: absent matches nothing, not even `*`.
fn optional(value: Option<&str>, p: &StringPattern) -> bool {
    value.is_some_and(|v| p.matches(v))
}

/// A `when` IP value: an address or CIDR block, written as an exact string.
fn ip_value(p: &StringPattern, ip: IpAddr) -> Option<bool> {
    match p {
        StringPattern::Exact(s) => IpBlock::parse(s).map(|b| b.contains(ip)),
        _ => None,
    }
}

/// A `when` port value: a port number, written as an exact string.
fn port_value(p: &StringPattern, port: u16) -> Option<bool> {
    match p {
        StringPattern::Exact(s) => s.parse::<u16>().ok().map(|v| v == port),
        _ => None,
    }
}

/// [`StringPattern::matches`], ignoring ASCII case (hosts).
fn matches_ignore_case(p: &StringPattern, v: &str) -> bool {
    let v = v.as_bytes();
    match p {
        StringPattern::Exact(s) => v.eq_ignore_ascii_case(s.as_bytes()),
        StringPattern::Prefix(s) => v
            .get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s.as_bytes())),
        StringPattern::Suffix(s) => v
            .len()
            .checked_sub(s.len())
            .and_then(|at| v.get(at..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(s.as_bytes())),
        StringPattern::Any => true,
    }
}
