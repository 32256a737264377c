//! The stable hash every consistent-hash structure and caller agrees on: xxHash64.
//!
//! The ring, the Maglev table and the request key must hash the same way on every process of
//! every version, so the hash is fixed (xxHash64 as Envoy uses for its ring and Maglev
//! balancers) rather than `std`'s randomly seeded `DefaultHasher`.

use xxhash_rust::xxh64::xxh64;

/// Hashes a request key (a header value, a cookie, the source IP's bytes, a query parameter) for
/// [`PickContext::hash`](super::PickContext::hash).
///
/// ```
/// let a = mesh_core::balance::hash_key(b"user-42");
/// assert_eq!(a, mesh_core::balance::hash_key(b"user-42"));
/// assert_ne!(a, mesh_core::balance::hash_key(b"user-43"));
/// ```
pub fn hash_key(key: &[u8]) -> u64 {
    xxh64(key, 0)
}

/// Hashes bytes with a seed (Maglev needs two independent hashes of one address).
pub(crate) fn hash_seeded(bytes: &[u8], seed: u64) -> u64 {
    xxh64(bytes, seed)
}

/// Mixes a hash with a small counter into a new, well-spread hash (the SplitMix64 finaliser),
/// used to probe again when a hashed pick lands on an ejected endpoint.
pub(crate) fn rehash(hash: u64, attempt: u64) -> u64 {
    let mut z = hash.wrapping_add(attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
