//! Authorization policies in the form the inbound side evaluates (Istio's AuthorizationPolicy,
//! already narrowed to the policies that select this workload).

use std::net::IpAddr;

use serde::Serialize;

use super::ServiceAccount;

/// What a policy does when one of its rules matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthzAction {
    /// Allow the request (when any ALLOW policy applies, a request must match one).
    Allow,
    /// Deny the request; evaluated before ALLOW.
    Deny,
    /// Log the decision only.
    Audit,
}

/// One AuthorizationPolicy that applies to this workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthzPolicy {
    /// `namespace/name`.
    pub name: String,
    /// Action.
    pub action: AuthzAction,
    /// Rules; a policy matches when any rule matches. An ALLOW policy with no rules matches
    /// nothing; `rules: [{}]` matches everything.
    pub rules: Vec<AuthzRule>,
}

/// One rule: all of `from`, `to` and `when` must hold; within `from` (and `to`) any entry may.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthzRule {
    /// Sources; empty matches any source.
    pub from: Vec<AuthzSource>,
    /// Operations; empty matches any operation.
    pub to: Vec<AuthzOperation>,
    /// Extra conditions, all of which must hold.
    pub when: Vec<AuthzCondition>,
}

/// A string pattern as AuthorizationPolicy writes it: exact, `prefix*`, `*suffix`, or `*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringPattern {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Anything (but must be present).
    Any,
}

impl StringPattern {
    /// Reads Istio's form.
    pub fn parse(s: &str) -> Self {
        if s == "*" {
            StringPattern::Any
        } else if let Some(p) = s.strip_suffix('*') {
            StringPattern::Prefix(p.to_owned())
        } else if let Some(p) = s.strip_prefix('*') {
            StringPattern::Suffix(p.to_owned())
        } else {
            StringPattern::Exact(s.to_owned())
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringPattern::Exact(s) => value == s,
            StringPattern::Prefix(p) => value.starts_with(p.as_str()),
            StringPattern::Suffix(p) => value.ends_with(p.as_str()),
            StringPattern::Any => true,
        }
    }
}

/// A CIDR block (`10.0.0.0/8`, or a single address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct IpBlock {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
}

impl IpBlock {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, or the IPv6 forms.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = len.unwrap_or(max);
        (prefix_len <= max).then_some(Self { addr, prefix_len })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, len: u8, width: u8) -> u128 {
            if len == 0 { 0 } else { bits >> (width - len) }
        }
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix_len, 32)
                    == masked(u32::from(ip).into(), self.prefix_len, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix_len, 128)
                    == masked(u128::from(ip), self.prefix_len, 128)
            }
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

/// Who is calling (`rules[].from[].source`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthzSource {
    /// Peer identities without `spiffe://` (Istio's form: `cluster.local/ns/a/sa/b`).
    pub principals: Vec<StringPattern>,
    /// Negated principals.
    pub not_principals: Vec<StringPattern>,
    /// Peer namespaces.
    pub namespaces: Vec<StringPattern>,
    /// Negated namespaces.
    pub not_namespaces: Vec<StringPattern>,
    /// Peer IP blocks.
    pub ip_blocks: Vec<IpBlock>,
    /// Negated IP blocks.
    pub not_ip_blocks: Vec<IpBlock>,
    /// JWT request principals (needs RequestAuthentication, which mesh does not implement:
    /// a rule that names any never matches an ALLOW and always matches a DENY).
    pub request_principals: Vec<StringPattern>,
    /// Negated JWT request principals (same treatment).
    pub not_request_principals: Vec<StringPattern>,
    /// Peer service accounts (`serviceAccounts`), matched on the principal as istiod's regex
    /// does ([`ServiceAccount::matches`]); a plaintext peer matches none.
    pub service_accounts: Vec<ServiceAccount>,
    /// Negated service accounts.
    pub not_service_accounts: Vec<ServiceAccount>,
    /// Peer trust domains (`trustDomains`, aliases already expanded), matched with
    /// [`trust_domain_matches`](super::trust_domain_matches); a plaintext peer matches none.
    pub trust_domains: Vec<StringPattern>,
    /// Negated trust domains.
    pub not_trust_domains: Vec<StringPattern>,
}

/// What is called (`rules[].to[].operation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthzOperation {
    /// Hosts (authority), case-insensitive.
    pub hosts: Vec<StringPattern>,
    /// Negated hosts.
    pub not_hosts: Vec<StringPattern>,
    /// Destination ports.
    pub ports: Vec<u16>,
    /// Negated ports.
    pub not_ports: Vec<u16>,
    /// Methods (for gRPC always `POST`).
    pub methods: Vec<StringPattern>,
    /// Negated methods.
    pub not_methods: Vec<StringPattern>,
    /// Normalised paths (gRPC: `/package.Service/Method`).
    pub paths: Vec<StringPattern>,
    /// Negated paths.
    pub not_paths: Vec<StringPattern>,
}

/// What a `when` condition reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKey {
    /// `request.headers[name]` (name lowercase).
    RequestHeader(String),
    /// `source.ip`.
    SourceIp,
    /// `source.principal`.
    SourcePrincipal,
    /// `source.namespace`.
    SourceNamespace,
    /// `source.serviceAccount`: values are `namespace/name` (a bare name is resolved to the
    /// policy's namespace when translated), matched like [`ServiceAccount::matches`].
    SourceServiceAccount,
    /// `source.trustDomain`: values are trust-domain patterns (aliases already expanded).
    SourceTrustDomain,
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `connection.sni`.
    ConnectionSni,
    /// A key mesh does not evaluate (`request.auth.*`, …): never matches an ALLOW, always
    /// matches a DENY, so it fails closed.
    Unsupported(String),
}

/// A `when` condition: the key's value must match one of `values` and none of `not_values`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthzCondition {
    /// What is read.
    pub key: ConditionKey,
    /// Allowed values (patterns; IP keys take CIDR blocks written as text).
    pub values: Vec<StringPattern>,
    /// Refused values.
    pub not_values: Vec<StringPattern>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(StringPattern::parse("*").matches(""));
        assert!(StringPattern::parse("cluster.local/ns/*").matches("cluster.local/ns/x/sa/y"));
        assert!(StringPattern::parse("*/sa/admin").matches("td/ns/x/sa/admin"));
        assert!(!StringPattern::parse("/admin").matches("/admin/"));
    }

    #[test]
    fn ip_blocks() {
        let b = IpBlock::parse("10.1.0.0/16").unwrap();
        assert!(b.contains("10.1.200.3".parse().unwrap()));
        assert!(!b.contains("10.2.0.1".parse().unwrap()));
        assert!(b.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(
            IpBlock::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            IpBlock::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(IpBlock::parse("::1/129").is_none());
        assert!(
            IpBlock::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(IpBlock::parse("garbage").is_none());
    }
}
