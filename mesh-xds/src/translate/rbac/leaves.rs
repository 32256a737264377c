//! The leaves of permissions and principals: which field or condition each matcher stands for.

use envoy_types::pb::envoy::config::rbac::v3::{Permission, Principal, permission, principal};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, filter_state_matcher, metadata_matcher::path_segment::Segment, path_matcher,
    value_matcher,
};
use mesh_core::model::{ConditionKey, StringPattern};

use super::super::error::{Scope, XdsError};
use super::matchers::{Identity, any_regex, identity, ip_block, pattern};
use super::tree::{Leaf, Shape, Slot, Tree, Value};
use super::{ISTIO_AUTHN, PEER_PRINCIPAL_STATE, REQUEST_PRINCIPAL};

impl Tree for Permission {
    const AND: &'static str = "and_rules.rules";
    const OR: &'static str = "or_rules.rules";
    const NOT: &'static str = "not_rule";
    const ANY: &'static str = "any";

    fn shape(&self) -> Shape<'_, Self> {
        use permission::Rule;
        match &self.rule {
            Some(Rule::AndRules(s)) => Shape::And(&s.rules),
            Some(Rule::OrRules(s)) => Shape::Or(&s.rules),
            Some(Rule::NotRule(p)) => Shape::Not(p),
            Some(Rule::Any(a)) => Shape::Any(*a),
            _ => Shape::Leaf,
        }
    }

    fn leaf(&self, path: &str, scope: &mut Scope) -> Result<Leaf, XdsError> {
        use permission::Rule;
        let at = |field: &str| format!("{path}.{field}");
        let leaf = |slot, value| Leaf {
            slot,
            value,
            inverted: false,
        };
        match &self.rule {
            Some(Rule::Header(h)) => {
                let name = h.name.to_ascii_lowercase();
                let (slot, ignore_case_ok) = match name.as_str() {
                    ":authority" | "host" => (Slot::Hosts, true),
                    ":method" => (Slot::Methods, false),
                    n if n.starts_with(':') => {
                        return Err(scope.error(
                            at("header.name"),
                            format!("pseudo-header {n:?} cannot be expressed"),
                        ));
                    }
                    _ => (Slot::When(ConditionKey::RequestHeader(name.clone())), false),
                };
                header(h, slot, ignore_case_ok, &at("header"), scope)
            }
            Some(Rule::UrlPath(p)) => match &p.rule {
                Some(path_matcher::Rule::Path(m)) => {
                    let p = pattern(m, false).map_err(|e| scope.error(at("url_path.path"), e))?;
                    Ok(leaf(Slot::Paths, Value::Pattern(p)))
                }
                None => Err(scope.error(at("url_path.rule"), "missing")),
            },
            Some(Rule::DestinationPort(p)) => match u16::try_from(*p) {
                Ok(p) => Ok(leaf(Slot::Ports, Value::Port(p))),
                Err(_) => {
                    Err(scope.error(at("destination_port"), format!("{p} is not a port number")))
                }
            },
            Some(Rule::DestinationIp(c)) => {
                let b = ip_block(c).map_err(|e| scope.error(at("destination_ip"), e))?;
                Ok(leaf(Slot::When(ConditionKey::DestinationIp), Value::Ip(b)))
            }
            Some(Rule::RequestedServerName(m)) => {
                let p =
                    pattern(m, false).map_err(|e| scope.error(at("requested_server_name"), e))?;
                Ok(leaf(
                    Slot::When(ConditionKey::ConnectionSni),
                    Value::Pattern(p),
                ))
            }
            Some(Rule::Metadata(m)) => Ok(metadata(m)),
            Some(Rule::SourcedMetadata(s)) => match &s.metadata_matcher {
                Some(m) => Ok(metadata(m)),
                None => Err(scope.error(at("sourced_metadata.metadata_matcher"), "missing")),
            },
            Some(Rule::DestinationPortRange(r)) => Err(scope.error(
                at("destination_port_range"),
                format!(
                    "port range [{}, {}) cannot be expressed; list the ports",
                    r.start, r.end
                ),
            )),
            Some(Rule::UriTemplate(_)) => {
                Err(scope.error(at("uri_template"), "path templates cannot be expressed"))
            }
            Some(Rule::Matcher(_)) => Err(scope.error(
                at("matcher"),
                "permission matcher extensions cannot be expressed",
            )),
            Some(Rule::AndRules(_) | Rule::OrRules(_) | Rule::NotRule(_) | Rule::Any(_)) => {
                Err(scope.error(path, "not a leaf"))
            }
            None => Err(scope.error(at("rule"), "missing")),
        }
    }
}

