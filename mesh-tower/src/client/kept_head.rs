//! A request head kept for another attempt.
//!
//! hyper consumes the head it sends, so a request that may be retried after it went out (a
//! response or a reset the route's `retryOn` names) needs a copy. `Parts::clone` copies the
//! header map's entries, indices and extra values (three allocations); this keeps the headers
//! as a list, inline up to [`INLINE`] of them, so the copy usually allocates nothing beyond
//! what sharing the caller's header values takes. The map is rebuilt only when a retry happens.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Extensions, Method, Request, Uri, Version};

/// Headers kept inline; a request with more keeps the rest in a vector.
const INLINE: usize = 16;

/// A copy of a request head, to send again.
pub(crate) struct KeptHead {
    method: Method,
    uri: Uri,
    version: Version,
    headers: [Option<(HeaderName, HeaderValue)>; INLINE],
    more_headers: Vec<(HeaderName, HeaderValue)>,
    extensions: Extensions,
}

impl KeptHead {
    /// Copies `parts` (header values are shared, not copied).
    pub(crate) fn keep(parts: &Parts) -> Self {
        let mut headers: [Option<(HeaderName, HeaderValue)>; INLINE] =
            std::array::from_fn(|_| None);
        let mut more_headers = Vec::new();
        for (i, (name, value)) in parts.headers.iter().enumerate() {
            let pair = (name.clone(), value.clone());
            match headers.get_mut(i) {
                Some(slot) => *slot = Some(pair),
                None => more_headers.push(pair),
            }
        }
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers,
            more_headers,
            extensions: parts.extensions.clone(),
        }
    }

    /// The head to send again: the same method, target, version, headers (in their order,
    /// repeated ones included) and extensions.
    pub(crate) fn restore(&self) -> Parts {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = self.method.clone();
        parts.uri = self.uri.clone();
        parts.version = self.version;
        let pairs = self.headers.iter().flatten().chain(&self.more_headers);
        let mut headers = HeaderMap::with_capacity(INLINE.min(pairs.clone().count()));
        for (name, value) in pairs {
            headers.append(name.clone(), value.clone());
        }
        parts.headers = headers;
        parts.extensions = self.extensions.clone();
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_head_is_the_kept_one() {
        for n in [0, 3, INLINE, INLINE + 5] {
            let mut request = Request::post("http://reviews:9080/a?b")
                .version(Version::HTTP_2)
                .body(())
                .unwrap();
            for i in 0..n {
                request.headers_mut().append(
                    HeaderName::from_bytes(format!("x-h{}", i % 4).as_bytes()).unwrap(),
                    HeaderValue::from_str(&i.to_string()).unwrap(),
                );
            }
            request.extensions_mut().insert(7u32);
            let (parts, ()) = request.into_parts();
            let restored = KeptHead::keep(&parts).restore();
            assert_eq!(restored.method, parts.method);
            assert_eq!(restored.uri, parts.uri);
            assert_eq!(restored.version, parts.version);
            assert_eq!(restored.headers, parts.headers, "{n} headers");
            assert_eq!(
                restored.headers.iter().collect::<Vec<_>>(),
                parts.headers.iter().collect::<Vec<_>>(),
                "same order"
            );
            assert_eq!(restored.extensions.get::<u32>(), Some(&7));
        }
    }
}
