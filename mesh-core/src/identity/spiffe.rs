//! SPIFFE IDs, parsed strictly.
//!
//! A SPIFFE ID is the name a workload proves with its X.509-SVID: `spiffe://<trust domain>/<path>`.
//! The grammar follows the [SPIFFE ID spec] (§2): the scheme is exactly `spiffe`, the trust domain
//! is lowercase letters, digits, `.`, `-` and `_`, and the path is one or more `/`-separated
//! segments of letters, digits, `.`, `-` and `_`, none empty, `.` or `..`. Query, fragment, port,
//! userinfo and percent-encoding are all refused, and the whole ID is at most 2,048 bytes.
//!
//! Parsing is strict because the ID is compared byte for byte in authorization: two spellings of
//! one identity (`Spiffe://`, `%2e`, a trailing `/`) would let a policy be sidestepped. Istio names
//! workloads `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`; [`SpiffeId`] exposes
//! those parts when the path has that shape. A path-less ID (a bare trust domain) names no
//! workload and is refused: an SVID always carries a path.
//!
//! [SPIFFE ID spec]: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The longest SPIFFE ID accepted, in bytes (SPIFFE ID spec §2.3).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

const SCHEME: &str = "spiffe://";

/// A validated SPIFFE ID such as `spiffe://cluster.local/ns/default/sa/reviews`.
///
/// ```
/// use mesh_core::identity::SpiffeId;
/// let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/reviews".parse()?;
/// assert_eq!(id.trust_domain(), "cluster.local");
/// assert_eq!(id.path(), "/ns/default/sa/reviews");
/// assert_eq!(id.namespace(), Some("default"));
/// assert_eq!(id.service_account(), Some("reviews"));
/// assert_eq!(id, SpiffeId::istio("cluster.local", "default", "reviews")?);
/// # Ok::<(), mesh_core::identity::SpiffeIdError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The whole ID, `spiffe://td/path`; shared, so a clone (one per request that carries a
    /// peer identity) does not copy it.
    id: Arc<str>,
    /// Byte offset of the path's leading `/` in `id`.
    path_start: usize,
    /// Byte offset of the `/sa/` of an Istio-shaped path (`/ns/<ns>/sa/<sa>`) in `id`: found
    /// once, as authorization and telemetry read the namespace of every request's peer.
    istio_sa: Option<usize>,
}

/// Why a string is not a SPIFFE ID; one variant per rule of the spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// The input is empty.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// Longer than [`MAX_SPIFFE_ID_LEN`].
    #[error("SPIFFE ID is {0} bytes long; at most 2048 are allowed")]
    TooLong(usize),
    /// The scheme is not exactly `spiffe://` (case matters).
    #[error("SPIFFE ID must start with `spiffe://`")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("SPIFFE ID has an empty trust domain")]
    EmptyTrustDomain,
    /// `user@` before the trust domain.
    #[error("SPIFFE ID must not contain userinfo (`@`) in the trust domain")]
    UserInfo,
    /// `:port` after the trust domain.
    #[error("SPIFFE ID must not contain a port")]
    Port,
    /// A character outside `[a-z0-9.-_]` in the trust domain (uppercase included).
    #[error(
        "SPIFFE ID trust domain has invalid character {0:?}; allowed are a-z, 0-9, `.`, `-`, `_`"
    )]
    BadTrustDomainChar(char),
    /// `spiffe://td` or `spiffe://td/`: no workload path.
    #[error("SPIFFE ID has no path; a workload ID needs at least one path segment")]
    MissingPath,
    /// `//` in the path, or a trailing `/`.
    #[error("SPIFFE ID path has an empty segment")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("SPIFFE ID path has a `.` or `..` segment")]
    DotSegment,
    /// `%`: percent-encoding is not allowed anywhere.
    #[error("SPIFFE ID must not be percent-encoded")]
    PercentEncoded,
    /// `?query`.
    #[error("SPIFFE ID must not contain a query (`?`)")]
    Query,
    /// `#fragment`.
    #[error("SPIFFE ID must not contain a fragment (`#`)")]
    Fragment,
    /// A character outside `[A-Za-z0-9.-_]` in a path segment.
    #[error("SPIFFE ID path has invalid character {0:?}; allowed are A-Z, a-z, 0-9, `.`, `-`, `_`")]
    BadPathChar(char),
}

