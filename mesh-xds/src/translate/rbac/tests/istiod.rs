//! Trees shaped as istiod writes them decode to the policies Istio documents.

use envoy_types::pb::envoy::config::rbac::v3::{permission, principal, rbac::Action};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier as H;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    FilterStateMatcher, PathMatcher, RegexMatcher, filter_state_matcher, path_matcher,
    string_matcher::MatchPattern,
};
use mesh_core::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, ConditionKey,
    ServiceAccount, StringPattern,
};

use super::*;

fn exact_p(s: &str) -> StringPattern {
    StringPattern::Exact(s.into())
}

fn url_prefix(s: &str) -> Permission {
    p(permission::Rule::UrlPath(PathMatcher {
        rule: Some(path_matcher::Rule::Path(sm(MatchPattern::Prefix(s.into())))),
    }))
}

/// istiod for: from [namespaces foo], [principals cluster.local/ns/bar/sa/admin]; to GET
/// /api/*; when request.headers[x-env] == prod (appended bare to every principal).
#[test]
fn namespaces_principals_and_bare_conditions() {
    let env = || i_or(vec![i_header("x-env", H::ExactMatch("prod".into()))]);
    let f = filter(
        "envoy.filters.http.rbac",
        Action::Allow,
        vec![(
            "ns[default]-policy[allow-api]-rule[0]",
            policy(
                vec![p_and(vec![
                    p_or(vec![p_header(":method", H::ExactMatch("GET".into()))]),
                    p_or(vec![url_prefix("/api/")]),
                ])],
                vec![
                    i_and(vec![i_or(vec![i_auth(re(".*/ns/foo/.*"))]), env()]),
                    i_and(vec![
                        i_or(vec![i_auth(exact(
                            "spiffe://cluster.local/ns/bar/sa/admin",
                        ))]),
                        env(),
                    ]),
                ],
            ),
        )],
    );
    let (decoded, scope) = decode(&[f]);
    let policies = decoded.unwrap();
    assert!(scope.warnings.is_empty());
    assert_eq!(
        policies,
        [AuthzPolicy {
            name: "default/allow-api".into(),
            action: AuthzAction::Allow,
            rules: vec![AuthzRule {
                from: vec![
                    AuthzSource {
                        namespaces: vec![exact_p("foo")],
                        ..Default::default()
                    },
                    AuthzSource {
                        principals: vec![exact_p("cluster.local/ns/bar/sa/admin")],
                        ..Default::default()
                    },
                ],
                to: vec![AuthzOperation {
                    methods: vec![exact_p("GET")],
                    paths: vec![StringPattern::Prefix("/api/".into())],
                    ..Default::default()
                }],
                when: vec![AuthzCondition {
                    key: ConditionKey::RequestHeader("x-env".into()),
                    values: vec![exact_p("prod")],
                    not_values: vec![],
                }],
            }],
        }]
    );
    let prod: &[(&str, &str)] = &[("x-env", "prod")];
    let foo = Some("cluster.local/ns/foo/sa/web");
    let with = |r: Req<'static>| Req { headers: prod, ..r };
    assert!(with(req(foo, "GET", "/api/books")).allowed(&policies));
    assert!(with(req(Some("cluster.local/ns/bar/sa/admin"), "GET", "/api/x")).allowed(&policies));
    assert!(
        !req(foo, "GET", "/api/books").allowed(&policies),
        "header missing"
    );
    assert!(!with(req(foo, "POST", "/api/books")).allowed(&policies));
    assert!(!with(req(foo, "GET", "/admin")).allowed(&policies));
    assert!(!with(req(Some("cluster.local/ns/baz/sa/web"), "GET", "/api/x")).allowed(&policies));
    assert!(
        !with(req(None, "GET", "/api/books")).allowed(&policies),
        "plaintext"
    );
}

