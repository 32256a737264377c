//! Request path normalisation, so that a policy on `/admin` cannot be bypassed with `//admin`,
//! `/%2Fadmin` or `/public/../admin`, and the application sees exactly the path the policy judged.
//!
//! This is Istio's strictest mesh-wide setting, `meshConfig.pathNormalization.normalization:
//! DECODE_AND_MERGE_SLASHES`, which configures Envoy's HTTP connection manager with
//! `normalize_path: true` (RFC 3986 normalisation plus `\` → `/`), `merge_slashes: true` and
//! `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`. It is a superset of Istio's default
//! `BASE`. See <https://istio.io/latest/docs/reference/config/security/normalization/> and
//! <https://istio.io/latest/docs/ops/best-practices/security/#authorization-policies>
//! (CVE-2021-31920).
//!
//! The steps, in order, on the part before `?` (the query is kept unchanged):
//!
//! 1. Reject what cannot be a safe origin-form path: not starting with `/`, a `#` fragment (Envoy
//!    rejects those by default), a raw control character, space or non-ASCII character, a `%`
//!    not followed by two hex digits, and any percent-encoded control character (`%00`–`%1F`,
//!    `%7F`). Each is a [`PathError`], which a server answers with 400.
//! 2. Decode, once (never twice: `%252F` stays `%252F`): `%2F`/`%2f` → `/`, `%5C`/`%5c` → `\`,
//!    and the unreserved characters of RFC 3986 §2.3 (`A–Z a–z 0–9 - . _ ~`). Every other escape is
//!    kept, with its hex digits upper-cased (RFC 3986 §6.2.2.1).
//! 3. Convert `\` to `/`.
//! 4. Merge repeated slashes.
//! 5. Remove `.` and `..` segments (RFC 3986 §5.2.4); `..` at the root stays at the root.
//!
//! Matching stays case-sensitive, as in Istio: `/ADMIN` is a different path from `/admin`, and a
//! policy that must cover both has to name both (or the application must treat them alike).

use std::borrow::Cow;

use thiserror::Error;

/// Why a request path was refused. A server answers 400 Bad Request and does not call the
/// application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PathError {
    /// The path does not start with `/` (empty, `*`, or an absolute URI).
    #[error("request path must start with '/'")]
    NotOriginForm,
    /// The request target has a `#fragment`, which a client must not send.
    #[error("request path has a fragment ('#' at byte {0})")]
    Fragment(usize),
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding at byte {0}")]
    InvalidPercentEncoding(usize),
    /// A percent-encoded NUL or other control character.
    #[error("percent-encoded control character at byte {0}")]
    EncodedControl(usize),
    /// A raw control character, space or non-ASCII character.
    #[error("invalid character in request path at byte {0}")]
    InvalidCharacter(usize),
}

/// A normalised request target: the path the policy judges and the application receives, and the
/// query as it arrived.
///
/// Borrows the input when it was already normal (the common case: no allocation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NormalizedPath<'a> {
    /// Path followed by `?query` when there was one.
    full: Cow<'a, str>,
    /// Length of the path part of `full`.
    path_len: usize,
}

impl<'a> NormalizedPath<'a> {
    /// The normalised path, without the query (what policies match on).
    pub fn path(&self) -> &str {
        &self.full[..self.path_len]
    }

    /// The query without its `?`, unchanged, if the request had one.
    pub fn query(&self) -> Option<&str> {
        // Past the end (no `?`) is `None`.
        self.full.get(self.path_len + 1..)
    }

    /// The normalised path followed by `?query`: what to hand to the application.
    pub fn path_and_query(&self) -> &str {
        &self.full
    }

    /// Whether normalisation changed the request target (the URI must then be rewritten).
    pub fn is_changed(&self) -> bool {
        matches!(self.full, Cow::Owned(_))
    }

    /// The normalised path followed by `?query`, by value.
    pub fn into_path_and_query(self) -> Cow<'a, str> {
        self.full
    }

    /// Detaches from the input.
    pub fn into_owned(self) -> NormalizedPath<'static> {
        NormalizedPath {
            full: Cow::Owned(self.full.into_owned()),
            path_len: self.path_len,
        }
    }
}

/// Normalises a request target in origin form (`/path?query`); see the module docs for exactly
/// what is decoded, merged, removed and refused.
pub fn normalize_path(raw: &str) -> Result<NormalizedPath<'_>, PathError> {
    // One scan to the first `?` or `#` (this runs on every request), then the query's.
    let (path, query) = match raw.bytes().position(|b| b == b'?' || b == b'#') {
        Some(at) if raw.as_bytes().get(at) == Some(&b'#') => {
            return Err(PathError::Fragment(at));
        }
        Some(at) => {
            let query = raw.get(at + 1..).unwrap_or("");
            if let Some(hash) = query.find('#') {
                return Err(PathError::Fragment(at + 1 + hash));
            }
            (raw.get(..at).unwrap_or(raw), Some(query))
        }
        None => (raw, None),
    };
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if is_normal(path) {
        return Ok(NormalizedPath {
            full: Cow::Borrowed(raw),
            path_len: path.len(),
        });
    }
    let decoded = decode(path)?;
    let mut full = remove_dot_segments(&decoded);
    let path_len = full.len();
    if let Some(q) = query {
        full.push('?');
        full.push_str(q);
    }
    // Decoding can give back the input (`%25` stays `%25`): report it unchanged.
    let full = if full == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(full)
    };
    Ok(NormalizedPath { full, path_len })
}

