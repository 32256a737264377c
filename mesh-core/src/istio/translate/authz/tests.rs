//! One table per AuthorizationPolicy field: enforced (no error, and requests decided as istiod's
//! generated RBAC would decide them), or failing closed with an error naming the field (as
//! ALLOW the rule never matches, as DENY and AUDIT it matches).
//!
//! The policies go through the real loader (documents → typed decode → translate), but the
//! translated policies are read even when the load has errors, to check what the fail-closed
//! model would do if anything ran it.

use std::path::PathBuf;

use crate::BuildContext;
use crate::authz::{AuthzRequest, Reason, evaluate, namespace_of};
use crate::config::{Diagnostic, Severity};
use crate::istio::diag::Diagnostics;
use crate::istio::documents::read_documents;
use crate::istio::translate::build;
use crate::model::AuthzPolicy;

const SLEEP: &str = "cluster.local/ns/default/sa/sleep";
const HEADERS: &[(&str, &str)] = &[("x-env", "dev")];

fn request(principal: Option<&'static str>) -> AuthzRequest<'static> {
    AuthzRequest {
        source_principal: principal,
        source_namespace: principal.and_then(namespace_of),
        source_ip: Some("10.0.0.5".parse().unwrap()),
        destination_ip: Some("10.0.1.1".parse().unwrap()),
        destination_port: Some(8080),
        authority: "httpbin:8080",
        method: "GET",
        path: "/api",
        sni: Some("httpbin"),
        headers: &HEADERS,
    }
}

fn translate_with(spec: &str, ctx: &BuildContext) -> (Vec<AuthzPolicy>, Vec<Diagnostic>) {
    let yaml = format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: default}}\nspec:\n{spec}"
    );
    let mut diags = Diagnostics::default();
    let mut raw = Vec::new();
    read_documents(
        &[(PathBuf::from("p.yaml"), yaml)],
        "default",
        &mut diags,
        &mut raw,
    );
    let built = build(raw, ctx, &mut diags);
    (built.inbound.authorization, diags.into_vec())
}

fn translate(spec: &str) -> (Vec<AuthzPolicy>, Vec<Diagnostic>) {
    translate_with(spec, &BuildContext::default())
}

fn errors(d: &[Diagnostic]) -> Vec<&str> {
    d.iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.field.as_str())
        .collect()
}

