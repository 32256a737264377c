//! Who a peer is, read from its principal the way istiod's generated matchers read it:
//! AuthorizationPolicy `serviceAccounts` / `source.serviceAccount` and `trustDomains` /
//! `source.trustDomain`.
//!
//! A principal is Istio's form of a SPIFFE ID without `spiffe://`
//! (`cluster.local/ns/default/sa/sleep`). istiod does not compare service accounts and trust
//! domains as parsed fields; it writes Envoy string matchers on `spiffe://<principal>`
//! (`pilot/pkg/security/authz/model/generator.go`: `srcServiceAccountGenerator`,
//! `serviceAccountRegex`, `srcTrustDomainGenerator`). The functions here give exactly the
//! answers of those matchers, so a policy means the same under mesh as under Envoy.

use serde::Serialize;

use super::StringPattern;

/// A service account as AuthorizationPolicy names it: `namespace/name`, or a bare `name` in
/// the policy's own namespace (resolved when the policy is translated).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Service account name.
    pub name: String,
}

impl ServiceAccount {
    /// Reads `ns/sa`, or `sa` in `default_namespace`. `None` unless both parts are non-empty and
    /// there is at most one `/` (istiod's `security.CheckServiceAccount` refuses the rest).
    pub fn parse(value: &str, default_namespace: &str) -> Option<Self> {
        let (namespace, name) = value.split_once('/').unwrap_or((default_namespace, value));
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        Some(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Whether `principal` (without `spiffe://`) is this service account.
    ///
    /// istiod's `serviceAccountRegex` is `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`, matched
    /// against the whole URI: any non-empty trust domain, then `/ns/<ns>/`, optionally more
    /// segments, then `sa/<sa>` ending the ID or followed by `/` and more. This walks every
    /// place the two literals could sit, as the regex engine would.
    pub fn matches(&self, principal: &str) -> bool {
        let ns = format!("/ns/{}/", self.namespace);
        let sa = format!("sa/{}", self.name);
        occurrences(principal, &ns)
            .filter(|&at| at > 0)
            .any(|at| tail_matches(&principal[at + ns.len()..], &sa))
    }
}

impl std::fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `(.+/|)sa/<sa>(/.+)?` against all of `rest`.
fn tail_matches(rest: &str, sa: &str) -> bool {
    occurrences(rest, sa).any(|at| {
        let head_ok = at == 0 || (at >= 2 && rest.as_bytes()[at - 1] == b'/');
        let tail = &rest[at + sa.len()..];
        head_ok && (tail.is_empty() || (tail.len() > 1 && tail.starts_with('/')))
    })
}

/// Every byte offset where `needle` starts in `hay`, overlapping ones included.
fn occurrences<'a>(hay: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = from + hay.get(from..)?.find(needle)?;
        from = at + 1;
        // `needle` starts with an ASCII byte, so `at + 1` is a char boundary or past a
        // multi-byte char's first byte; step to the next boundary.
        while from < hay.len() && !hay.is_char_boundary(from) {
            from += 1;
        }
        Some(at)
    })
}

/// Whether the trust domain of `principal` matches `pattern`, as istiod's
/// `srcTrustDomainGenerator` writes it: `*` is any authenticated peer (prefix `spiffe://`);
/// an exact value is the prefix `spiffe://<td>/`; `p*` / `*s` are the regex
/// `spiffe://p[^/]*/.*` / `spiffe://[^/]*s/.*`, i.e. the text before the first `/`.
pub fn trust_domain_matches(pattern: &StringPattern, principal: &str) -> bool {
    if *pattern == StringPattern::Any {
        return true;
    }
    let Some((td, _)) = principal.split_once('/') else {
        return false;
    };
    pattern.matches(td)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(v: &str) -> ServiceAccount {
        ServiceAccount::parse(v, "policy-ns").unwrap()
    }

    /// The cases follow the regex of istiod's `serviceAccountRegex`
    /// (`pilot/pkg/security/authz/model/generator.go`).
    #[test]
    fn service_accounts_match_like_istiods_regex() {
        let s = sa("default/sleep");
        for yes in [
            "cluster.local/ns/default/sa/sleep",
            "other.td/ns/default/sa/sleep",
            "td/ns/default/extra/sa/sleep",
            "td/ns/default/sa/sleep/more",
            "td/ns/x/ns/default/sa/sleep",
        ] {
            assert!(s.matches(yes), "{yes}");
        }
        for no in [
            "/ns/default/sa/sleep",
            "td/ns/default/sa/sleeper",
            "td/ns/default/sa/sleep/",
            "td/ns/default2/sa/sleep",
            "td/ns/default/sa/sleep-x/y",
            "td/ns/default/xsa/sleep",
            "td/ns/default/sa/other",
            "td/ns/default//sa/sleep-but-not",
        ] {
            assert!(!s.matches(no), "{no}");
        }
        // `(.+/|)` needs a character before its `/`: an empty segment does not match.
        assert!(!s.matches("td/ns/default//sa/sleep"));
        assert_eq!(sa("bare").namespace, "policy-ns");
        assert!(ServiceAccount::parse("a/b/c", "x").is_none());
        assert!(ServiceAccount::parse("/b", "x").is_none());
        assert!(ServiceAccount::parse("a/", "x").is_none());
        // Overlapping literal occurrences are all tried.
        assert!(sa("ns/ns").matches("td/ns/ns/ns/ns/sa/ns"));
        assert!(sa("é/sa").matches("td/ns/é/sa/sa"));
    }

    #[test]
    fn trust_domains_match_the_part_before_the_first_slash() {
        let p = |s: &str| StringPattern::parse(s);
        assert!(trust_domain_matches(&p("td"), "td/ns/a/sa/b"));
        assert!(!trust_domain_matches(&p("td"), "td.evil/ns/a/sa/b"));
        assert!(!trust_domain_matches(&p("td"), "xtd/ns/a/sa/b"));
        assert!(trust_domain_matches(&p("prod-*"), "prod-eu/ns/a/sa/b"));
        assert!(!trust_domain_matches(&p("prod-*"), "dev/ns/prod-x/sa/b"));
        assert!(trust_domain_matches(&p("*.corp"), "eu.corp/ns/a/sa/b"));
        assert!(!trust_domain_matches(&p("*.corp"), "eu/ns/x.corp/sa/b"));
        assert!(trust_domain_matches(&p("*"), "anything"));
    }
}
