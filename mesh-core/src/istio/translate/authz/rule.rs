//! One AuthorizationPolicy rule: `from[].source`, `to[].operation`, `when[]`.
//!
//! Value checks follow istiod's `ValidateAuthorizationPolicy` (`pkg/config/validation`) and
//! `pkg/config/security` (`CheckEmptyValues`, `CheckServiceAccount`, `CheckTrustDomainValues`,
//! `ValidateIPs`, `ValidatePorts`). A field with a value mesh cannot read is left out and the
//! rule fails closed on it ([`fail_closed`]); leaving out a whole field (never one value of a
//! list) is what keeps a DENY rule from narrowing.

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::{FAILS_CLOSED, PolicyScope, fail_closed, when};
use crate::model::{
    AuthzOperation, AuthzRule, AuthzSource, IpBlock, ServiceAccount, StringPattern,
};

/// istiod's limit on `serviceAccounts` values per list (`security.CheckServiceAccount`).
const MAX_SERVICE_ACCOUNTS: usize = 16;
/// istiod's limit on one `serviceAccounts` value, in bytes.
const MAX_SERVICE_ACCOUNT_LEN: usize = 320;

pub(super) fn translate_rule(
    rule: &r::Rule,
    f: &Field,
    scope: &PolicyScope<'_>,
    report: &mut Reporter<'_>,
) -> AuthzRule {
    let mut out = AuthzRule::default();
    for (i, from) in rule.from.iter().enumerate() {
        let sf = f.key("from").index(i).key("source");
        let source = match &from.source {
            Some(s) if !s.is_empty() => source(s, &sf, scope, &mut out, report),
            Some(_) => {
                fail_closed(&mut out, &sf, "source must not be empty", report);
                AuthzSource::default()
            }
            None => {
                fail_closed(&mut out, &sf, "source is required", report);
                AuthzSource::default()
            }
        };
        out.from.push(source);
    }
    for (i, to) in rule.to.iter().enumerate() {
        let of = f.key("to").index(i).key("operation");
        let op = match &to.operation {
            Some(o) if !o.is_empty() => operation(o, &of, &mut out, report),
            Some(_) => {
                fail_closed(&mut out, &of, "operation must not be empty", report);
                AuthzOperation::default()
            }
            None => {
                fail_closed(&mut out, &of, "operation is required", report);
                AuthzOperation::default()
            }
        };
        out.to.push(op);
    }
    for (i, c) in rule.when.iter().enumerate() {
        when::condition(c, &f.key("when").index(i), scope, &mut out, report);
    }
    out
}

fn source(
    s: &r::Source,
    sf: &Field,
    scope: &PolicyScope<'_>,
    out: &mut AuthzRule,
    report: &mut Reporter<'_>,
) -> AuthzSource {
    let mut check = Checker { out, report };
    let principals = |v: &[String]| scope.bundle.replace_aliases(v);
    let mut src = AuthzSource {
        principals: check.patterns(&principals(&s.principals), &sf.key("principals")),
        not_principals: check.patterns(&principals(&s.not_principals), &sf.key("notPrincipals")),
        namespaces: check.patterns(&s.namespaces, &sf.key("namespaces")),
        not_namespaces: check.patterns(&s.not_namespaces, &sf.key("notNamespaces")),
        ip_blocks: check.ip_blocks(&s.ip_blocks, &sf.key("ipBlocks")),
        not_ip_blocks: check.ip_blocks(&s.not_ip_blocks, &sf.key("notIpBlocks")),
        request_principals: Vec::new(),
        not_request_principals: Vec::new(),
        service_accounts: check.service_accounts(
            &s.service_accounts,
            &sf.key("serviceAccounts"),
            scope.namespace,
        ),
        not_service_accounts: check.service_accounts(
            &s.not_service_accounts,
            &sf.key("notServiceAccounts"),
            scope.namespace,
        ),
        trust_domains: check.trust_domains(
            &scope.bundle.expand(&s.trust_domains),
            &sf.key("trustDomains"),
        ),
        not_trust_domains: check.trust_domains(
            &scope.bundle.expand(&s.not_trust_domains),
            &sf.key("notTrustDomains"),
        ),
    };
    if !s.remote_ip_blocks.is_empty() || !s.not_remote_ip_blocks.is_empty() {
        check.report.warn(
            &sf.key("remoteIpBlocks"),
            "mesh has no proxy in front of it: the remote IP is the peer IP, so these are read as ipBlocks",
        );
        src.ip_blocks
            .extend(check.ip_blocks(&s.remote_ip_blocks, &sf.key("remoteIpBlocks")));
        src.not_ip_blocks
            .extend(check.ip_blocks(&s.not_remote_ip_blocks, &sf.key("notRemoteIpBlocks")));
    }
    let sa_set = !s.service_accounts.is_empty() || !s.not_service_accounts.is_empty();
    let id_set = [
        &s.principals,
        &s.not_principals,
        &s.namespaces,
        &s.not_namespaces,
    ]
    .iter()
    .any(|v| !v.is_empty());
    if sa_set && id_set {
        // istiod refuses the combination; keep principals/namespaces, drop the accounts.
        fail_closed(
            check.out,
            &sf.key("serviceAccounts"),
            "serviceAccounts cannot be set with principals or namespaces",
            check.report,
        );
        src.service_accounts.clear();
        src.not_service_accounts.clear();
    }
    // JWT identities need RequestAuthentication, which mesh does not implement. The model
    // keeps them and the evaluator treats them as unknown (see `authz::evaluate`).
    for (values, key) in [
        (&s.request_principals, "requestPrincipals"),
        (&s.not_request_principals, "notRequestPrincipals"),
    ] {
        if !values.is_empty() {
            check.report.error(
                &sf.key(key),
                "request principals come from JWTs and mesh has no RequestAuthentication; this source fails closed (in ALLOW it never matches, in DENY and AUDIT it matches on its other fields)",
            );
        }
    }
    src.request_principals = plain(&s.request_principals);
    src.not_request_principals = plain(&s.not_request_principals);
    src
}