/// Each spec sets one field mesh cannot enforce in a rule that otherwise matches the request.
/// `action` is prepended; the error must name `field`.
#[test]
fn unenforceable_fields_fail_closed_with_an_error() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "requestPrincipals (JWT, no RequestAuthentication)",
            "  rules: [{from: [{source: {requestPrincipals: ['*']}}]}]\n",
            "spec.rules[0].from[0].source.requestPrincipals",
        ),
        (
            "notRequestPrincipals",
            "  rules: [{from: [{source: {notRequestPrincipals: ['x/y']}}]}]\n",
            "spec.rules[0].from[0].source.notRequestPrincipals",
        ),
        (
            "when request.auth.claims",
            "  rules: [{when: [{key: 'request.auth.claims[groups]', values: [admin]}]}]\n",
            "spec.rules[0].when[0].key",
        ),
        (
            "when request.auth.principal",
            "  rules: [{when: [{key: request.auth.principal, notValues: [x]}]}]\n",
            "spec.rules[0].when[0].key",
        ),
        (
            "when request.auth.audiences",
            "  rules: [{when: [{key: request.auth.audiences, values: [x]}]}]\n",
            "spec.rules[0].when[0].key",
        ),
        (
            "when request.auth.presenter",
            "  rules: [{when: [{key: request.auth.presenter, values: [x]}]}]\n",
            "spec.rules[0].when[0].key",
        ),
        (
            "when experimental.envoy.filters",
            "  rules: [{when: [{key: 'experimental.envoy.filters.a[b]', values: [x]}]}]\n",
            "spec.rules[0].when[0].key",
        ),
        (
            "when unknown key",
            "  rules: [{when: [{key: 'destination.labels[app]', values: [x]}]}]\n",
            "spec.rules[0].when[0].key",
        ),
        (
            "when without key",
            "  rules: [{when: [{values: [x]}]}]\n",
            "spec.rules[0].when[0].key",
        ),
        (
            "when without values",
            "  rules: [{when: [{key: source.ip}]}]\n",
            "spec.rules[0].when[0]",
        ),
        (
            "when header without name",
            "  rules: [{when: [{key: 'request.headers[]', values: [x]}]}]\n",
            "spec.rules[0].when[0].key",
        ),
        (
            "when source.ip not an address",
            "  rules: [{when: [{key: source.ip, notValues: ['10.0.0.5', nope]}]}]\n",
            "spec.rules[0].when[0].notValues[1]",
        ),
        (
            "when destination.port not a port",
            "  rules: [{when: [{key: destination.port, notValues: ['http']}]}]\n",
            "spec.rules[0].when[0].notValues[0]",
        ),
        (
            "when source.serviceAccount malformed",
            "  rules: [{when: [{key: source.serviceAccount, notValues: ['a/b/c']}]}]\n",
            "spec.rules[0].when[0].notValues[0]",
        ),
        (
            "when source.trustDomain two wildcards",
            "  rules: [{when: [{key: source.trustDomain, notValues: ['*a*']}]}]\n",
            "spec.rules[0].when[0].notValues[0]",
        ),
        (
            "to.operation.paths template",
            "  rules: [{to: [{operation: {notPaths: ['/api/{*}']}}]}]\n",
            "spec.rules[0].to[0].operation.notPaths[0]",
        ),
        (
            "to.operation.ports not a port",
            "  rules: [{to: [{operation: {notPorts: ['8080', x]}}]}]\n",
            "spec.rules[0].to[0].operation.notPorts[1]",
        ),
        (
            "to.operation.hosts empty value",
            "  rules: [{to: [{operation: {notHosts: ['']}}]}]\n",
            "spec.rules[0].to[0].operation.notHosts[0]",
        ),
        (
            "to.operation missing",
            "  rules: [{to: [{}]}]\n",
            "spec.rules[0].to[0].operation",
        ),
        (
            "to.operation empty",
            "  rules: [{to: [{operation: {}}]}]\n",
            "spec.rules[0].to[0].operation",
        ),
        (
            "from.source missing",
            "  rules: [{from: [{}]}]\n",
            "spec.rules[0].from[0].source",
        ),
        (
            "from.source empty",
            "  rules: [{from: [{source: {}}]}]\n",
            "spec.rules[0].from[0].source",
        ),
        (
            "ipBlocks not an address",
            "  rules: [{from: [{source: {notIpBlocks: ['10.0.0.5', garbage]}}]}]\n",
            "spec.rules[0].from[0].source.notIpBlocks[1]",
        ),
        (
            "remoteIpBlocks not an address",
            "  rules: [{from: [{source: {notRemoteIpBlocks: [garbage]}}]}]\n",
            "spec.rules[0].from[0].source.notRemoteIpBlocks[0]",
        ),
        (
            "serviceAccounts with principals",
            "  rules: [{from: [{source: {principals: ['*'], notServiceAccounts: [default/sleep]}}]}]\n",
            "spec.rules[0].from[0].source.serviceAccounts",
        ),
        (
            "serviceAccounts wildcard",
            "  rules: [{from: [{source: {notServiceAccounts: ['default/*']}}]}]\n",
            "spec.rules[0].from[0].source.notServiceAccounts[0]",
        ),
        (
            "serviceAccounts over 16",
            "  rules: [{from: [{source: {notServiceAccounts: [s1,s2,s3,s4,s5,s6,s7,s8,s9,s10,s11,s12,s13,s14,s15,s16,s17]}}]}]\n",
            "spec.rules[0].from[0].source.notServiceAccounts",
        ),
        (
            "trustDomains with a slash",
            "  rules: [{from: [{source: {notTrustDomains: ['cluster.local/ns']}}]}]\n",
            "spec.rules[0].from[0].source.notTrustDomains[0]",
        ),
        (
            "trustDomains wildcard in the middle",
            "  rules: [{from: [{source: {notTrustDomains: ['a*b']}}]}]\n",
            "spec.rules[0].from[0].source.notTrustDomains[0]",
        ),
        (
            "principals empty value",
            "  rules: [{from: [{source: {notPrincipals: ['']}}]}]\n",
            "spec.rules[0].from[0].source.notPrincipals[0]",
        ),
    ];
    for (name, spec, field) in cases {
        for action in ["ALLOW", "DENY", "AUDIT"] {
            let (policies, diags) = translate(&format!("  action: {action}\n{spec}"));
            assert!(
                errors(&diags).contains(field),
                "{name} ({action}): expected an error at {field}, got {diags:#?}"
            );
            let req = request(Some(SLEEP));
            let d = evaluate(&policies, &req);
            match action {
                "ALLOW" => assert_eq!(d.reason, Reason::NoAllowMatched, "{name}: {policies:?}"),
                "DENY" => assert_eq!(d.reason, Reason::DenyMatched, "{name}: {policies:?}"),
                _ => assert!(d.should_audit(), "{name}: {policies:?}"),
            }
        }
    }
}

