//! MAGLEV: consistent hashing with a lookup table (Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI 2016, §3.4;
//! <https://research.google/pubs/maglev-a-fast-and-reliable-software-network-load-balancer/>).
//!
//! Each endpoint has a permutation of the table slots, `(offset + j × skip) mod M` with `offset`
//! and `skip` from two independent hashes of its address and `M` prime; endpoints take turns
//! claiming their next free preferred slot until the table is full. A pick is one modulo and one
//! load. Compared with a ring, the table spreads keys more evenly and builds faster, at the cost
//! of slightly more disruption when endpoints change.
//!
//! Weights follow Envoy's weighted Maglev: in round *t* an endpoint claims a slot only while its
//! count is at most `t × weight / max_weight`, so slots end up proportional to weight.
//! An ejected endpoint is skipped by rehashing the key a few times; a key that still lands on
//! ejected endpoints falls back to a hash-decided draw over the healthy endpoints (the balancer
//! does that), which is still stable for a given key and health state.

use super::hash::{hash_seeded, rehash};

/// Envoy's (and Istio's) default table size.
pub(crate) const DEFAULT_TABLE_SIZE: u64 = 65_537;
/// Envoy's largest allowed table size.
pub(crate) const MAX_TABLE_SIZE: u64 = 5_000_011;
/// Rehashes tried when the first slot's endpoint is ejected.
const MAX_REHASH: u64 = 8;
const EMPTY: u32 = u32::MAX;

/// A Maglev lookup table over some endpoints.
pub(crate) struct Maglev {
    table: Box<[u32]>,
}

impl std::fmt::Debug for Maglev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The table can hold millions of entries: show its size only.
        f.debug_struct("Maglev")
            .field("len", &self.table.len())
            .finish()
    }
}

impl Maglev {
    /// Builds the table of prime size `size` for `members` weighted by `weights[member]`, each
    /// endpoint named by `name(member)`.
    pub(crate) fn new(
        members: &[u32],
        weights: &[u32],
        name: impl Fn(u32) -> String,
        size: u64,
    ) -> Self {
        if members.is_empty() {
            return Self {
                table: Box::new([]),
            };
        }
        let m = size;
        let weight = |i: u32| u64::from(weights.get(i as usize).copied().unwrap_or(1).max(1));
        let max_weight = members.iter().map(|&i| weight(i)).max().unwrap_or(1);
        struct Perm {
            member: u32,
            offset: u64,
            skip: u64,
            next: u64,
            count: u64,
            weight: u64,
        }
        let mut perms: Vec<Perm> = members
            .iter()
            .map(|&member| {
                let n = name(member);
                Perm {
                    member,
                    offset: hash_seeded(n.as_bytes(), 0) % m,
                    skip: hash_seeded(n.as_bytes(), 1) % (m - 1) + 1,
                    next: 0,
                    count: 0,
                    weight: weight(member),
                }
            })
            .collect();
        let mut table = vec![EMPTY; m as usize];
        let mut filled = 0u64;
        let mut round = 0u64;
        'fill: loop {
            for p in &mut perms {
                // Claim a slot only while the count trails this round's weighted quota.
                if p.count * max_weight > round * p.weight {
                    continue;
                }
                loop {
                    let slot = ((p.offset + p.next * p.skip) % m) as usize;
                    p.next += 1;
                    if table[slot] == EMPTY {
                        table[slot] = p.member;
                        p.count += 1;
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break 'fill;
                }
            }
            round += 1;
        }
        Self {
            table: table.into_boxed_slice(),
        }
    }

    /// The endpoint for `hash` for which `usable` holds, rehashing past unusable ones a few times.
    #[inline]
    pub(crate) fn pick(&self, hash: u64, usable: impl Fn(u32) -> bool) -> Option<u32> {
        let m = self.table.len() as u64;
        if m == 0 {
            return None;
        }
        let first = self.table[(hash % m) as usize];
        if usable(first) {
            return Some(first);
        }
        (1..=MAX_REHASH)
            .map(|k| self.table[(rehash(hash, k) % m) as usize])
            .find(|&i| usable(i))
    }

    #[cfg(test)]
    pub(crate) fn table(&self) -> &[u32] {
        &self.table
    }
}

/// Whether `n` is prime (trial division; table sizes are at most a few million).
pub(crate) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_full_and_weighted() {
        let maglev = Maglev::new(&[0, 1, 2], &[1, 1, 2], |m| format!("ep{m}"), 1009);
        let t = maglev.table();
        assert_eq!(t.len(), 1009);
        assert!(t.iter().all(|&x| x != EMPTY));
        let count = |m| t.iter().filter(|&&x| x == m).count() as f64;
        // Slots proportional to weight: 1/4, 1/4, 1/2 (within a few slots).
        assert!((count(0) / 1009.0 - 0.25).abs() < 0.01);
        assert!((count(2) / 1009.0 - 0.5).abs() < 0.01);
    }

    #[test]
    fn primes() {
        assert!(is_prime(65_537));
        assert!(is_prime(5_000_011));
        assert!(!is_prime(65_536));
        assert!(!is_prime(1));
        assert!(is_prime(2));
    }
}
