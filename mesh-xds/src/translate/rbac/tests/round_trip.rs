//! Istio files → model → RBAC → model gives the same policies (in canonical order).

use mesh_core::istio::load_str;
use mesh_core::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, ConditionKey, StringPattern,
};
use mesh_core::{BuildContext, Workload};

use super::super::super::NodeKind;
use super::super::rbac_filters;
use super::decode;

const POLICIES: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-others, namespace: default}
spec:
  action: DENY
  rules:
  - from: [{source: {notNamespaces: [default, 'prod-*', '*-test', 'a.b']}}]
  - to: [{operation: {notPaths: [/healthz, '/debug/*']}}]
  - from: [{source: {notPrincipals: ['*']}}]
  - when:
    - {key: source.serviceAccount, values: [default/evil, ops/x]}
    - {key: source.trustDomain, notValues: ['old-*', cluster.local, '*.corp']}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/gateway, '*/sa/admin', 'cluster.local/ns/ops/*', '*']
        notPrincipals: [cluster.local/ns/default/sa/evil]
        ipBlocks: [10.0.0.0/8, 192.168.1.7]
        notIpBlocks: [10.9.0.0/16, 'fd00::/8']
    - source: {namespaces: [default, 'team-*', '*']}
    - source:
        serviceAccounts: [default/gateway, reviewer]
        notServiceAccounts: [ops/admin]
        trustDomains: [cluster.local, 'prod-*', '*.corp', '*']
        notTrustDomains: [evil.td]
    to:
    - operation:
        hosts: [reviews.default.svc.cluster.local, '*.example.com', 'api.*', '*']
        notHosts: ['*.internal']
        methods: [GET, HEAD]
        notMethods: [DELETE]
        paths: ['/api/*', '*.json', /exact, '*']
        ports: ['9080', '8080']
        notPorts: ['15000']
    - operation: {methods: [POST]}
    when:
    - {key: 'request.headers[X-Tenant]', values: [acme, 'beta-*'], notValues: ['*-test']}
    - {key: source.ip, notValues: [10.9.0.0/16, 10.1.2.3]}
    - {key: source.principal, values: ['cluster.local/ns/default/*']}
    - {key: source.namespace, notValues: [kube-system]}
    - {key: destination.port, values: ['9080']}
    - {key: destination.ip, values: [10.0.0.0/24]}
    - {key: connection.sni, values: ['*.svc.cluster.local']}
  - {}
  - to: [{operation: {methods: [GET]}}]
    when: [{key: destination.port, values: ['80']}]
  - when: [{key: source.ip, values: [1.2.3.4]}]
  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-admin, namespace: default}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: ['/admin/*']}}]}]
";

/// [`POLICIES`] plus what a file may not say because mesh refuses it (JWT principals and
/// claims, an empty operation), added to the model directly: the xDS side must still carry it
/// and fail closed on it.
fn load_policies() -> Vec<AuthzPolicy> {
    let mut policies = load(POLICIES);
    for p in &mut policies {
        match p.name.as_str() {
            "default/deny-others" => p.rules[1].when.push(AuthzCondition {
                key: ConditionKey::Unsupported("request.auth.claims[groups]".into()),
                values: vec![StringPattern::Exact("admin".into())],
                not_values: vec![StringPattern::Exact("guest".into())],
            }),
            "default/allow-reviews" => {
                p.rules[0].from[0].request_principals =
                    vec![StringPattern::Exact("issuer/subject".into())];
                p.rules[2].to = vec![AuthzOperation::default()];
            }
            _ => {}
        }
    }
    policies
}

fn load(yaml: &str) -> Vec<AuthzPolicy> {
    let ctx = BuildContext {
        workload: Workload::new("default", "reviews").labels([("app", "reviews")]),
        ..BuildContext::default()
    };
    match load_str("test.yaml", yaml, &ctx) {
        Ok(s) => s.inbound.authorization,
        Err(e) => panic!("{e}"),
    }
}

/// The documented canonical form: DENY, ALLOW, AUDIT, each by name; in each rule, source-side
/// conditions before destination-side ones.
fn canonical(mut policies: Vec<AuthzPolicy>) -> Vec<AuthzPolicy> {
    let rank = |a: AuthzAction| match a {
        AuthzAction::Deny => 0,
        AuthzAction::Allow => 1,
        AuthzAction::Audit => 2,
    };
    policies.sort_by(|a, b| (rank(a.action), &a.name).cmp(&(rank(b.action), &b.name)));
    for rule in policies.iter_mut().flat_map(|p| &mut p.rules) {
        let destination = |k: &ConditionKey| {
            matches!(
                k,
                ConditionKey::DestinationIp
                    | ConditionKey::DestinationPort
                    | ConditionKey::ConnectionSni
            )
        };
        rule.when.sort_by_key(|c| destination(&c.key));
    }
    policies
}