/// CUSTOM (ext_authz) is kept as a DENY of its rules: what the provider could deny, mesh denies.
#[test]
fn custom_action_is_enforced_as_deny() {
    let (policies, diags) = translate(
        "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{to: [{operation: {paths: [/admin]}}]}]\n",
    );
    assert_eq!(errors(&diags), ["spec.action"]);
    let mut req = request(Some(SLEEP));
    assert_eq!(evaluate(&policies, &req).reason, Reason::NoAllowPolicy);
    req.path = "/admin";
    assert_eq!(evaluate(&policies, &req).reason, Reason::DenyMatched);
}

/// `targetRef(s)` cannot be resolved: the policy applies here, ALLOW matching nothing.
#[test]
fn target_refs_fail_closed() {
    for target in [
        "targetRef: {kind: Service, group: '', name: other}",
        "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]",
    ] {
        let field = if target.starts_with("targetRefs") {
            "spec.targetRefs"
        } else {
            "spec.targetRef"
        };
        let (policies, diags) = translate(&format!("  {target}\n  rules: [{{}}]\n"));
        assert_eq!(errors(&diags), [field]);
        let d = evaluate(&policies, &request(Some(SLEEP)));
        assert_eq!(d.reason, Reason::NoAllowMatched, "{target}");
        let (policies, _) = translate(&format!("  action: DENY\n  {target}\n  rules: [{{}}]\n"));
        let d = evaluate(&policies, &request(Some(SLEEP)));
        assert_eq!(d.reason, Reason::DenyMatched, "{target}");
    }
    let (_, diags) = translate(
        "  selector: {matchLabels: {app: x}}\n  targetRef: {kind: Service, group: '', name: x}\n  rules: [{}]\n",
    );
    assert_eq!(errors(&diags), ["spec.targetRef", "spec.selector"]);
}

/// The rest of the resource-level checks istiod makes.
#[test]
fn provider_without_custom_and_deny_without_rules_are_errors() {
    let (_, diags) = translate("  action: ALLOW\n  provider: {name: ext}\n  rules: [{}]\n");
    assert_eq!(errors(&diags), ["spec.provider"]);
    let (_, diags) = translate("  action: DENY\n");
    assert_eq!(errors(&diags), ["spec.rules"]);
}

