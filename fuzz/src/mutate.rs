//! Byte-level mutation, as the xDS corruption test in `mesh-xds/tests/xds_corrupt.rs` does it
//! (overwrite a few bytes, sometimes cut short), plus the usual fuzzing moves: bit flips,
//! interesting values, inserted and deleted runs, duplicated or copied ranges, dictionary tokens
//! and splices with another input.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

/// Values that sit on boundaries: zero, sign bits, all ones, powers of two.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x8000_0000,
    u64::MAX,
    0x8000_0000_0000_0000,
];

/// Applies one to four mutations to `data`; `dict` supplies tokens to insert, `other` a second
/// input to splice from.
pub fn mutate_bytes(rng: &mut StdRng, data: &mut Vec<u8>, dict: &[Vec<u8>], other: Option<&[u8]>) {
    for _ in 0..rng.random_range(1..=4) {
        mutate_once(rng, data, dict, other);
    }
}

fn mutate_once(rng: &mut StdRng, data: &mut Vec<u8>, dict: &[Vec<u8>], other: Option<&[u8]>) {
    let len = data.len();
    if len == 0 {
        data.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>()));
        return;
    }
    let at = rng.random_range(0..len);
    match rng.random_range(0..11) {
        0 => data[at] ^= 1 << rng.random_range(0..8),
        1 => data[at] = rng.random(),
        2 => {
            let v = *INTERESTING.choose(rng).unwrap_or(&0);
            let width = [1usize, 2, 4, 8][rng.random_range(0..4)].min(len - at);
            let bytes = if rng.random() {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            data[at..at + width].copy_from_slice(&bytes[..width]);
        }
        3 => {
            let n = rng.random_range(1..=16);
            let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(at..at, junk);
        }
        4 => {
            let end = (at + rng.random_range(1..=32)).min(len);
            data.drain(at..end);
        }
        5 => {
            let end = (at + rng.random_range(1..=64)).min(len);
            let run = data[at..end].to_vec();
            let to = rng.random_range(0..=data.len());
            data.splice(to..to, run);
        }
        6 => {
            let from = rng.random_range(0..len);
            let n = rng.random_range(1..=32).min(len - from).min(len - at);
            data.copy_within(from..from + n, at);
        }
        7 if !dict.is_empty() => {
            let token = dict[rng.random_range(0..dict.len())].clone();
            data.splice(at..at, token);
        }
        8 => data.truncate(at),
        9 if other.is_some_and(|o| !o.is_empty()) => {
            let other = other.unwrap_or_default();
            let from = rng.random_range(0..other.len());
            let end = (from + rng.random_range(1..=256)).min(other.len());
            data.splice(at..at, other[from..end].iter().copied());
        }
        _ => {
            // The same byte repeated: long runs find length and recursion limits.
            let n = rng.random_range(1..=1024);
            data.splice(at..at, std::iter::repeat_n(data[at], n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutates_and_is_deterministic() {
        let dict = vec![b"TOKEN".to_vec()];
        let seed = b"hello world, this is a seed".to_vec();
        let run = |s: u64| {
            let mut rng = StdRng::seed_from_u64(s);
            (0..200)
                .map(|_| {
                    let mut d = seed.clone();
                    mutate_bytes(&mut rng, &mut d, &dict, Some(b"other input"));
                    d
                })
                .collect::<Vec<_>>()
        };
        let a = run(3);
        assert_eq!(a, run(3));
        assert!(a.iter().filter(|d| **d != seed).count() > 150);
        assert!(a.iter().any(|d| d.windows(5).any(|w| w == b"TOKEN")));
        assert!(a.iter().any(|d| d.len() < seed.len()));
        assert!(a.iter().any(|d| d.len() > seed.len()));
    }
}