#[test]
fn istio_files_round_trip_for_envoy() {
    let policies = load_policies();
    assert_eq!(policies.len(), 4);
    let filters = rbac_filters(&policies, NodeKind::Envoy);
    let names: Vec<_> = filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.rbac.DENY",
            "envoy.filters.http.rbac",
            "envoy.filters.http.rbac.AUDIT"
        ]
    );
    let (decoded, scope) = decode(&filters);
    assert_eq!(decoded.unwrap(), canonical(policies));
    assert!(scope.warnings.is_empty(), "{:?}", scope.warnings);
}

#[test]
fn istio_files_round_trip_for_grpc_without_audit() {
    let policies = load_policies();
    let filters = rbac_filters(&policies, NodeKind::ProxylessGrpc);
    assert_eq!(filters.len(), 2);
    let (decoded, _) = decode(&filters);
    let expected: Vec<_> = canonical(policies)
        .into_iter()
        .filter(|p| p.action != AuthzAction::Audit)
        .collect();
    assert_eq!(decoded.unwrap(), expected);
}

#[test]
fn allow_without_rules_and_match_all_round_trip() {
    for yaml in [
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec: {}
",
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all-2, namespace: default}
spec: {rules: [{}]}
",
    ] {
        let policies = load(yaml);
        let filters = rbac_filters(&policies, NodeKind::ProxylessGrpc);
        assert_eq!(filters.len(), 1, "{yaml}");
        let (decoded, _) = decode(&filters);
        assert_eq!(decoded.unwrap(), policies, "{yaml}");
    }
    // A DENY without rules (istiod refuses it in a file; a control plane may still send one).
    let deny_nothing = vec![AuthzPolicy {
        name: "default/deny-nothing".into(),
        action: AuthzAction::Deny,
        rules: Vec::new(),
    }];
    let filters = rbac_filters(&deny_nothing, NodeKind::ProxylessGrpc);
    assert_eq!(filters.len(), 1);
    assert_eq!(decode(&filters).0.unwrap(), deny_nothing);
}

#[test]
fn no_policies_no_filters() {
    assert!(rbac_filters(&[], NodeKind::Envoy).is_empty());
    let audit_only = load(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: default}
spec: {action: AUDIT, rules: [{}]}
",
    );
    assert!(rbac_filters(&audit_only, NodeKind::ProxylessGrpc).is_empty());
    assert_eq!(rbac_filters(&audit_only, NodeKind::Envoy).len(), 1);
}

/// The wire shape is istiod's: one entry per rule keyed `name-index`, SPIFFE principals,
/// namespace regexes, case-insensitive hosts; conditions in their own `and`.
#[test]
fn encoding_is_shaped_like_istiod() {
    use envoy_types::pb::envoy::config::rbac::v3::{Principal, principal::Identifier};
    use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

    use super::super::super::proto::unpack;

    let policies = load_policies();
    let filters = rbac_filters(&policies, NodeKind::ProxylessGrpc);
    let Some(ConfigType::TypedConfig(any)) = &filters[1].config_type else {
        panic!("typed config");
    };
    let rbac: HttpRbac = unpack(any).unwrap();
    let rules = rbac.rules.unwrap();
    let mut keys: Vec<_> = rules.policies.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "default/allow-nothing",
            "default/allow-reviews-0",
            "default/allow-reviews-1",
            "default/allow-reviews-2",
            "default/allow-reviews-3",
            "default/allow-reviews-4",
        ]
    );
    let rule0 = &rules.policies["default/allow-reviews-0"];
    let ids = |p: &Principal| match &p.identifier {
        Some(Identifier::AndIds(s)) => s.ids.clone(),
        other => panic!("{other:?}"),
    };
    let first = ids(&rule0.principals[0]);
    let Some(Identifier::OrIds(principals)) = &first[0].identifier else {
        panic!("{first:?}");
    };
    let Some(Identifier::Authenticated(a)) = &principals.ids[0].identifier else {
        panic!("{principals:?}");
    };
    assert_eq!(
        a.principal_name.as_ref().unwrap().match_pattern,
        Some(MatchPattern::Exact(
            "spiffe://cluster.local/ns/default/sa/gateway".into()
        ))
    );
    let second = ids(&rule0.principals[1]);
    let Some(Identifier::OrIds(namespaces)) = &second[0].identifier else {
        panic!("{second:?}");
    };
    let Some(Identifier::Authenticated(a)) = &namespaces.ids[1].identifier else {
        panic!("{namespaces:?}");
    };
    match &a.principal_name.as_ref().unwrap().match_pattern {
        Some(MatchPattern::SafeRegex(r)) => assert_eq!(r.regex, ".*/ns/team-.*/.*"),
        other => panic!("{other:?}"),
    }
    // Four source-side conditions, each in its own `and`, after the source's own fields.
    let tail = &second[second.len() - 4..];
    assert!(
        tail.iter()
            .all(|c| matches!(&c.identifier, Some(Identifier::AndIds(_)))),
        "{tail:?}"
    );
    assert_eq!(first[first.len() - 4..], *tail);
    // Hosts are case-insensitive.
    let debug = format!("{:?}", rule0.permissions[0]);
    assert!(debug.contains("\":authority\""), "{debug}");
    assert!(debug.contains("ignore_case: true"), "{debug}");
}
