//! Request edits a route asks for: rewrites, and the request target each HTTP version expects
//! (header operations are compiled in `plan.rs`); plus reading a request's `grpc-timeout`.

use std::time::Duration;

use http::header::{HOST, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Uri, Version};
use mesh_core::model::{Rewrite, StringMatch};

/// Rewrites the path (replacing the prefix the route matched, or the whole path for other
/// matches) and the authority, as Istio's `rewrite` does.
pub(crate) fn rewrite_target(
    path_and_query: &str,
    authority: &str,
    matched_prefix: Option<&StringMatch>,
    rewrite: &Rewrite,
) -> (String, String) {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut new_path = path.to_owned();
    if let Some(uri) = &rewrite.uri {
        new_path = match matched_prefix {
            Some(StringMatch::Prefix(prefix)) if path.len() >= prefix.len() => {
                format!("{uri}{}", &path[prefix.len()..])
            }
            _ => uri.clone(),
        };
        if new_path.is_empty() {
            new_path.push('/');
        }
    }
    if let Some(q) = query {
        new_path.push('?');
        new_path.push_str(q);
    }
    let authority = rewrite
        .authority
        .clone()
        .unwrap_or_else(|| authority.to_owned());
    (new_path, authority)
}

/// Where a request goes: its authority and path (with query), kept as the `http` parts the
/// caller's URI was made of, so the upstream URI is built by moving them, not by copying.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) authority: Authority,
    pub(crate) path_and_query: PathAndQuery,
    /// The authority's port, else the scheme's default.
    pub(crate) port: u16,
}

impl Target {
    /// Takes the target out of `parts`' URI (leaving `/`): the URI's authority, else the Host
    /// header's; the path `/` when there is none. `None` without an authority.
    pub(crate) fn take(parts: &mut Parts) -> Option<Self> {
        let uri = std::mem::take(&mut parts.uri).into_parts();
        let https = uri.scheme.as_ref() == Some(&Scheme::HTTPS);
        let authority = match uri.authority {
            Some(a) => a,
            None => parts.headers.get(HOST)?.to_str().ok()?.parse().ok()?,
        };
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Self {
            authority,
            path_and_query: uri
                .path_and_query
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            port,
        })
    }

    /// `authority` and `path_and_query` as rewritten; an authority that is not one keeps the
    /// current (validation refuses those), a path that is not one becomes `/`.
    pub(crate) fn rewritten(&self, authority: String, path_and_query: String) -> Self {
        Self {
            authority: Authority::try_from(authority).unwrap_or_else(|_| self.authority.clone()),
            path_and_query: PathAndQuery::try_from(path_and_query)
                .unwrap_or_else(|_| PathAndQuery::from_static("/")),
            port: self.port,
        }
    }
}

/// Sets the request target the way the upstream connection's HTTP version expects: origin-form
/// with a `Host` header for HTTP/1.1, absolute-form (for `:authority`) for HTTP/2.
pub(crate) fn set_target(parts: &mut Parts, target: Target, http2: bool) {
    if http2 {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(target.authority);
        uri.path_and_query = Some(target.path_and_query);
        if let Ok(uri) = Uri::from_parts(uri) {
            parts.uri = uri;
        }
        parts.version = Version::HTTP_2;
        parts.headers.remove(HOST);
    } else {
        if let Ok(host) = HeaderValue::from_str(target.authority.as_str()) {
            parts.headers.insert(HOST, host);
        }
        parts.uri = Uri::from(target.path_and_query);
        parts.version = Version::HTTP_11;
    }
}

/// The deadline a gRPC caller sent (`grpc-timeout: 100m`), per the gRPC over HTTP/2 spec.
pub(crate) fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
    let value = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::plan::HeaderOps;
    use super::*;
    use http::Request;
    use mesh_core::model::HeaderMutation;

    #[test]
    fn header_operations() {
        let mut h = HeaderMap::new();
        h.insert("x-old", HeaderValue::from_static("1"));
        h.insert("x-set", HeaderValue::from_static("old"));
        let ops = HeaderMutation {
            set: vec![("x-set".into(), "new".into())],
            add: vec![("x-add".into(), "a".into()), ("x-add".into(), "b".into())],
            remove: vec!["x-old".into()],
        };
        HeaderOps::compile(&ops).apply(&mut h);
        assert!(h.get("x-old").is_none());
        assert_eq!(h["x-set"], "new");
        assert_eq!(h.get_all("x-add").iter().count(), 2);
    }

    #[test]
    fn rewrites_follow_istio() {
        let rw = Rewrite {
            uri: Some("/v2".into()),
            authority: Some("reviews-v2".into()),
        };
        let prefix = StringMatch::Prefix("/v1".into());
        assert_eq!(
            rewrite_target("/v1/items?x=1", "reviews", Some(&prefix), &rw),
            ("/v2/items?x=1".to_owned(), "reviews-v2".to_owned())
        );
        let exact = StringMatch::Exact("/login".into());
        let rw = Rewrite {
            uri: Some("/auth/login".into()),
            authority: None,
        };
        assert_eq!(
            rewrite_target("/login", "a", Some(&exact), &rw),
            ("/auth/login".to_owned(), "a".to_owned())
        );
    }

    #[test]
    fn targets_per_version() {
        let parts = || {
            let (mut parts, ()) = Request::get("http://reviews:9080/a?b")
                .body(())
                .unwrap()
                .into_parts();
            let target = Target::take(&mut parts).unwrap();
            assert_eq!(target.port, 9080);
            (parts, target)
        };
        let (mut r, target) = parts();
        set_target(&mut r, target, false);
        assert_eq!(r.uri, "/a?b");
        assert_eq!(r.headers[HOST], "reviews:9080");
        let (mut r, target) = parts();
        r.headers.insert(HOST, HeaderValue::from_static("stale"));
        set_target(&mut r, target, true);
        assert_eq!(r.uri, "http://reviews:9080/a?b");
        assert!(r.headers.get(HOST).is_none());
        // The Host header names the target when the URI does not; the path defaults to `/`.
        let (mut parts, ()) = Request::get("/").body(()).unwrap().into_parts();
        assert!(Target::take(&mut parts).is_none());
        parts
            .headers
            .insert(HOST, HeaderValue::from_static("ratings"));
        let target = Target::take(&mut parts).unwrap();
        assert_eq!((target.authority.as_str(), target.port), ("ratings", 80));
        assert_eq!(target.path_and_query, "/");
    }

    #[test]
    fn grpc_timeouts() {
        let mut h = HeaderMap::new();
        for (v, d) in [
            ("100m", Duration::from_millis(100)),
            ("2S", Duration::from_secs(2)),
            ("1H", Duration::from_secs(3600)),
        ] {
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            assert_eq!(grpc_timeout(&h), Some(d));
        }
        h.insert("grpc-timeout", HeaderValue::from_static("1x"));
        assert_eq!(grpc_timeout(&h), None);
        h.insert("grpc-timeout", HeaderValue::from_static("1234567890S"));
        assert_eq!(grpc_timeout(&h), None, "at most 8 digits");
    }
}
