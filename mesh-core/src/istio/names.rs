//! Istio's naming rules: short hosts, wildcard hosts, the domains a virtual host answers to, and
//! SPIFFE identities.

use crate::MeshSettings;

/// Resolves a host as Istio's `ResolveShortnameToFQDN` does: a name without dots (and not `*`)
/// is a service in the resource's namespace, `<name>.<namespace>.svc.<domain_suffix>`; anything
/// with a dot (or a wildcard) is taken as given. Lowercased.
pub(crate) fn resolve_host(host: &str, namespace: &str, settings: &MeshSettings) -> String {
    let host = host.to_ascii_lowercase();
    if host == "*" || host.contains('.') {
        return host;
    }
    if let Some(label) = host.strip_prefix("*") {
        // `*foo` without a dot: Istio expands it too.
        return format!("*{label}.{namespace}.svc.{}", settings.domain_suffix);
    }
    format!("{host}.{namespace}.svc.{}", settings.domain_suffix)
}

/// Whether `pattern` (an exact host, `*.suffix`, or `*`) matches the service `host`, which may
/// itself be a wildcard (then `pattern` must cover it).
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => match host.strip_prefix('*') {
            Some(host_suffix) => host_suffix.ends_with(suffix),
            None => host.len() > suffix.len() && host.ends_with(suffix),
        },
        None => pattern == host,
    }
}

/// How specific a host pattern is: exact hosts beat wildcards, longer wildcards beat shorter.
pub(crate) fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.starts_with('*'), pattern.len())
}

/// Whether `name` is a DNS-1123 label (lowercase alphanumerics and `-`), as Kubernetes'
/// `IsDNS1123Label`, which Istio's `ValidatePortName` uses.
pub(crate) fn is_dns1123_label(name: &str) -> bool {
    is_label(name) && !name.bytes().any(|b| b.is_ascii_uppercase())
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Checks a host as Istio's `ValidateWildcardDomain` does: DNS-1123 labels, where the first may
/// be `*` or start with `*` (`*.example.com`, `*foo`), at most 255 characters.
pub(crate) fn validate_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if host.len() > 255 {
        return Err(format!("host {host:?} is longer than 255 characters"));
    }
    let (first, rest) = match host.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (host, None),
    };
    let first_ok = match first.strip_prefix('*') {
        Some("") => true,
        Some(tail) => is_label(tail.strip_prefix('-').unwrap_or(tail)),
        None => is_label(first),
    };
    if !first_ok || !rest.is_none_or(|rest| rest.split('.').all(is_label)) {
        return Err(format!("invalid host {host:?}"));
    }
    Ok(())
}

/// The domains of the virtual host for service `host` on `port`, as Istio builds them for a
/// workload in `workload_ns`: for `reviews.default.svc.cluster.local` seen from `default`,
/// the FQDN, `reviews.default.svc`, `reviews.default` and `reviews`, each bare and with
/// `:port` (the short name only from the service's own namespace). Other hosts answer to the
/// host and `host:port`.
pub(crate) fn domains(
    host: &str,
    port: u16,
    workload_ns: &str,
    settings: &MeshSettings,
) -> Vec<String> {
    let mut names = vec![host.to_owned()];
    let svc_suffix = format!(".svc.{}", settings.domain_suffix);
    if let Some(base) = host.strip_suffix(&svc_suffix)
        && !host.starts_with('*')
        && let Some((name, ns)) = base.rsplit_once('.')
    {
        names.push(format!("{base}.svc"));
        names.push(base.to_owned());
        if ns == workload_ns {
            names.push(name.to_owned());
        }
    }
    let mut out = Vec::with_capacity(names.len() * 2);
    for n in names {
        out.push(format!("{n}:{port}"));
        out.push(n);
    }
    out
}

/// The SPIFFE identity of a service account.
pub(crate) fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_short_names_only() {
        let s = MeshSettings::default();
        assert_eq!(
            resolve_host("reviews", "default", &s),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(resolve_host("Reviews.prod", "default", &s), "reviews.prod");
        assert_eq!(
            resolve_host("*.example.com", "default", &s),
            "*.example.com"
        );
        assert_eq!(resolve_host("*", "default", &s), "*");
    }

    #[test]
    fn wildcards() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("*.com", "*.example.com"));
        assert!(!host_matches("a.example.com", "*.example.com"));
        assert!(host_matches("*", "x"));
        assert!(specificity("a.b") > specificity("*.a.b"));
        assert!(specificity("*.a.b") > specificity("*.b"));
    }

    #[test]
    fn domains_follow_istio() {
        let s = MeshSettings::default();
        let d = domains("reviews.default.svc.cluster.local", 9080, "default", &s);
        for want in [
            "reviews.default.svc.cluster.local",
            "reviews.default.svc.cluster.local:9080",
            "reviews.default.svc",
            "reviews.default",
            "reviews:9080",
            "reviews",
        ] {
            assert!(d.contains(&want.to_owned()), "{want} in {d:?}");
        }
        let d = domains("reviews.default.svc.cluster.local", 9080, "other", &s);
        assert!(!d.contains(&"reviews".to_owned()));
        assert_eq!(
            domains("api.example.com", 443, "default", &s),
            ["api.example.com:443", "api.example.com"]
        );
    }

    #[test]
    fn host_validation() {
        assert!(validate_host("reviews").is_ok());
        assert!(validate_host("*.example.com").is_ok());
        assert!(validate_host("a..b").is_err());
        assert!(validate_host("bad host").is_err());
        assert!(validate_host("*foo").is_ok());
        assert!(validate_host("a.*.com").is_err());
        assert!(validate_host("under_score.com").is_err());
    }
}