/// Istio documents a DENY with `notPrincipals: ["*"]` as refusing plaintext; istiod writes
/// `not_id(or_ids[authenticated safe_regex .+])`.
#[test]
fn deny_plaintext() {
    let f = filter(
        "envoy.filters.http.rbac.DENY",
        Action::Deny,
        vec![(
            "ns[default]-policy[require-mtls]-rule[0]",
            policy(
                vec![p_and(vec![p_any()])],
                vec![i_and(vec![i_not(i_or(vec![i_auth(re(".+"))]))])],
            ),
        )],
    );
    let (decoded, _) = decode(&[f]);
    let policies = decoded.unwrap();
    assert_eq!(
        policies[0].rules[0].from[0].not_principals,
        [StringPattern::Any]
    );
    assert!(!req(None, "GET", "/").allowed(&policies));
    assert!(req(Some("cluster.local/ns/a/sa/b"), "GET", "/").allowed(&policies));
}

/// Namespace regexes with wildcards, the `.+` principal (requires mTLS), istiod's
/// serviceAccounts regex, the legacy header fields, and the peer-principal filter state.
#[test]
fn istiod_string_shapes() {
    let f = filter(
        "envoy.filters.http.rbac",
        Action::Allow,
        vec![(
            "ns[default]-policy[shapes]-rule[0]",
            policy(
                vec![p_and(vec![
                    p_or(vec![
                        p_header(":authority", H::PrefixMatch("api.".into())),
                        p_header(":authority", H::SuffixMatch(".example.com".into())),
                        p_header(":authority", H::PresentMatch(true)),
                    ]),
                    p_not(p_or(vec![p_header(
                        ":method",
                        H::SafeRegexMatch(RegexMatcher {
                            regex: ".*".into(),
                            engine_type: None,
                        }),
                    )])),
                ])],
                vec![
                    i_and(vec![i_or(vec![
                        i_auth(re(".*/ns/prod-.*/.*")),
                        i_auth(re(".*/ns/.*-test/.*")),
                        i_auth(re(".*/ns/.*/.*")),
                    ])]),
                    i_and(vec![i_or(vec![i_auth(re(".+"))])]),
                    i_and(vec![i_or(vec![i_auth(re(
                        "spiffe://.+/ns/default/(.+/|)sa/sleep(/.+)?",
                    ))])]),
                    i_and(vec![i_or(vec![i_auth(re("spiffe://.*/sa/admin"))])]),
                    i_and(vec![i_or(vec![i(principal::Identifier::FilterState(
                        FilterStateMatcher {
                            key: "io.istio.peer_principal".into(),
                            matcher: Some(filter_state_matcher::Matcher::StringMatch(sm(
                                MatchPattern::Prefix("spiffe://td/ns/ops/".into()),
                            ))),
                        },
                    ))])]),
                ],
            ),
        )],
    );
    let (decoded, scope) = decode(&[f]);
    let policies = decoded.unwrap();
    let rule = &policies[0].rules[0];
    assert_eq!(
        rule.to[0].hosts,
        [
            StringPattern::Prefix("api.".into()),
            StringPattern::Suffix(".example.com".into()),
            StringPattern::Any
        ]
    );
    assert_eq!(rule.to[0].not_methods, [StringPattern::Any]);
    assert_eq!(
        rule.from[0].namespaces,
        [
            StringPattern::Prefix("prod-".into()),
            StringPattern::Suffix("-test".into()),
            StringPattern::Any
        ]
    );
    assert_eq!(rule.from[1].principals, [StringPattern::Any]);
    assert_eq!(
        rule.from[2].service_accounts,
        [ServiceAccount {
            namespace: "default".into(),
            name: "sleep".into()
        }]
    );
    assert_eq!(
        rule.from[3].principals,
        [StringPattern::Suffix("/sa/admin".into())]
    );
    assert_eq!(
        rule.from[4].principals,
        [StringPattern::Prefix("td/ns/ops/".into())]
    );
    // Read exactly, not as a principal suffix: extra path segments match as in Envoy.
    assert!(scope.warnings.is_empty(), "{:?}", scope.warnings);
    // `not_methods: [*]` refuses every request that has a method.
    assert!(!req(Some("td/ns/default/sa/sleep"), "GET", "/").allowed(&policies));
}

