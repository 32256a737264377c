//! Tests of the RBAC codec: round trips from Istio files, istiod-shaped trees, refusals.

mod errors;
mod istiod;
mod round_trip;

use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac, permission, principal, rbac::Action,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter::ConfigType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use mesh_core::authz::{AuthzRequest, HeaderLookup, evaluate, namespace_of};
use mesh_core::model::AuthzPolicy;

use super::super::error::{ResourceKind, Scope, XdsError};
use super::super::proto::pack;
use super::decode_rbac_filters;
use super::matchers::regex;

const PATH: &str = "filter_chains[0].filters[0].typed_config.http_filters";

fn scope() -> Scope {
    Scope::new(ResourceKind::Listener, "inbound|9080||")
}

fn decode(filters: &[HttpFilter]) -> (Result<Vec<AuthzPolicy>, XdsError>, Scope) {
    let mut scope = scope();
    let r = decode_rbac_filters(filters, PATH, &mut scope);
    (r, scope)
}

/// An RBAC filter with `policies` under `action`.
fn filter(name: &str, action: Action, policies: Vec<(&str, Policy)>) -> HttpFilter {
    filter_with(
        name,
        HttpRbac {
            rules: Some(Rbac {
                action: action as i32,
                policies: policies
                    .into_iter()
                    .map(|(k, p)| (k.to_owned(), p))
                    .collect(),
                audit_logging_options: None,
            }),
            ..Default::default()
        },
    )
}

fn filter_with(name: &str, config: HttpRbac) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(ConfigType::TypedConfig(pack(&config))),
        ..Default::default()
    }
}

fn policy(permissions: Vec<Permission>, principals: Vec<Principal>) -> Policy {
    Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

fn sm(p: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(p),
        ignore_case: false,
    }
}

fn exact(s: &str) -> StringMatcher {
    sm(MatchPattern::Exact(s.to_owned()))
}

fn re(r: &str) -> StringMatcher {
    regex(r)
}

fn p(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn p_and(rules: Vec<Permission>) -> Permission {
    p(permission::Rule::AndRules(permission::Set { rules }))
}

fn p_or(rules: Vec<Permission>) -> Permission {
    p(permission::Rule::OrRules(permission::Set { rules }))
}

fn p_not(x: Permission) -> Permission {
    p(permission::Rule::NotRule(Box::new(x)))
}

fn p_any() -> Permission {
    p(permission::Rule::Any(true))
}

fn p_header(name: &str, spec: header_matcher::HeaderMatchSpecifier) -> Permission {
    p(permission::Rule::Header(HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }))
}

fn i(id: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(id),
    }
}

fn i_and(ids: Vec<Principal>) -> Principal {
    i(principal::Identifier::AndIds(principal::Set { ids }))
}

fn i_or(ids: Vec<Principal>) -> Principal {
    i(principal::Identifier::OrIds(principal::Set { ids }))
}

fn i_not(x: Principal) -> Principal {
    i(principal::Identifier::NotId(Box::new(x)))
}

fn i_any() -> Principal {
    i(principal::Identifier::Any(true))
}

fn i_auth(m: StringMatcher) -> Principal {
    i(principal::Identifier::Authenticated(
        principal::Authenticated {
            principal_name: Some(m),
        },
    ))
}

fn i_header(name: &str, spec: header_matcher::HeaderMatchSpecifier) -> Principal {
    i(principal::Identifier::Header(HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }))
}

/// A request to evaluate: an mTLS peer (or plaintext), method, path, port and headers.
struct Req<'a> {
    principal: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    port: u16,
    headers: &'a [(&'a str, &'a str)],
}

impl Req<'_> {
    fn allowed(&self, policies: &[AuthzPolicy]) -> bool {
        let headers = &self.headers;
        let lookup: &dyn HeaderLookup = headers;
        let req = AuthzRequest {
            source_principal: self.principal,
            source_namespace: self.principal.and_then(namespace_of),
            source_ip: Some("10.1.2.3".parse().unwrap()),
            destination_ip: Some("10.0.0.5".parse().unwrap()),
            destination_port: Some(self.port),
            authority: "reviews:9080",
            method: self.method,
            path: self.path,
            sni: None,
            headers: lookup,
        };
        evaluate(policies, &req).is_allowed()
    }
}

fn req<'a>(principal: Option<&'a str>, method: &'a str, path: &'a str) -> Req<'a> {
    Req {
        principal,
        method,
        path,
        port: 9080,
        headers: &[],
    }
}