fn operation(
    o: &r::Operation,
    of: &Field,
    out: &mut AuthzRule,
    report: &mut Reporter<'_>,
) -> AuthzOperation {
    let mut check = Checker { out, report };
    AuthzOperation {
        hosts: check.patterns(&o.hosts, &of.key("hosts")),
        not_hosts: check.patterns(&o.not_hosts, &of.key("notHosts")),
        ports: check.ports(&o.ports, &of.key("ports")),
        not_ports: check.ports(&o.not_ports, &of.key("notPorts")),
        methods: check.patterns(&o.methods, &of.key("methods")),
        not_methods: check.patterns(&o.not_methods, &of.key("notMethods")),
        paths: check.paths(&o.paths, &of.key("paths")),
        not_paths: check.paths(&o.not_paths, &of.key("notPaths")),
    }
}

fn plain(values: &[String]) -> Vec<StringPattern> {
    values.iter().map(|v| StringPattern::parse(v)).collect()
}

/// Reads field values; a field with an unreadable value is reported, left out (empty) and
/// the rule fails closed on it.
pub(super) struct Checker<'o, 'r, 'a> {
    pub(super) out: &'o mut AuthzRule,
    pub(super) report: &'r mut Reporter<'a>,
}

impl Checker<'_, '_, '_> {
    fn all<T>(
        &mut self,
        values: &[String],
        field: &Field,
        read: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match read(v) {
                Ok(t) => out.push(t),
                Err(why) => {
                    fail_closed(self.out, &field.index(i), why, self.report);
                    return Vec::new();
                }
            }
        }
        out
    }

    /// Strings with Istio's `*` forms; empty values refused (`CheckEmptyValues`).
    pub(super) fn patterns(&mut self, values: &[String], field: &Field) -> Vec<StringPattern> {
        self.all(values, field, |v| {
            if v.is_empty() {
                Err("empty value not allowed".into())
            } else {
                Ok(StringPattern::parse(v))
            }
        })
    }

    /// Paths; Envoy's URI templates (`{*}`, `{**}`) are not implemented.
    fn paths(&mut self, values: &[String], field: &Field) -> Vec<StringPattern> {
        self.all(values, field, |v| {
            if v.is_empty() {
                Err("empty value not allowed".into())
            } else if v.contains('{') || v.contains('}') {
                Err(format!(
                    "{v:?}: path templates ({{*}}, {{**}}) are not supported; {FAILS_CLOSED}"
                ))
            } else {
                Ok(StringPattern::parse(v))
            }
        })
    }

    pub(super) fn ip_blocks(&mut self, values: &[String], field: &Field) -> Vec<IpBlock> {
        self.all(values, field, |v| {
            IpBlock::parse(v).ok_or_else(|| format!("{v:?} is not an IP address or CIDR block"))
        })
    }

    pub(super) fn ports(&mut self, values: &[String], field: &Field) -> Vec<u16> {
        self.all(values, field, |v| match v.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("{v:?} is not a port number 1..65535")),
        })
    }

    pub(super) fn service_accounts(
        &mut self,
        values: &[String],
        field: &Field,
        namespace: &str,
    ) -> Vec<ServiceAccount> {
        if values.len() > MAX_SERVICE_ACCOUNTS {
            fail_closed(
                self.out,
                field,
                format!("at most {MAX_SERVICE_ACCOUNTS} service accounts are allowed"),
                self.report,
            );
            return Vec::new();
        }
        self.all(values, field, |v| service_account(v, namespace))
    }

    pub(super) fn trust_domains(&mut self, values: &[String], field: &Field) -> Vec<StringPattern> {
        self.all(values, field, |v| {
            wildcard(v)?;
            if v.contains('/') {
                return Err(format!("trust domain {v:?} must not contain '/'"));
            }
            Ok(StringPattern::parse(v))
        })
    }
}

/// istiod's `CheckServiceAccount` for one value, then the value read.
fn service_account(v: &str, namespace: &str) -> Result<ServiceAccount, String> {
    if v.contains('*') {
        return Err(format!(
            "{v:?}: wildcards are not allowed in service accounts"
        ));
    }
    if v.len() > MAX_SERVICE_ACCOUNT_LEN {
        return Err(format!(
            "service account is longer than {MAX_SERVICE_ACCOUNT_LEN} characters"
        ));
    }
    ServiceAccount::parse(v, namespace).ok_or_else(|| {
        format!("expected 'serviceAccount' or 'namespace/serviceAccount', found {v:?}")
    })
}

/// istiod's `CheckWildcardValues` for one value: non-empty, at most one `*`, at an end.
pub(super) fn wildcard(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("empty value not allowed".into());
    }
    let stars = v.matches('*').count();
    if stars > 1 {
        return Err(format!("at most one wildcard is allowed, found {v:?}"));
    }
    if stars == 1 && v != "*" && !v.starts_with('*') && !v.ends_with('*') {
        return Err(format!(
            "a wildcard is only allowed at the start or end, found {v:?}"
        ));
    }
    Ok(())
}