impl Tree for Principal {
    const AND: &'static str = "and_ids.ids";
    const OR: &'static str = "or_ids.ids";
    const NOT: &'static str = "not_id";
    const ANY: &'static str = "any";

    fn shape(&self) -> Shape<'_, Self> {
        use principal::Identifier;
        match &self.identifier {
            Some(Identifier::AndIds(s)) => Shape::And(&s.ids),
            Some(Identifier::OrIds(s)) => Shape::Or(&s.ids),
            Some(Identifier::NotId(p)) => Shape::Not(p),
            Some(Identifier::Any(a)) => Shape::Any(*a),
            _ => Shape::Leaf,
        }
    }

    fn leaf(&self, path: &str, scope: &mut Scope) -> Result<Leaf, XdsError> {
        use principal::Identifier;
        let at = |field: &str| format!("{path}.{field}");
        let leaf = |slot, value| Leaf {
            slot,
            value,
            inverted: false,
        };
        match &self.identifier {
            Some(Identifier::Authenticated(a)) => match &a.principal_name {
                // Any authenticated peer.
                None => Ok(leaf(Slot::Principals, Value::Pattern(StringPattern::Any))),
                Some(m) => authenticated(m, &at("authenticated.principal_name"), scope),
            },
            Some(Identifier::FilterState(f)) if f.key == PEER_PRINCIPAL_STATE => match &f.matcher {
                Some(filter_state_matcher::Matcher::StringMatch(m)) => {
                    authenticated(m, &at("filter_state.string_match"), scope)
                }
                _ => Err(scope.error(
                    at("filter_state.matcher"),
                    "only a string match on the peer principal can be expressed",
                )),
            },
            Some(Identifier::FilterState(f)) => Err(scope.error(
                at("filter_state.key"),
                format!("filter state {:?} cannot be expressed", f.key),
            )),
            Some(Identifier::DirectRemoteIp(c) | Identifier::SourceIp(c)) => {
                let field = if matches!(self.identifier, Some(Identifier::SourceIp(_))) {
                    "source_ip"
                } else {
                    "direct_remote_ip"
                };
                let b = ip_block(c).map_err(|e| scope.error(at(field), e))?;
                Ok(leaf(Slot::IpBlocks, Value::Ip(b)))
            }
            Some(Identifier::RemoteIp(c)) => {
                let b = ip_block(c).map_err(|e| scope.error(at("remote_ip"), e))?;
                Ok(leaf(
                    Slot::When(ConditionKey::Unsupported("remote.ip".into())),
                    Value::Ip(b),
                ))
            }
            Some(Identifier::Header(h)) => {
                let name = h.name.to_ascii_lowercase();
                if name.starts_with(':') {
                    return Err(scope.error(
                        at("header.name"),
                        format!("pseudo-header {name:?} cannot be expressed"),
                    ));
                }
                let slot = Slot::When(ConditionKey::RequestHeader(name));
                header(h, slot, false, &at("header"), scope)
            }
            Some(Identifier::Metadata(m)) => Ok(metadata(m)),
            Some(Identifier::SourcedMetadata(s)) => match &s.metadata_matcher {
                Some(m) => Ok(metadata(m)),
                None => Err(scope.error(at("sourced_metadata.metadata_matcher"), "missing")),
            },
            Some(Identifier::UrlPath(_)) => Err(scope.error(
                at("url_path"),
                "a path in a principal cannot be expressed; use a permission",
            )),
            Some(Identifier::Custom(_)) => Err(scope.error(
                at("custom"),
                "custom principal extensions cannot be expressed",
            )),
            Some(
                Identifier::AndIds(_)
                | Identifier::OrIds(_)
                | Identifier::NotId(_)
                | Identifier::Any(_),
            ) => Err(scope.error(path, "not a leaf")),
            None => Err(scope.error(at("identifier"), "missing")),
        }
    }
}