/// Fields that are enforced: an ALLOW policy with the rule, and for each request whether it is
/// let in. The expected answers are those of istiod's generated matchers
/// (`pilot/pkg/security/authz/model/generator.go`), named per case.
#[test]
fn enforced_source_fields() {
    const OTHER_NS: &str = "cluster.local/ns/prod/sa/sleep";
    const OTHER_TD: &str = "other.td/ns/default/sa/sleep";
    const EXTRA: &str = "cluster.local/ns/default/x/sa/sleep/y";
    type Case = (
        &'static str,
        &'static str,
        &'static [(Option<&'static str>, bool)],
    );
    let cases: &[Case] = &[
        // srcServiceAccountGenerator: `ns/sa`, any trust domain, extra segments allowed.
        (
            "serviceAccounts ns/sa",
            "serviceAccounts: [default/sleep]",
            &[
                (Some(SLEEP), true),
                (Some(OTHER_TD), true),
                (Some(EXTRA), true),
                (Some(OTHER_NS), false),
                (None, false),
            ],
        ),
        // A bare name is in the policy's namespace (`serviceAccountRegex` default namespace).
        (
            "serviceAccounts bare name",
            "serviceAccounts: [sleep]",
            &[(Some(SLEEP), true), (Some(OTHER_NS), false)],
        ),
        (
            "notServiceAccounts",
            "notServiceAccounts: [default/sleep]",
            &[(Some(SLEEP), false), (Some(OTHER_NS), true), (None, true)],
        ),
        // srcTrustDomainGenerator: exact is the prefix `spiffe://td/`, `*` any peer.
        (
            "trustDomains exact",
            "trustDomains: [cluster.local]",
            &[(Some(SLEEP), true), (Some(OTHER_TD), false), (None, false)],
        ),
        (
            "trustDomains wildcard",
            "trustDomains: ['*.td']",
            &[(Some(SLEEP), false), (Some(OTHER_TD), true)],
        ),
        (
            "trustDomains any",
            "trustDomains: ['*']",
            &[(Some(OTHER_TD), true), (None, false)],
        ),
        (
            "notTrustDomains",
            "notTrustDomains: [other.td]",
            &[(Some(SLEEP), true), (Some(OTHER_TD), false), (None, true)],
        ),
        (
            "principals",
            "principals: [cluster.local/ns/default/sa/sleep]",
            &[(Some(SLEEP), true), (Some(OTHER_TD), false), (None, false)],
        ),
        (
            "namespaces",
            "namespaces: [default]",
            &[(Some(SLEEP), true), (Some(OTHER_NS), false), (None, false)],
        ),
        (
            "ipBlocks",
            "ipBlocks: [10.0.0.0/24]",
            &[(Some(SLEEP), true), (None, true)],
        ),
        (
            "notIpBlocks",
            "notIpBlocks: [10.0.0.5]",
            &[(Some(SLEEP), false), (None, false)],
        ),
    ];
    for (name, source, expect) in cases {
        let (policies, diags) = translate(&format!(
            "  rules: [{{from: [{{source: {{{source}}}}}]}}]\n"
        ));
        assert!(errors(&diags).is_empty(), "{name}: {diags:#?}");
        for (principal, allowed) in *expect {
            let d = evaluate(&policies, &request(*principal));
            assert_eq!(d.is_allowed(), *allowed, "{name} for {principal:?}: {d}");
        }
    }
}

