//! Trust-domain aliasing in AuthorizationPolicy, as istiod applies it to every rule
//! (`pilot/pkg/security/trustdomain/bundle.go`, called from `Model.MigrateTrustDomain`).
//!
//! The bundle is the mesh's trust domain followed by its aliases (MeshConfig
//! `trustDomainAliases`). A principal naming any of them, or `cluster.local` (which always
//! stands for the local trust domain), is rewritten into one principal per trust domain of the
//! bundle, so a policy written for `cluster.local` keeps working after a migration. Values of
//! `trustDomains` / `source.trustDomain` naming a bundle member expand to the whole bundle.

/// Istio's name for "the local trust domain" in policies.
const CLUSTER_LOCAL: &str = "cluster.local";

/// The local trust domain and its aliases.
#[derive(Clone, Debug)]
pub(crate) struct Bundle {
    domains: Vec<String>,
}

impl Bundle {
    pub(crate) fn new(trust_domain: &str, aliases: &[String]) -> Self {
        let mut domains = vec![trust_domain.to_owned()];
        domains.extend(aliases.iter().cloned());
        Self { domains }
    }

    /// istiod's `ReplaceTrustDomainAliases`: each principal of the shape `td/ns/x/sa/y` whose
    /// trust domain is in the bundle (exactly or by a `*` pattern on either side) or is
    /// `cluster.local` becomes one principal per bundle member; the rest are kept as written.
    pub(crate) fn replace_aliases(&self, principals: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for principal in principals {
            let parts: Vec<&str> = principal.split('/').collect();
            // Not Istio's 5-part form, or `*` as the trust domain: not enforcing one.
            if parts.len() != 5 || parts[0] == "*" {
                push_unique(&mut out, principal.clone());
                continue;
            }
            let td = parts[0];
            if !(self.domains.iter().any(|d| string_match(td, d)) || td == CLUSTER_LOCAL) {
                push_unique(&mut out, principal.clone());
                continue;
            }
            let rest = parts[1..].join("/");
            for d in &self.domains {
                // A `*suffix` bundle member matching the principal's domain keeps it as written.
                let p = if suffix_match(d, td) {
                    principal.clone()
                } else {
                    format!("{d}/{rest}")
                };
                push_unique(&mut out, p);
            }
        }
        out
    }

    /// istiod's `ExpandTrustDomainAliases`: a value equal to a bundle member becomes the whole
    /// bundle; duplicates removed, order kept.
    pub(crate) fn expand(&self, values: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for v in values {
            if self.domains.contains(v) {
                for d in &self.domains {
                    push_unique(&mut out, d.clone());
                }
            } else {
                push_unique(&mut out, v.clone());
            }
        }
        out
    }
}

fn push_unique(out: &mut Vec<String>, v: String) {
    if !out.contains(&v) {
        out.push(v);
    }
}

/// istiod's `stringMatch` for one list member: exact, `*`, or a prefix/suffix pattern on
/// either side.
fn string_match(a: &str, s: &str) -> bool {
    a == s
        || s == "*"
        || prefix_match(a, s)
        || prefix_match(s, a)
        || suffix_match(a, s)
        || suffix_match(s, a)
}

/// `pattern` is `prefix*` and `a` starts with `prefix`.
fn prefix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_suffix('*').is_some_and(|p| a.starts_with(p))
}

/// `pattern` is `*suffix` and `a` ends with `suffix`.
fn suffix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_prefix('*').is_some_and(|p| a.ends_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The cases of istiod's `TestReplaceTrustDomainAliases` (bundle_test.go), in our form.
    #[test]
    fn principals_are_rewritten_for_every_alias() {
        let b = Bundle::new("td2", &strings(&["td1"]));
        assert_eq!(
            b.replace_aliases(&strings(&["cluster.local/ns/foo/sa/bar"])),
            strings(&["td2/ns/foo/sa/bar", "td1/ns/foo/sa/bar"])
        );
        assert_eq!(
            b.replace_aliases(&strings(&["td1/ns/foo/sa/bar"])),
            strings(&["td2/ns/foo/sa/bar", "td1/ns/foo/sa/bar"])
        );
        // A domain outside the bundle is kept as written.
        assert_eq!(
            b.replace_aliases(&strings(&["other/ns/foo/sa/bar"])),
            strings(&["other/ns/foo/sa/bar"])
        );
        // `*` trust domain and non-Istio shapes are not touched.
        assert_eq!(
            b.replace_aliases(&strings(&["*/ns/foo/sa/bar", "ns/foo/sa/bar", "*"])),
            strings(&["*/ns/foo/sa/bar", "ns/foo/sa/bar", "*"])
        );
        // A local domain other than cluster.local still replaces `cluster.local`.
        let local = Bundle::new("example.org", &[]);
        assert_eq!(
            local.replace_aliases(&strings(&["cluster.local/ns/a/sa/b"])),
            strings(&["example.org/ns/a/sa/b"])
        );
        // A `*-td` principal matching every bundle member is kept once, as written.
        let both = Bundle::new("new-td", &strings(&["old-td"]));
        assert_eq!(
            both.replace_aliases(&strings(&["*-td/ns/a/sa/b"])),
            strings(&["*-td/ns/a/sa/b"])
        );
    }

    #[test]
    fn trust_domain_values_expand_to_the_bundle() {
        let b = Bundle::new("td2", &strings(&["td1"]));
        assert_eq!(
            b.expand(&strings(&["td1", "other", "td2"])),
            strings(&["td2", "td1", "other"])
        );
        assert_eq!(b.expand(&strings(&["td*"])), strings(&["td*"]));
    }
}