fn authenticated(
    m: &envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher,
    path: &str,
    scope: &mut Scope,
) -> Result<Leaf, XdsError> {
    let (identity, warning) = identity(m).map_err(|e| scope.error(path, e))?;
    if let Some(w) = warning {
        scope.warn(path, w);
    }
    let (slot, p) = match identity {
        Identity::Principal(p) => (Slot::Principals, p),
        Identity::Namespace(p) => (Slot::Namespaces, p),
        Identity::ServiceAccount(sa) => {
            (Slot::ServiceAccounts, StringPattern::Exact(sa.to_string()))
        }
        Identity::TrustDomain(p) => (Slot::TrustDomains, p),
    };
    Ok(Leaf {
        slot,
        value: Value::Pattern(p),
        inverted: false,
    })
}

fn header(
    h: &HeaderMatcher,
    slot: Slot,
    ignore_case_ok: bool,
    path: &str,
    scope: &mut Scope,
) -> Result<Leaf, XdsError> {
    use header_matcher::HeaderMatchSpecifier as S;
    if h.treat_missing_header_as_empty {
        return Err(scope.error(
            format!("{path}.treat_missing_header_as_empty"),
            "cannot be expressed",
        ));
    }
    let (p, absent) = match &h.header_match_specifier {
        None => (Ok(StringPattern::Any), false),
        Some(S::ExactMatch(s)) => (Ok(StringPattern::Exact(s.clone())), false),
        Some(S::PrefixMatch(s)) => (Ok(StringPattern::Prefix(s.clone())), false),
        Some(S::SuffixMatch(s)) => (Ok(StringPattern::Suffix(s.clone())), false),
        Some(S::PresentMatch(present)) => (Ok(StringPattern::Any), !present),
        Some(S::SafeRegexMatch(r)) => (any_regex(&r.regex), false),
        Some(S::StringMatch(m)) => (pattern(m, ignore_case_ok), false),
        Some(S::ContainsMatch(s)) => (Err(format!("contains {s:?} cannot be expressed")), false),
        Some(S::RangeMatch(_)) => (Err("range matches cannot be expressed".to_owned()), false),
    };
    let p = p.map_err(|e| scope.error(path, e))?;
    Ok(Leaf {
        slot,
        value: Value::Pattern(p),
        inverted: absent != h.invert_match,
    })
}

/// A dynamic-metadata matcher: a request principal (our encoding) or a condition mesh does not
/// evaluate, named after the metadata it reads.
fn metadata(m: &MetadataMatcher) -> Leaf {
    let segments: Vec<&str> = m
        .path
        .iter()
        .filter_map(|s| s.segment.as_ref().map(|Segment::Key(k)| k.as_str()))
        .collect();
    let value = match m.value.as_ref().and_then(|v| v.match_pattern.as_ref()) {
        Some(value_matcher::MatchPattern::StringMatch(s)) => pattern(s, false).ok(),
        _ => None,
    };
    let key = match (m.filter.as_str(), segments.as_slice()) {
        (_, []) => "metadata".to_owned(),
        (ISTIO_AUTHN, ["request.auth.claims", claims @ ..]) => {
            format!("request.auth.claims[{}]", claims.join("]["))
        }
        (ISTIO_AUTHN, [key]) => (*key).to_owned(),
        (ISTIO_AUTHN, keys) => keys.join("."),
        (filter, keys) => format!("experimental.{filter}[{}]", keys.join("][")),
    };
    let slot = if key == REQUEST_PRINCIPAL && value.is_some() {
        Slot::RequestPrincipals
    } else {
        Slot::When(ConditionKey::Unsupported(key))
    };
    Leaf {
        slot,
        value: Value::Pattern(value.unwrap_or(StringPattern::Any)),
        inverted: m.invert,
    }
}
