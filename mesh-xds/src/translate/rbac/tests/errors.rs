//! Every shape the model cannot express is refused with its field path; no input panics.

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::rbac::v3::{permission, principal, rbac::Action};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier as H;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher, path_matcher, string_matcher::MatchPattern,
};
use envoy_types::pb::envoy::r#type::v3::Int32Range;
use envoy_types::pb::xds::r#type::matcher::v3::Matcher;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::super::NodeKind;
use super::super::rbac_filters;
use super::*;

const POLICY: &str = "typed_config.rules.policies[\"default/x-0\"]";

/// Decodes one ALLOW filter (at index 1, after a router) holding `default/x-0`, expecting an
/// error at `field` (below the policy) whose message contains `message`.
fn refused(p: Policy, field: &str, message: &str) {
    let router = HttpFilter {
        name: "envoy.filters.http.router".into(),
        ..Default::default()
    };
    let f = filter(
        "envoy.filters.http.rbac",
        Action::Allow,
        vec![("default/x-0", p)],
    );
    let (decoded, _) = decode(&[router, f]);
    let e = decoded.expect_err("must be refused");
    assert_eq!(e.field, format!("{PATH}[1].{POLICY}{field}"), "{e}");
    assert!(e.message.contains(message), "{e}");
}

fn with_principal(id: Principal) -> Policy {
    policy(vec![p_any()], vec![id])
}

fn with_permission(perm: Permission) -> Policy {
    policy(vec![perm], vec![i_any()])
}

#[test]
fn other_regexes() {
    refused(
        with_principal(i_and(vec![
            i_any(),
            i_any(),
            i_or(vec![i_auth(re("^a.*b$"))]),
        ])),
        ".principals[0].and_ids.ids[2].or_ids.ids[0].authenticated.principal_name",
        "regex \"^a.*b$\" cannot be expressed",
    );
    refused(
        with_principal(i_auth(re(".*/ns/a.b/.*"))),
        ".principals[0].authenticated.principal_name",
        "cannot be expressed",
    );
    refused(
        with_permission(p_header("x-user", H::StringMatch(re("[a-z]+")))),
        ".permissions[0].header",
        "regex \"[a-z]+\" cannot be expressed",
    );
}

#[test]
fn contains_and_ignore_case() {
    refused(
        with_principal(i_auth(sm(MatchPattern::Contains("admin".into())))),
        ".principals[0].authenticated.principal_name",
        "contains \"admin\" cannot be expressed",
    );
    let mut m = sm(MatchPattern::Prefix("/api".into()));
    m.ignore_case = true;
    refused(
        with_permission(p(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(m)),
        }))),
        ".permissions[0].url_path.path",
        "ignore_case is only supported on hosts",
    );
    refused(
        with_permission(p_header(":method", H::ContainsMatch("G".into()))),
        ".permissions[0].header",
        "contains",
    );
}

#[test]
fn port_ranges_templates_and_extensions() {
    refused(
        with_permission(p(permission::Rule::DestinationPortRange(Int32Range {
            start: 8000,
            end: 9000,
        }))),
        ".permissions[0].destination_port_range",
        "port range",
    );
    refused(
        with_permission(p(permission::Rule::UriTemplate(
            TypedExtensionConfig::default(),
        ))),
        ".permissions[0].uri_template",
        "path templates",
    );
    refused(
        with_principal(i(principal::Identifier::Custom(
            TypedExtensionConfig::default(),
        ))),
        ".principals[0].custom",
        "custom",
    );
    refused(
        with_permission(p(permission::Rule::DestinationPort(70000))),
        ".permissions[0].destination_port",
        "not a port",
    );
}

#[test]
fn mixed_ors_negated_ands_and_duplicates() {
    refused(
        with_principal(i_and(vec![i_or(vec![
            i_auth(exact("spiffe://td/ns/a/sa/b")),
            i(principal::Identifier::DirectRemoteIp(
                super::super::matchers::cidr(&"10.0.0.0/8".parse::<IpNet>().unwrap().0),
            )),
        ])])),
        ".principals[0].and_ids.ids[0].or_ids.ids[1]",
        "an or mixing principals with ip blocks",
    );
    refused(
        with_principal(i_not(i_and(vec![i_any()]))),
        ".principals[0].not_id",
        "a negated and",
    );
    refused(
        with_permission(p_or(vec![
            p_not(p_header(":method", H::ExactMatch("GET".into()))),
            p_not(p_header(":method", H::ExactMatch("PUT".into()))),
        ])),
        ".permissions[0].or_rules.rules[0]",
        "a negation inside an or",
    );
    refused(
        with_permission(p_and(vec![
            p_or(vec![p_header(":authority", H::ExactMatch("a".into()))]),
            p_or(vec![p_header(":authority", H::ExactMatch("b".into()))]),
        ])),
        ".permissions[0].and_rules.rules[1]",
        "a second hosts matcher",
    );
    refused(
        with_permission(p_header(":path", H::PrefixMatch("/".into()))),
        ".permissions[0].header.name",
        "pseudo-header",
    );
    refused(
        policy(vec![], vec![i_any()]),
        ".permissions",
        "at least one",
    );
}