/// Whether `path` (starting with `/`) is already in normal form: only printable ASCII, no `%`
/// or `\`, no empty segment before the last, no `.` or `..` segment. Such a path is what
/// [`remove_dot_segments`] would produce from itself.
fn is_normal(path: &str) -> bool {
    // One pass over the bytes (this runs on every request): each `/` ends a segment, which
    // must be neither empty nor a dot segment; the last (after the final `/`) may be empty.
    let bytes = path.as_bytes();
    let dot_or_empty = |segment: &[u8]| matches!(segment, b"" | b"." | b"..");
    let mut start = 1;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if b == b'/' {
            if bytes.get(start..i).is_none_or(dot_or_empty) {
                return false;
            }
            start = i + 1;
        } else if !b.is_ascii_graphic() || b == b'%' || b == b'\\' {
            return false;
        }
    }
    bytes
        .get(start..)
        .is_some_and(|last| last != b"." && last != b"..")
}

/// Step 1–3: validate, decode once, and turn every `\` into `/`.
fn decode(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (hi, lo) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => (h, l),
                    _ => return Err(PathError::InvalidPercentEncoding(i)),
                };
                let value = match (hex_value(hi), hex_value(lo)) {
                    (Some(h), Some(l)) => h << 4 | l,
                    _ => return Err(PathError::InvalidPercentEncoding(i)),
                };
                if value.is_ascii_control() {
                    return Err(PathError::EncodedControl(i));
                }
                if value == b'/' || value == b'\\' {
                    out.push('/');
                } else if is_unreserved(value) {
                    out.push(char::from(value));
                } else {
                    out.push('%');
                    out.push(char::from(hi.to_ascii_uppercase()));
                    out.push(char::from(lo.to_ascii_uppercase()));
                }
                i += 3;
            }
            b'\\' => {
                out.push('/');
                i += 1;
            }
            b if b.is_ascii_graphic() => {
                out.push(char::from(b));
                i += 1;
            }
            _ => return Err(PathError::InvalidCharacter(i)),
        }
    }
    Ok(out)
}

