//! The request hash that consistent-hash balancing (RING_HASH, MAGLEV) keys on: a header, a
//! cookie (generated with a TTL when absent, as Envoy does), the source IP, or a query parameter.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use mesh_core::balance::hash_key;
use mesh_core::model::{HashKey, LbPolicy};
use rand::Rng;

/// The hash for a request, and the `Set-Cookie` to send back when a cookie was generated.
pub(crate) struct RequestHash {
    pub(crate) hash: Option<u64>,
    pub(crate) set_cookie: Option<HeaderValue>,
}

/// Computes the hash `lb` asks for. `source` identifies the caller for `useSourceIp` (in-process,
/// every request of this workload comes from the same place, as through a sidecar).
pub(crate) fn request_hash(
    lb: &LbPolicy,
    headers: &HeaderMap,
    query: Option<&str>,
    source: &[u8],
    rng: &mut impl Rng,
) -> RequestHash {
    let key = match lb {
        LbPolicy::RingHash { key, .. } | LbPolicy::Maglev { key, .. } => key,
        _ => {
            return RequestHash {
                hash: None,
                set_cookie: None,
            };
        }
    };
    match key {
        HashKey::Header(name) => RequestHash {
            hash: headers.get(name.as_str()).map(|v| hash_key(v.as_bytes())),
            set_cookie: None,
        },
        HashKey::QueryParameter(name) => RequestHash {
            hash: query
                .and_then(|q| query_value(q, name))
                .map(|v| hash_key(v.as_bytes())),
            set_cookie: None,
        },
        HashKey::SourceIp => RequestHash {
            hash: Some(hash_key(source)),
            set_cookie: None,
        },
        HashKey::Cookie { name, path, ttl } => match cookie_value(headers, name) {
            Some(value) => RequestHash {
                hash: Some(hash_key(value.as_bytes())),
                set_cookie: None,
            },
            None => match ttl {
                Some(ttl) => {
                    let value = format!("{:016x}", rng.random::<u64>());
                    RequestHash {
                        hash: Some(hash_key(value.as_bytes())),
                        set_cookie: set_cookie(name, &value, path.as_deref(), *ttl),
                    }
                }
                None => RequestHash {
                    hash: None,
                    set_cookie: None,
                },
            },
        },
    }
}

fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn set_cookie(name: &str, value: &str, path: Option<&str>, ttl: Duration) -> Option<HeaderValue> {
    let mut cookie = format!("{name}={value}; Max-Age={}; HttpOnly", ttl.as_secs());
    if let Some(path) = path {
        cookie.push_str("; Path=");
        cookie.push_str(path);
    }
    HeaderValue::from_str(&cookie).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ring(key: HashKey) -> LbPolicy {
        LbPolicy::RingHash {
            key,
            minimum_ring_size: 1024,
        }
    }

    #[test]
    fn keys() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut h = HeaderMap::new();
        h.insert("x-user", HeaderValue::from_static("alice"));
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_static("a=1; session=xyz"),
        );
        let header = request_hash(
            &ring(HashKey::Header("x-user".into())),
            &h,
            None,
            b"",
            &mut rng,
        );
        assert_eq!(header.hash, Some(hash_key(b"alice")));
        let q = request_hash(
            &ring(HashKey::QueryParameter("u".into())),
            &h,
            Some("a=1&u=bob"),
            b"",
            &mut rng,
        );
        assert_eq!(q.hash, Some(hash_key(b"bob")));
        let cookie = HashKey::Cookie {
            name: "session".into(),
            path: None,
            ttl: None,
        };
        assert_eq!(
            request_hash(&ring(cookie), &h, None, b"", &mut rng).hash,
            Some(hash_key(b"xyz"))
        );
        let missing = HashKey::Cookie {
            name: "sticky".into(),
            path: Some("/".into()),
            ttl: Some(Duration::from_secs(60)),
        };
        let generated = request_hash(&ring(missing), &h, None, b"", &mut rng);
        let set = generated
            .set_cookie
            .expect("a cookie is generated when a TTL is set");
        assert!(set.to_str().unwrap().starts_with("sticky="));
        assert!(
            set.to_str()
                .unwrap()
                .contains("Max-Age=60; HttpOnly; Path=/")
        );
        assert!(generated.hash.is_some());
        let src = request_hash(
            &ring(HashKey::SourceIp),
            &h,
            None,
            b"default/frontend",
            &mut rng,
        );
        assert_eq!(src.hash, Some(hash_key(b"default/frontend")));
        assert!(
            request_hash(&LbPolicy::RoundRobin, &h, None, b"", &mut rng)
                .hash
                .is_none()
        );
    }
}