/// istiod appends `when: destination.port` to every permission, bare, after the operation's own
/// ports: the second ports matcher is a condition. Values and notValues of one key are neighbours.
#[test]
fn bare_permission_conditions() {
    let port = |n| p(permission::Rule::DestinationPort(n));
    let perm = |first| {
        p_and(vec![
            first,
            p_or(vec![port(9080)]),
            p_not(p_or(vec![port(9443)])),
        ])
    };
    let f = filter(
        "envoy.filters.http.rbac",
        Action::Allow,
        vec![(
            "ns[default]-policy[ports]-rule[0]",
            policy(
                vec![
                    perm(p_or(vec![port(9080), port(9081)])),
                    perm(p_or(vec![p_header(":method", H::ExactMatch("GET".into()))])),
                ],
                vec![i_and(vec![i_any()])],
            ),
        )],
    );
    let (decoded, _) = decode(&[f]);
    let policies = decoded.unwrap();
    // Read alone, the second permission's condition would fill its empty `ports`: the common
    // tail of the permissions is read as the conditions instead.
    let rule = match policies.as_slice() {
        [p] => &p.rules[0],
        _ => panic!("{policies:?}"),
    };
    assert_eq!(
        rule.when,
        [AuthzCondition {
            key: ConditionKey::DestinationPort,
            values: vec![exact_p("9080")],
            not_values: vec![exact_p("9443")],
        }]
    );
    assert_eq!(rule.to[0].ports, [9080, 9081]);
    assert_eq!(rule.to[1].methods, [exact_p("GET")]);
    // istiod writes `and_ids[any]` for "no from": one source with no fields, which matches the same.
    assert_eq!(rule.from, [AuthzSource::default()]);
    let at = |port| Req {
        port,
        ..req(None, "GET", "/")
    };
    assert!(at(9080).allowed(&policies));
    assert!(!at(9081).allowed(&policies));
}

/// An ALLOW filter without policies denies everything; a filter without rules enforces nothing
/// (its other settings are reported); shadow rules are reported, not enforced.
#[test]
fn empty_filters_and_shadow_rules() {
    let allow_none = filter("envoy.filters.http.rbac", Action::Allow, vec![]);
    let no_rules = filter_with(
        "stats-only",
        HttpRbac {
            rules_stat_prefix: "x".into(),
            ..Default::default()
        },
    );
    let shadow = filter_with(
        "dry-run",
        HttpRbac {
            shadow_rules: Some(Rbac::default()),
            ..Default::default()
        },
    );
    let (decoded, scope) = decode(&[allow_none, no_rules, shadow]);
    let policies = decoded.unwrap();
    assert_eq!(
        policies,
        [AuthzPolicy {
            name: "envoy.filters.http.rbac".into(),
            action: AuthzAction::Allow,
            rules: vec![],
        }]
    );
    assert!(!req(Some("td/ns/a/sa/b"), "GET", "/").allowed(&policies));
    let fields: Vec<_> = scope.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            format!("{PATH}[1].typed_config"),
            format!("{PATH}[2].typed_config.shadow_rules")
        ]
    );
}

/// Other filters are the caller's: skipped.
#[test]
fn other_filters_are_skipped() {
    let router = HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(ConfigType::TypedConfig(pack(
            &envoy_types::pb::envoy::extensions::filters::http::router::v3::Router::default(),
        ))),
        ..Default::default()
    };
    let (decoded, scope) = decode(&[router]);
    assert_eq!(decoded.unwrap(), []);
    assert!(scope.warnings.is_empty());
}