/// Steps 4–5: merge slashes and resolve `.` / `..`, never above the root. `path` starts with `/`
/// and holds no `\`.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    // The first item is the empty string before the leading '/'.
    for segment in path.split('/').skip(1) {
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                kept.pop();
                trailing_slash = true;
            }
            s => {
                kept.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if kept.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The single-pass `is_normal` decides as the definition it implements: printable ASCII,
    /// no `%` or `\\`, no empty segment before the last, no `.` or `..` segment. Every path of
    /// up to 7 characters over an alphabet that reaches each case.
    #[test]
    fn is_normal_matches_its_definition() {
        fn by_definition(path: &str) -> bool {
            path.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'%' && b != b'\\')
                && {
                    let segments: Vec<&str> = path.split('/').skip(1).collect();
                    segments.iter().enumerate().all(|(i, s)| {
                        *s != "." && *s != ".." && (!s.is_empty() || i + 1 == segments.len())
                    })
                }
        }
        let alphabet = ['/', '.', 'a', '%', '\\', ' '];
        let mut paths = vec![String::from("/")];
        for _ in 0..6 {
            let longer: Vec<String> = paths
                .iter()
                .filter(|p| p.len() == paths.last().map_or(0, String::len))
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            paths.extend(longer);
        }
        assert!(paths.len() > 50_000);
        for path in &paths {
            assert_eq!(is_normal(path), by_definition(path), "{path:?}");
        }
    }
    use proptest::prelude::*;

    fn norm(raw: &str) -> String {
        normalize_path(raw).unwrap().path_and_query().to_owned()
    }

    #[test]
    fn table() {
        let cases = [
            ("/", "/"),
            ("/admin", "/admin"),
            ("//admin", "/admin"),
            ("///a////b", "/a/b"),
            ("/%2Fadmin", "/admin"),
            ("/%2fadmin", "/admin"),
            ("/%5Cadmin", "/admin"),
            ("/%5cadmin", "/admin"),
            ("/a\\b", "/a/b"),
            ("/./admin", "/admin"),
            ("/a/../admin", "/admin"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E./admin", "/admin"),
            ("/public%2F..%2Fadmin", "/admin"),
            ("/../../admin", "/admin"),
            ("/..", "/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/admin/", "/admin/"),
            ("/ADMIN", "/ADMIN"),
            ("/%61dmin", "/admin"),
            ("/%7Euser/%2D%5f", "/~user/-_"),
            ("/a%20b", "/a%20b"),
            ("/a%2ab", "/a%2Ab"),
            ("/a%252Fb", "/a%252Fb"),
            ("/a%C3%A9", "/a%C3%A9"),
            ("/admin?x=1", "/admin?x=1"),
            ("/a//b?q=/../&r=%2F", "/a/b?q=/../&r=%2F"),
            ("/a?", "/a?"),
            ("/..a/.b/a..", "/..a/.b/a.."),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw), want, "normalising {raw:?}");
        }
    }

    #[test]
    fn borrows_when_already_normal() {
        for raw in ["/", "/a", "/a/b/", "/a/b?x=%2F&y=/../", "/a.b/..c/.d"] {
            let n = normalize_path(raw).unwrap();
            assert!(!n.is_changed(), "{raw}");
            assert_eq!(n.path_and_query(), raw);
        }
        for raw in ["//a", "/a/./b", "/a/..", "/a/.", "/%41", "/a\\b", "/a//"] {
            assert!(normalize_path(raw).unwrap().is_changed(), "{raw}");
        }
    }

    #[test]
    fn parts() {
        let n = normalize_path("//a/./b?x=1&y").unwrap();
        assert_eq!(n.path(), "/a/b");
        assert_eq!(n.query(), Some("x=1&y"));
        assert_eq!(n.path_and_query(), "/a/b?x=1&y");
        let n = normalize_path("/a?").unwrap();
        assert_eq!((n.path(), n.query()), ("/a", Some("")));
        let n = normalize_path("/a").unwrap();
        assert_eq!(n.query(), None);
    }

    #[test]
    fn refused() {
        use PathError::*;
        let cases = [
            ("", NotOriginForm),
            ("*", NotOriginForm),
            ("admin", NotOriginForm),
            ("\\admin", NotOriginForm),
            ("http://h/admin", NotOriginForm),
            ("/admin#frag", Fragment(6)),
            ("/a?b#c", Fragment(4)),
            ("/a#b?c", Fragment(2)),
            ("/a?b?c#d", Fragment(6)),
            ("#", Fragment(0)),
            ("/a%", InvalidPercentEncoding(2)),
            ("/a%2", InvalidPercentEncoding(2)),
            ("/a%zz", InvalidPercentEncoding(2)),
            ("/a%%41", InvalidPercentEncoding(2)),
            ("/a%00b", EncodedControl(2)),
            ("/a%0Ab", EncodedControl(2)),
            ("/a%0d%0a", EncodedControl(2)),
            ("/a%7f", EncodedControl(2)),
            ("/a b", InvalidCharacter(2)),
            ("/a\0", InvalidCharacter(2)),
            ("/a\tb", InvalidCharacter(2)),
            ("/é", InvalidCharacter(1)),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw), Err(want), "normalising {raw:?}");
        }
    }

    /// Paths built from the pieces that matter: separators, dots, escapes of them, and letters.
    fn tricky_path() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "/", "//", "\\", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%25", "%41",
            "%7e", "%3F", "a", "b", "~", "-", "%C3%A9", ":", "@",
        ]);
        prop::collection::vec(piece, 0..24).prop_map(|pieces| format!("/{}", pieces.concat()))
    }

    proptest! {
        #[test]
        fn idempotent_and_clean(raw in tricky_path(), query in "[a-z=&/.%]{0,6}") {
            let raw = format!("{raw}?{query}");
            let once = normalize_path(&raw).unwrap();
            let path = once.path();
            prop_assert!(path.starts_with('/'));
            prop_assert!(!path.contains("//"), "{path}");
            prop_assert!(!path.contains("/./"), "{path}");
            prop_assert!(!path.contains("/../"), "{path}");
            prop_assert!(!path.ends_with("/.") && !path.ends_with("/.."), "{path}");
            prop_assert!(!path.contains('\\'), "{path}");
            prop_assert_eq!(once.query(), Some(query.as_str()));
            let twice = normalize_path(once.path_and_query()).unwrap();
            prop_assert!(!twice.is_changed(), "{:?} changed again", once.path_and_query());
            prop_assert_eq!(twice.path_and_query(), once.path_and_query());
        }

        #[test]
        fn fast_path_agrees_with_full_normalisation(raw in tricky_path()) {
            let full = remove_dot_segments(&decode(&raw).unwrap());
            let fast = normalize_path(&raw).unwrap();
            prop_assert_eq!(fast.path(), full.as_str());
        }

        #[test]
        fn any_ascii_input_is_refused_or_clean(raw in "/[ -~]{0,40}") {
            if let Ok(once) = normalize_path(&raw) {
                let path = once.path();
                prop_assert!(!path.contains("//") && !path.contains("/./"));
                prop_assert!(!path.contains("/../") && !path.contains('\\'));
                let twice = normalize_path(once.path_and_query()).unwrap();
                prop_assert_eq!(twice.path_and_query(), once.path_and_query());
            }
        }
    }
}
