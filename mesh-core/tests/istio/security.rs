//! PeerAuthentication and AuthorizationPolicy for this workload.

use std::collections::BTreeMap;

use mesh_core::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource, ConditionKey, IpBlock,
    MtlsMode, PeerAuthnPolicy, StringPattern,
};

use super::*;

fn pa(name: &str, ns: &str, selector: Option<&str>, mode: &str) -> String {
    let selector = selector.map_or(String::new(), |app| {
        format!("\n  selector: {{matchLabels: {{app: {app}}}}}")
    });
    format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {ns}}}
spec:{selector}
  mtls: {{mode: {mode}}}
---
"
    )
}

#[test]
fn peer_authentication_specificity() {
    let mesh = pa("mesh", "istio-system", None, "STRICT");
    let ns = pa("ns", "default", None, "DISABLE");
    let wl = pa("wl", "default", Some("productpage"), "PERMISSIVE");
    let other_wl = pa("other", "default", Some("reviews"), "DISABLE");
    let other_ns = pa("elsewhere", "prod", None, "DISABLE");
    let unset_wl = pa("unset", "default", Some("productpage"), "UNSET");
    let cases: Vec<(String, MtlsMode, Option<&str>)> = vec![
        (String::new(), MtlsMode::Permissive, None),
        (mesh.clone(), MtlsMode::Strict, Some("istio-system/mesh")),
        (mesh.clone() + &ns, MtlsMode::Disable, Some("default/ns")),
        (
            mesh.clone() + &ns + &wl,
            MtlsMode::Permissive,
            Some("default/wl"),
        ),
        (
            mesh.clone() + &other_wl + &other_ns,
            MtlsMode::Strict,
            Some("istio-system/mesh"),
        ),
        // UNSET inherits from the namespace level.
        (
            mesh.clone() + &ns + &unset_wl,
            MtlsMode::Disable,
            Some("default/ns"),
        ),
        (
            mesh + &unset_wl,
            MtlsMode::Strict,
            Some("istio-system/mesh"),
        ),
        (unset_wl, MtlsMode::Permissive, Some("default/unset")),
    ];
    for (yaml, mode, source) in cases {
        let s = load(&yaml);
        let p = &s.inbound.peer_authentication;
        assert_eq!((p.mode, p.source.as_deref()), (mode, source), "{yaml}");
    }
}

#[test]
fn port_level_mtls_and_conflicts() {
    let s = load(
        "apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: b-wl}
spec:
  selector: {matchLabels: {app: productpage}}
  mtls: {mode: STRICT}
  portLevelMtls:
    '9080': {mode: PERMISSIVE}
    '15020': {mode: UNSET}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: a-wl}
spec:
  selector: {matchLabels: {version: v1}}
  mtls: {mode: DISABLE}
",
    );
    let p = &s.inbound.peer_authentication;
    assert_eq!(p.mode, MtlsMode::Disable, "a-wl is first by name");
    assert!(p.port_modes.is_empty());
    assert_eq!(
        warnings(&s),
        [
            "test.yaml: doc 0 PeerAuthentication default/b-wl: PeerAuthentication default/a-wl also applies at the same level and is older (or first by name); this policy is ignored"
        ]
    );
    let s = load(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: wl}
spec:
  selector: {matchLabels: {app: productpage}}
  mtls: {mode: STRICT}
  portLevelMtls:
    '9080': {mode: PERMISSIVE}
    '15020': {mode: UNSET}
",
    );
    assert_eq!(
        s.inbound.peer_authentication,
        PeerAuthnPolicy {
            mode: MtlsMode::Strict,
            port_modes: BTreeMap::from([(9080, MtlsMode::Permissive)]),
            source: Some("default/wl".into()),
        }
    );
    assert_eq!(
        s.inbound.peer_authentication.mode_for(15020),
        MtlsMode::Strict
    );
}

#[test]
fn authorization_policies_select_and_translate() {
    let s = load(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  action: DENY
  rules:
  - from: [{source: {notNamespaces: [default, prod]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-reviews}
spec:
  selector: {matchLabels: {app: productpage}}
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/bookinfo-gateway, '*/sa/admin']
        ipBlocks: [10.0.0.0/8]
    to:
    - operation: {methods: [GET], paths: ['/api/*'], ports: ['9080'], notHosts: ['*.internal']}
    when:
    - {key: 'request.headers[X-Tenant]', values: [acme]}
    - {key: source.ip, notValues: [10.9.0.0/16]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: for-reviews}
spec:
  selector: {matchLabels: {app: reviews}}
  action: AUDIT
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: prod}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing}
spec: {}
",
    );
    let authz = &s.inbound.authorization;
    let names: Vec<_> = authz.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "istio-system/mesh-deny",
            "default/allow-reviews",
            "default/allow-nothing"
        ]
    );
    assert_eq!(authz[0].action, AuthzAction::Deny);
    assert_eq!(
        authz[0].rules[0].from[0].not_namespaces,
        [
            StringPattern::Exact("default".into()),
            StringPattern::Exact("prod".into())
        ]
    );
    assert_eq!(
        authz[1].rules,
        [AuthzRule {
            from: vec![AuthzSource {
                principals: vec![
                    StringPattern::Exact("cluster.local/ns/default/sa/bookinfo-gateway".into()),
                    StringPattern::Suffix("/sa/admin".into())
                ],
                ip_blocks: vec![IpBlock::parse("10.0.0.0/8").unwrap()],
                ..AuthzSource::default()
            }],
            to: vec![AuthzOperation {
                methods: vec![StringPattern::Exact("GET".into())],
                paths: vec![StringPattern::Prefix("/api/".into())],
                ports: vec![9080],
                not_hosts: vec![StringPattern::Suffix(".internal".into())],
                ..AuthzOperation::default()
            }],
            when: vec![
                AuthzCondition {
                    key: ConditionKey::RequestHeader("x-tenant".into()),
                    values: vec![StringPattern::Exact("acme".into())],
                    not_values: vec![],
                },
                AuthzCondition {
                    key: ConditionKey::SourceIp,
                    values: vec![],
                    not_values: vec![StringPattern::Exact("10.9.0.0/16".into())],
                },
            ],
        }]
    );
    assert_eq!(authz[2].action, AuthzAction::Allow);
    assert!(
        authz[2].rules.is_empty(),
        "an ALLOW policy without rules matches nothing"
    );
}

#[test]
fn unsupported_condition_keys_are_errors() {
    // A JWT claim needs RequestAuthentication, which mesh lacks: the load is refused (the
    // translated rule would fail closed; see `istio::translate::authz` tests).
    let errs = errors(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt}
spec:
  rules:
  - when: [{key: 'request.auth.claims[groups]', values: [admin]}]
",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("spec.rules[0].when[0].key") && errs[0].contains("RequestAuthentication"),
        "{errs:?}"
    );
}
