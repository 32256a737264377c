//! Leaf matchers ↔ model values: string matchers and patterns, Istio's principal and namespace
//! regexes, CIDR ranges and IP blocks.
//!
//! Decoding accepts only regexes whose meaning is one of the model's patterns (`.+`, `.*`, the
//! namespace and service-account forms istiod writes); any other regex is refused, never
//! approximated, since a wrong guess would change who is allowed.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use mesh_core::model::{IpBlock, ServiceAccount, StringPattern};

use super::super::proto::u32v;

/// What a principal's identity is prefixed with on the wire.
pub(super) const SPIFFE: &str = "spiffe://";

/// Characters RE2 gives a meaning to.
const REGEX_META: &str = "\\.+*?()|[]{}^$";

/// A regex string matcher.
pub(super) fn regex(r: impl Into<String>) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
            regex: r.into(),
            engine_type: None,
        })),
        ignore_case: false,
    }
}

/// `p` as a string matcher, `prefix` put before exact and prefix values (`*` is `.+`, as istiod
/// writes it: Envoy refuses empty prefixes).
pub(super) fn string_matcher(p: &StringPattern, prefix: &str) -> StringMatcher {
    let pattern = match p {
        StringPattern::Exact(s) => MatchPattern::Exact(format!("{prefix}{s}")),
        StringPattern::Prefix(s) => MatchPattern::Prefix(format!("{prefix}{s}")),
        StringPattern::Suffix(s) => MatchPattern::Suffix(s.clone()),
        StringPattern::Any => return regex(".+"),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

/// A string matcher as a pattern; `ignore_case` is refused unless `ignore_case_ok` (hosts).
pub(super) fn pattern(m: &StringMatcher, ignore_case_ok: bool) -> Result<StringPattern, String> {
    if m.ignore_case && !ignore_case_ok {
        return Err("ignore_case is only supported on hosts (:authority)".into());
    }
    match &m.match_pattern {
        Some(MatchPattern::Exact(s)) => Ok(StringPattern::Exact(s.clone())),
        Some(MatchPattern::Prefix(s)) => Ok(StringPattern::Prefix(s.clone())),
        Some(MatchPattern::Suffix(s)) => Ok(StringPattern::Suffix(s.clone())),
        Some(MatchPattern::SafeRegex(r)) => any_regex(&r.regex),
        Some(MatchPattern::Contains(s)) => Err(format!("contains {s:?} cannot be expressed")),
        Some(MatchPattern::Custom(_)) => Err("custom string matchers cannot be expressed".into()),
        None => Err("match_pattern is missing".into()),
    }
}

/// `.+` and `.*` (any present value); every other regex is refused.
pub(super) fn any_regex(r: &str) -> Result<StringPattern, String> {
    match r {
        ".+" | ".*" => Ok(StringPattern::Any),
        _ => Err(cannot(r)),
    }
}

fn cannot(r: &str) -> String {
    format!("regex {r:?} cannot be expressed")
}

/// What an `authenticated.principal_name` matcher stands for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Identity {
    /// `source.principals`, without `spiffe://`.
    Principal(StringPattern),
    /// `source.namespaces`.
    Namespace(StringPattern),
    /// `source.serviceAccounts`, from istiod's `serviceAccountRegex`.
    ServiceAccount(ServiceAccount),
    /// `source.trustDomains`, from the regex of istiod's `srcTrustDomainGenerator`.
    TrustDomain(StringPattern),
}

/// Decodes a principal-name matcher; the second value is a warning, if any.
pub(super) fn identity(m: &StringMatcher) -> Result<(Identity, Option<String>), String> {
    if m.ignore_case {
        return Err("ignore_case is only supported on hosts (:authority)".into());
    }
    let principal = |p| Ok((Identity::Principal(p), None));
    match &m.match_pattern {
        Some(MatchPattern::Exact(s)) => principal(StringPattern::Exact(
            s.strip_prefix(SPIFFE).unwrap_or(s).to_owned(),
        )),
        Some(MatchPattern::Prefix(s)) => match s.strip_prefix(SPIFFE) {
            Some(rest) => principal(StringPattern::Prefix(rest.to_owned())),
            None => Err(format!(
                "prefix {s:?} does not start with {SPIFFE:?}; cannot be expressed"
            )),
        },
        Some(MatchPattern::Suffix(s)) => principal(StringPattern::Suffix(s.clone())),
        Some(MatchPattern::SafeRegex(r)) => identity_regex(&r.regex),
        _ => pattern(m, false).and_then(|_| Err("unexpected principal matcher".into())),
    }
}

fn identity_regex(r: &str) -> Result<(Identity, Option<String>), String> {
    if let Ok(p) = any_regex(r) {
        return Ok((Identity::Principal(p), None));
    }
    if let Some(inner) = r.strip_prefix(".*/ns/").and_then(|x| x.strip_suffix("/.*")) {
        let ns = namespace_pattern(inner).ok_or_else(|| cannot(r))?;
        return Ok((Identity::Namespace(ns), None));
    }
    if let Some(rest) = r.strip_prefix("spiffe://.+/ns/") {
        // istiod's serviceAccounts: spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?
        let (ns, sa) = rest
            .split_once("/(.+/|)sa/")
            .and_then(|(ns, sa)| Some((ns, sa.strip_suffix("(/.+)?")?)))
            .ok_or_else(|| cannot(r))?;
        let (ns, sa) = (
            unescape(ns).ok_or_else(|| cannot(r))?,
            unescape(sa).ok_or_else(|| cannot(r))?,
        );
        if ns.contains('/') || sa.contains('/') || ns.is_empty() || sa.is_empty() {
            return Err(cannot(r));
        }
        let sa = ServiceAccount::parse(&format!("{ns}/{sa}"), "").ok_or_else(|| cannot(r))?;
        return Ok((Identity::ServiceAccount(sa), None));
    }
    if let Some(td) = r
        .strip_prefix("spiffe://")
        .and_then(|x| x.strip_suffix("/.*"))
        .and_then(trust_domain_pattern)
    {
        return Ok((Identity::TrustDomain(td), None));
    }
    if let Some(rest) = r.strip_prefix("spiffe://.*") {
        let suffix = unescape(rest).filter(|s| !s.is_empty());
        return suffix
            .map(|s| (Identity::Principal(StringPattern::Suffix(s)), None))
            .ok_or_else(|| cannot(r));
    }
    Err(cannot(r))
}

/// istiod's `serviceAccountRegex`: `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`.
pub(super) fn service_account_regex(sa: &ServiceAccount) -> String {
    format!(
        "spiffe://.+/ns/{}/(.+/|)sa/{}(/.+)?",
        escape(&sa.namespace),
        escape(&sa.name)
    )
}

/// A trust-domain pattern as a principal regex, the wildcard forms as istiod's
/// `srcTrustDomainGenerator` writes them (`spiffe://p[^/]*/.*`); the exact form and `*` as the
/// same shape, so they decode back to trust domains (istiod writes those two as the prefixes
/// `spiffe://td/` and `spiffe://`, which decode as principal prefixes and mean the same).
pub(super) fn trust_domain_regex(p: &StringPattern) -> String {
    let inner = match p {
        StringPattern::Exact(s) => escape(s),
        StringPattern::Prefix(s) => format!("{}{TD_ANY}", escape(s)),
        StringPattern::Suffix(s) => format!("{TD_ANY}{}", escape(s)),
        StringPattern::Any => TD_ANY.to_owned(),
    };
    format!("spiffe://{inner}/.*")
}

/// Any characters of a trust domain.
const TD_ANY: &str = "[^/]*";

/// The pattern of a `trust_domain_regex` body (between `spiffe://` and `/.*`).
fn trust_domain_pattern(inner: &str) -> Option<StringPattern> {
    let literal = |s: &str| unescape(s).filter(|s| !s.contains('/'));
    match inner.split_once(TD_ANY) {
        None => literal(inner)
            .filter(|s| !s.is_empty())
            .map(StringPattern::Exact),
        Some(("", "")) => Some(StringPattern::Any),
        Some((p, "")) => literal(p).map(StringPattern::Prefix),
        Some(("", s)) => literal(s).map(StringPattern::Suffix),
        Some(_) => None,
    }
}

/// The regex istiod writes for a namespace pattern: `.*/ns/<ns>/.*`, `*` as `.*`.
pub(super) fn namespace_regex(p: &StringPattern) -> String {
    let inner = match p {
        StringPattern::Exact(s) => escape(s),
        StringPattern::Prefix(s) => format!("{}.*", escape(s)),
        StringPattern::Suffix(s) => format!(".*{}", escape(s)),
        StringPattern::Any => ".*".to_owned(),
    };
    format!(".*/ns/{inner}/.*")
}

fn namespace_pattern(inner: &str) -> Option<StringPattern> {
    let literal = |s: &str| unescape(s).filter(|s| !s.contains('/'));
    if inner == ".*" {
        Some(StringPattern::Any)
    } else if let Some(s) = inner.strip_prefix(".*") {
        literal(s).map(StringPattern::Suffix)
    } else if let Some(s) = inner.strip_suffix(".*").filter(|s| !s.ends_with('\\')) {
        literal(s).map(StringPattern::Prefix)
    } else {
        literal(inner)
            .filter(|s| !s.is_empty())
            .map(StringPattern::Exact)
    }
}

/// `s` with every regex metacharacter escaped.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if REGEX_META.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The literal a regex stands for, if it is one (metacharacters only escaped).
fn unescape(r: &str) -> Option<String> {
    let mut out = String::with_capacity(r.len());
    let mut chars = r.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let next = chars.next()?;
            if !next.is_ascii_punctuation() {
                return None;
            }
            out.push(next);
        } else if REGEX_META.contains(c) {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An IP block as a CIDR range (the prefix length always written: unset means 0 to Envoy).
pub(super) fn cidr(b: &IpBlock) -> CidrRange {
    CidrRange {
        address_prefix: b.addr.to_string(),
        prefix_len: u32v(u32::from(b.prefix_len)),
    }
}

/// A CIDR range as an IP block.
pub(super) fn ip_block(c: &CidrRange) -> Result<IpBlock, String> {
    let addr: IpAddr = c
        .address_prefix
        .parse()
        .map_err(|_| format!("{:?} is not an IP address", c.address_prefix))?;
    let len = c.prefix_len.as_ref().map_or(0, |v| v.value);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match u8::try_from(len) {
        Ok(prefix_len) if len <= max => Ok(IpBlock { addr, prefix_len }),
        _ => Err(format!("prefix_len {len} is out of range for {addr}")),
    }
}

/// An IP block as a condition value: the address alone for a single address, else `addr/len`.
pub(super) fn ip_text(b: &IpBlock) -> String {
    let max = if b.addr.is_ipv4() { 32 } else { 128 };
    if b.prefix_len == max {
        b.addr.to_string()
    } else {
        format!("{}/{}", b.addr, b.prefix_len)
    }
}

/// A condition value as an IP block: only exact values that parse.
pub(super) fn ip_value(p: &StringPattern) -> Option<IpBlock> {
    match p {
        StringPattern::Exact(s) => IpBlock::parse(s),
        _ => None,
    }
}

/// A condition value as a port: only exact numbers.
pub(super) fn port_value(p: &StringPattern) -> Option<u16> {
    match p {
        StringPattern::Exact(s) => s.parse().ok(),
        _ => None,
    }
}
