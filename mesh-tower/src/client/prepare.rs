//! Request and response edits a route asks for: header operations, rewrites, and the request
//! target each HTTP version expects; plus reading a request's `grpc-timeout`.

use std::time::Duration;

use http::header::{HOST, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Uri, Version};
use mesh_core::model::{HeaderMutation, Rewrite, StringMatch};

/// Applies `set`, `add` and `remove` to `headers`. Invalid names or values (which validation
/// should have refused) are skipped.
pub(crate) fn apply_headers(headers: &mut HeaderMap, ops: &HeaderMutation) {
    for name in &ops.remove {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    for (name, value) in &ops.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    for (name, value) in &ops.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
}

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

/// Sets the request target the way the upstream connection's HTTP version expects: origin-form
/// with a `Host` header for HTTP/1.1, absolute-form (for `:authority`) for HTTP/2.
pub(crate) fn set_target<B>(
    request: &mut Request<B>,
    authority: &str,
    path_and_query: &str,
    http2: bool,
) {
    let pq =
        PathAndQuery::try_from(path_and_query).unwrap_or_else(|_| PathAndQuery::from_static("/"));
    if http2 {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Authority::try_from(authority).ok();
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
        *request.version_mut() = Version::HTTP_2;
        request.headers_mut().remove(HOST);
    } else {
        *request.uri_mut() = Uri::from(pq);
        *request.version_mut() = Version::HTTP_11;
        if let Ok(host) = HeaderValue::from_str(authority) {
            request.headers_mut().insert(HOST, host);
        }
    }
}

/// The deadline a gRPC caller sent (`grpc-timeout: 100m`), per the gRPC over HTTP/2 spec.
pub(crate) fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
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
    use super::*;

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
        apply_headers(&mut h, &ops);
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
        let mut r = Request::new(());
        set_target(&mut r, "reviews:9080", "/a?b", false);
        assert_eq!(r.uri(), "/a?b");
        assert_eq!(r.headers()[HOST], "reviews:9080");
        set_target(&mut r, "reviews:9080", "/a?b", true);
        assert_eq!(r.uri(), "http://reviews:9080/a?b");
        assert!(r.headers().get(HOST).is_none());
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