#[test]
fn enforced_when_keys_and_operations() {
    const OTHER_TD: &str = "other.td/ns/default/sa/sleep";
    let cases: &[(&str, &str, bool, bool)] = &[
        // (name, rule, allowed for SLEEP, allowed for OTHER_TD)
        (
            "source.serviceAccount",
            "when: [{key: source.serviceAccount, values: [sleep]}]",
            true,
            true,
        ),
        (
            "source.serviceAccount not",
            "when: [{key: source.serviceAccount, notValues: [default/sleep]}]",
            false,
            false,
        ),
        (
            "source.trustDomain",
            "when: [{key: source.trustDomain, values: [cluster.local]}]",
            true,
            false,
        ),
        (
            "source.trustDomain not",
            "when: [{key: source.trustDomain, notValues: ['other.*']}]",
            true,
            false,
        ),
        (
            "source.principal",
            "when: [{key: source.principal, values: ['*/ns/default/sa/sleep']}]",
            true,
            true,
        ),
        (
            "source.namespace",
            "when: [{key: source.namespace, notValues: [default]}]",
            false,
            false,
        ),
        (
            "source.ip",
            "when: [{key: source.ip, values: [10.0.0.0/8]}]",
            true,
            true,
        ),
        (
            "destination.ip",
            "when: [{key: destination.ip, notValues: [10.0.1.1]}]",
            false,
            false,
        ),
        (
            "destination.port",
            "when: [{key: destination.port, values: ['8080']}]",
            true,
            true,
        ),
        (
            "connection.sni",
            "when: [{key: connection.sni, values: [httpbin]}]",
            true,
            true,
        ),
        (
            "request.headers",
            "when: [{key: 'request.headers[X-Env]', values: [dev]}]",
            true,
            true,
        ),
        ("hosts", "to: [{operation: {hosts: [HTTPBIN]}}]", true, true),
        (
            "notHosts",
            "to: [{operation: {notHosts: ['httpbin:*']}}]",
            false,
            false,
        ),
        ("ports", "to: [{operation: {ports: ['8080']}}]", true, true),
        (
            "notPorts",
            "to: [{operation: {notPorts: ['8080']}}]",
            false,
            false,
        ),
        ("methods", "to: [{operation: {methods: [GET]}}]", true, true),
        (
            "notMethods",
            "to: [{operation: {notMethods: [GET]}}]",
            false,
            false,
        ),
        ("paths", "to: [{operation: {paths: ['/ap*']}}]", true, true),
        (
            "notPaths",
            "to: [{operation: {notPaths: ['*pi']}}]",
            false,
            false,
        ),
    ];
    for (name, rule, sleep, other) in cases {
        let (policies, diags) = translate(&format!("  rules: [{{{rule}}}]\n"));
        assert!(errors(&diags).is_empty(), "{name}: {diags:#?}");
        for (principal, allowed) in [(SLEEP, *sleep), (OTHER_TD, *other)] {
            let d = evaluate(&policies, &request(Some(principal)));
            assert_eq!(d.is_allowed(), allowed, "{name} for {principal}: {d}");
        }
    }
}

/// istiod's trust-domain aliasing (`trustdomain.Bundle`, applied by `MigrateTrustDomain`):
/// `cluster.local` in a principal is the local trust domain and each alias; a trust-domain value
/// naming a bundle member means every member.
#[test]
fn trust_domain_aliases() {
    let mut ctx = BuildContext::default();
    ctx.settings.trust_domain = "new.td".into();
    ctx.settings.trust_domain_aliases = vec!["old.td".into()];
    let (policies, diags) = translate_with(
        "  rules:\n  - from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]\n  - from: [{source: {trustDomains: [old.td]}}]\n    to: [{operation: {methods: [POST]}}]\n",
        &ctx,
    );
    assert!(errors(&diags).is_empty(), "{diags:#?}");
    for (principal, allowed) in [
        ("new.td/ns/default/sa/sleep", true),
        ("old.td/ns/default/sa/sleep", true),
        ("cluster.local/ns/default/sa/sleep", false),
        ("third.td/ns/default/sa/sleep", false),
    ] {
        let d = evaluate(&policies, &request(Some(principal)));
        assert_eq!(d.is_allowed(), allowed, "{principal}: {d}");
    }
    let mut post = request(Some("new.td/ns/other/sa/x"));
    post.method = "POST";
    assert!(evaluate(&policies, &post).is_allowed());
}