/// istiod's JWT shapes (metadata matchers under and/or) and `remote_ip` are conditions mesh does
/// not evaluate: an ALLOW rule with them never matches, a DENY rule always does.
#[test]
fn jwt_and_remote_ip_fail_closed() {
    use envoy_types::pb::envoy::config::core::v3::CidrRange;
    use envoy_types::pb::envoy::r#type::matcher::v3::{
        MetadataMatcher, ValueMatcher, metadata_matcher::PathSegment,
        metadata_matcher::path_segment::Segment, value_matcher,
    };
    let claim = |name: &str, value: &str| {
        i(principal::Identifier::Metadata(MetadataMatcher {
            filter: "istio_authn".into(),
            path: ["request.auth.claims", name]
                .into_iter()
                .map(|k| PathSegment {
                    segment: Some(Segment::Key(k.into())),
                })
                .collect(),
            value: Some(ValueMatcher {
                match_pattern: Some(value_matcher::MatchPattern::StringMatch(exact(value))),
            }),
            invert: false,
        }))
    };
    // requestPrincipals: [iss/sub] → or_ids[and_ids[iss, sub]].
    let jwt = i_and(vec![i_or(vec![i_and(vec![
        claim("iss", "issuer"),
        claim("sub", "subject"),
    ])])]);
    let remote = i_and(vec![i_or(vec![i(principal::Identifier::RemoteIp(
        CidrRange {
            address_prefix: "10.0.0.0".into(),
            prefix_len: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 8 }),
        },
    ))])]);
    for (id, key) in [(jwt, "request.auth.claims[iss]"), (remote, "remote.ip")] {
        let allow = filter(
            "envoy.filters.http.rbac",
            Action::Allow,
            vec![(
                "ns[default]-policy[a]-rule[0]",
                policy(vec![p_any()], vec![id.clone()]),
            )],
        );
        let (decoded, _) = decode(&[allow]);
        let policies = decoded.unwrap();
        assert_eq!(
            policies[0].rules[0].when[0].key,
            ConditionKey::Unsupported(key.into())
        );
        assert!(!req(Some("td/ns/a/sa/b"), "GET", "/").allowed(&policies));
        let deny = filter(
            "envoy.filters.http.rbac.DENY",
            Action::Deny,
            vec![(
                "ns[default]-policy[d]-rule[0]",
                policy(vec![p_any()], vec![id]),
            )],
        );
        let (decoded, _) = decode(&[deny]);
        assert!(!req(Some("td/ns/a/sa/b"), "GET", "/").allowed(&decoded.unwrap()));
    }
}

/// istiod's `serviceAccounts` regex and `srcTrustDomainGenerator` shapes decode to the model's
/// service accounts and trust domains, and decide like Envoy's regexes: extra path segments
/// around `/sa/` match, and a `notServiceAccounts` cannot be sidestepped by them (before, the
/// regex was read as a principal suffix, which an identity with extra segments escaped).
#[test]
fn service_accounts_and_trust_domains_decode_exactly() {
    let f = filter(
        "envoy.filters.http.rbac.DENY",
        Action::Deny,
        vec![(
            "ns[default]-policy[no-sleep]-rule[0]",
            policy(
                vec![p_any()],
                vec![i_and(vec![
                    i_or(vec![i_auth(re(
                        "spiffe://.+/ns/default/(.+/|)sa/sleep(/.+)?",
                    ))]),
                    i_or(vec![
                        i_auth(re("spiffe://prod-[^/]*/.*")),
                        i_auth(re("spiffe://[^/]*\\.corp/.*")),
                    ]),
                ])],
            ),
        )],
    );
    let (decoded, scope) = decode(&[f]);
    let policies = decoded.unwrap();
    assert!(scope.warnings.is_empty(), "{:?}", scope.warnings);
    let source = &policies[0].rules[0].from[0];
    assert_eq!(
        source.trust_domains,
        [
            StringPattern::Prefix("prod-".into()),
            StringPattern::Suffix(".corp".into())
        ]
    );
    for (principal, denied) in [
        ("prod-eu/ns/default/sa/sleep", true),
        ("prod-eu/ns/default/extra/sa/sleep", true),
        ("eu.corp/ns/default/sa/sleep/x", true),
        ("dev/ns/default/sa/sleep", false),
        ("prod-eu/ns/default/sa/sleeper", false),
        ("prod-eu/ns/other/sa/sleep", false),
    ] {
        let allowed = req(Some(principal), "GET", "/").allowed(&policies);
        assert_eq!(allowed, !denied, "{principal}");
    }
}