impl SpiffeId {
    /// Parses and validates `input`.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if input.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong(input.len()));
        }
        let rest = input
            .strip_prefix(SCHEME)
            .ok_or(SpiffeIdError::WrongScheme)?;
        // Query and fragment end the authority and path in a URI: refuse them first so that
        // `spiffe://td?x` reads as "query", not as a bad trust-domain character.
        if rest.contains('#') {
            return Err(SpiffeIdError::Fragment);
        }
        if rest.contains('?') {
            return Err(SpiffeIdError::Query);
        }
        if rest.contains('%') {
            return Err(SpiffeIdError::PercentEncoded);
        }
        let (trust_domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        validate_trust_domain(trust_domain)?;
        validate_path(path)?;
        let path_start = SCHEME.len() + trust_domain.len();
        Ok(Self {
            id: Arc::from(input),
            path_start,
            istio_sa: istio_sa(path).map(|at| path_start + at),
        })
    }

    /// The Istio identity of service account `service_account` in `namespace`:
    /// `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`.
    pub fn istio(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        Self::parse(&format!(
            "{SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}"
        ))
    }

    /// The trust domain (`cluster.local`).
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..self.path_start]
    }

    /// The path, with its leading `/` (`/ns/default/sa/reviews`).
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The ID without `spiffe://`, as Istio writes principals (`cluster.local/ns/a/sa/b`).
    pub fn principal(&self) -> &str {
        &self.id[SCHEME.len()..]
    }

    /// The namespace when the path is Istio's `/ns/<ns>/sa/<sa>`.
    pub fn namespace(&self) -> Option<&str> {
        self.istio_parts().map(|(ns, _)| ns)
    }

    /// The service account when the path is Istio's `/ns/<ns>/sa/<sa>`.
    pub fn service_account(&self) -> Option<&str> {
        self.istio_parts().map(|(_, sa)| sa)
    }

    fn istio_parts(&self) -> Option<(&str, &str)> {
        let sa = self.istio_sa?;
        let namespace = self.id.get(self.path_start + "/ns/".len()..sa)?;
        let service_account = self.id.get(sa + "/sa/".len()..)?;
        Some((namespace, service_account))
    }
}

/// Where the `/sa/` of an Istio-shaped `path` (`/ns/<ns>/sa/<sa>`, exactly four segments) is.
fn istio_sa(path: &str) -> Option<usize> {
    let mut segments = path.strip_prefix('/')?.split('/');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some("ns"), Some(ns), Some("sa"), Some(_), None) => Some("/ns/".len() + ns.len()),
        _ => None,
    }
}

fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if td.contains('@') {
        return Err(SpiffeIdError::UserInfo);
    }
    if td.contains(':') {
        return Err(SpiffeIdError::Port);
    }
    match td
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        Some(c) => Err(SpiffeIdError::BadTrustDomainChar(c)),
        None => Ok(()),
    }
}

fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() || path == "/" {
        return Err(SpiffeIdError::MissingPath);
    }
    // `path` starts with '/', so the first split item is the empty string before it.
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err(SpiffeIdError::EmptySegment),
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            _ => {}
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_'))
        {
            return Err(SpiffeIdError::BadPathChar(c));
        }
    }
    Ok(())
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use SpiffeIdError as E;

    #[test]
    fn valid_ids() {
        let cases = [
            (
                "spiffe://cluster.local/ns/default/sa/reviews",
                "cluster.local",
                "/ns/default/sa/reviews",
            ),
            ("spiffe://example.org/workload", "example.org", "/workload"),
            ("spiffe://td/a/b/c", "td", "/a/b/c"),
            (
                "spiffe://my_td-1.example/Path.With-Mixed_CASE",
                "my_td-1.example",
                "/Path.With-Mixed_CASE",
            ),
            ("spiffe://1.2.3.4/x", "1.2.3.4", "/x"),
            ("spiffe://td/...", "td", "/..."),
            ("spiffe://td/.hidden/..x", "td", "/.hidden/..x"),
        ];
        for (input, td, path) in cases {
            let id = SpiffeId::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(id.trust_domain(), td, "{input}");
            assert_eq!(id.path(), path, "{input}");
            assert_eq!(id.to_string(), input);
        }
    }

    #[test]
    fn invalid_ids_name_the_rule() {
        let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
        let cases: &[(&str, SpiffeIdError)] = &[
            ("", E::Empty),
            (&long, E::TooLong(long.len())),
            ("http://td/x", E::WrongScheme),
            ("SPIFFE://td/x", E::WrongScheme),
            ("spiffe:/td/x", E::WrongScheme),
            ("td/ns/a", E::WrongScheme),
            ("spiffe:///x", E::EmptyTrustDomain),
            ("spiffe://user@td/x", E::UserInfo),
            ("spiffe://td:8080/x", E::Port),
            ("spiffe://Cluster.local/x", E::BadTrustDomainChar('C')),
            ("spiffe://td!/x", E::BadTrustDomainChar('!')),
            ("spiffe://td", E::MissingPath),
            ("spiffe://td/", E::MissingPath),
            ("spiffe://td//x", E::EmptySegment),
            ("spiffe://td/x/", E::EmptySegment),
            ("spiffe://td/./x", E::DotSegment),
            ("spiffe://td/x/..", E::DotSegment),
            ("spiffe://td/x%20y", E::PercentEncoded),
            ("spiffe://td/x?y=1", E::Query),
            ("spiffe://td/x#frag", E::Fragment),
            ("spiffe://td/x y", E::BadPathChar(' ')),
            ("spiffe://td/ns/é", E::BadPathChar('é')),
            ("spiffe://td/a:b", E::BadPathChar(':')),
        ];
        for (input, want) in cases {
            assert_eq!(SpiffeId::parse(input).as_ref(), Err(want), "{input}");
        }
    }

    #[test]
    fn max_length_is_inclusive() {
        let prefix = "spiffe://td/";
        let exact = format!("{prefix}{}", "a".repeat(MAX_SPIFFE_ID_LEN - prefix.len()));
        assert!(SpiffeId::parse(&exact).is_ok());
    }

    #[test]
    fn istio_form() {
        let id = SpiffeId::istio("cluster.local", "bookinfo", "reviews").unwrap();
        assert_eq!(id.as_str(), "spiffe://cluster.local/ns/bookinfo/sa/reviews");
        assert_eq!(id.principal(), "cluster.local/ns/bookinfo/sa/reviews");
        assert_eq!(id.namespace(), Some("bookinfo"));
        assert_eq!(id.service_account(), Some("reviews"));
        assert_eq!(
            SpiffeId::istio("cluster.local", "a/b", "c"),
            SpiffeId::parse("spiffe://cluster.local/ns/a/b/sa/c")
        );
        // The parts are found once, at parse; a namespace named `sa` is still a namespace.
        let id = SpiffeId::parse("spiffe://td/ns/sa/sa/x").unwrap();
        assert_eq!(
            (id.namespace(), id.service_account()),
            (Some("sa"), Some("x"))
        );
        for not_istio in [
            "spiffe://td/ns/a/xx/b",
            "spiffe://td/ns/a/sa",
            "spiffe://td/ns/a/sa/b/c",
            "spiffe://td/x/a/sa/b",
        ] {
            let id = SpiffeId::parse(not_istio).unwrap();
            assert_eq!(id.namespace(), None, "{not_istio}");
            assert_eq!(id.service_account(), None, "{not_istio}");
        }
        assert_eq!(
            SpiffeId::istio("TD", "a", "b"),
            Err(E::BadTrustDomainChar('T'))
        );
    }
}