/// A condition carried by only some principals cannot be a rule-level condition.
#[test]
fn condition_on_some_principals() {
    let env = || i_or(vec![i_header("x-env", H::ExactMatch("prod".into()))]);
    refused(
        policy(
            vec![p_any()],
            vec![
                i_and(vec![
                    i_or(vec![i_auth(exact("spiffe://td/ns/a/sa/b"))]),
                    env(),
                ]),
                i_and(vec![i_or(vec![i_auth(exact("spiffe://td/ns/a/sa/c"))])]),
            ],
        ),
        ".principals[1]",
        "mesh cannot express a condition that only some sources carry",
    );
}

#[test]
fn cel_and_unified_matcher() {
    let mut p = with_permission(p_any());
    p.condition = Some(Default::default());
    refused(p, ".condition", "CEL");
    let f = filter_with(
        "envoy.filters.http.rbac",
        HttpRbac {
            matcher: Some(Matcher::default()),
            ..Default::default()
        },
    );
    let (decoded, _) = decode(&[f]);
    let e = decoded.unwrap_err();
    assert_eq!(e.field, format!("{PATH}[0].typed_config.matcher"));
    assert!(e.message.contains("would change the verdict"));
}

#[test]
fn undecodable_config() {
    let mut f = filter("envoy.filters.http.rbac", Action::Allow, vec![]);
    if let Some(ConfigType::TypedConfig(any)) = &mut f.config_type {
        any.value = vec![0xff, 0xff, 0xff];
    }
    let (decoded, _) = decode(&[f]);
    assert_eq!(
        decoded.unwrap_err().field,
        format!("{PATH}[0].typed_config")
    );
}

/// Random corruptions of encoded filters decode or fail, never panic (seeded, bounded).
#[test]
fn corrupted_inputs_do_not_panic() {
    let policies = vec![mesh_core::model::AuthzPolicy {
        name: "default/x".into(),
        action: mesh_core::model::AuthzAction::Allow,
        rules: vec![mesh_core::model::AuthzRule {
            from: vec![mesh_core::model::AuthzSource {
                principals: vec![mesh_core::model::StringPattern::Suffix("/sa/a".into())],
                namespaces: vec![mesh_core::model::StringPattern::Prefix("p".into())],
                ..Default::default()
            }],
            to: vec![mesh_core::model::AuthzOperation {
                paths: vec![mesh_core::model::StringPattern::Any],
                ports: vec![80],
                ..Default::default()
            }],
            when: vec![],
        }],
    }];
    let filters = rbac_filters(&policies, NodeKind::Envoy);
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..2000 {
        let mut f = filters[0].clone();
        if let Some(ConfigType::TypedConfig(any)) = &mut f.config_type {
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..any.value.len());
                any.value[at] = rng.random();
            }
        }
        let _ = decode(&[f]);
    }
}

/// `10.0.0.0/8` as an IP block, for building CIDR ranges.
struct IpNet(mesh_core::model::IpBlock);

impl std::str::FromStr for IpNet {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        mesh_core::model::IpBlock::parse(s).map(IpNet).ok_or(())
    }
}

/// istiod's CUSTOM action is an ext_authz filter: mesh cannot ask the provider, so the listener
/// is refused rather than served without it (by name, or by the typed config alone).
#[test]
fn ext_authz_is_refused() {
    use envoy_types::pb::google::protobuf::Any;
    let allow = filter("envoy.filters.http.rbac", Action::Allow, vec![]);
    for ext in [
        HttpFilter {
            name: "envoy.filters.http.ext_authz".into(),
            ..Default::default()
        },
        HttpFilter {
            name: "custom-name".into(),
            config_type: Some(ConfigType::TypedConfig(Any {
                type_url: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
                    .into(),
                value: Vec::new(),
            })),
            ..Default::default()
        },
    ] {
        let (decoded, _) = decode(&[allow.clone(), ext]);
        let e = decoded.expect_err("ext_authz must be refused");
        assert_eq!(e.field, format!("{PATH}[1]"), "{e}");
        assert!(e.message.contains("CUSTOM"), "{e}");
    }
}

/// A disabled RBAC filter (enabled per route) is enforced everywhere: before, it was dropped
/// and its DENY let everything through.
#[test]
fn disabled_rbac_filters_are_enforced() {
    let mut deny = filter(
        "envoy.filters.http.rbac.DENY",
        Action::Deny,
        vec![("default/d-0", policy(vec![p_any()], vec![i_any()]))],
    );
    deny.disabled = true;
    let (decoded, scope) = decode(&[deny]);
    let policies = decoded.unwrap();
    assert!(!req(Some("td/ns/a/sa/b"), "GET", "/").allowed(&policies));
    assert!(scope.warnings[0].message.contains("failing closed"));
}
