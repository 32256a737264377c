//! Trace and span ids: fixed-size byte arrays written as lowercase hex.

use std::fmt;

use rand::Rng;

/// A 128-bit trace id; never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span id; never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random, non-zero trace id.
    pub fn random(rng: &mut impl Rng) -> Self {
        loop {
            // `fill_bytes`, not `random::<[u8; 16]>()`: that draws each byte on its own.
            let mut id = [0; 16];
            rng.fill_bytes(&mut id);
            if id != [0; 16] {
                return Self(id);
            }
        }
    }

    /// Parses 32 lowercase hex digits (not all zero); with `allow_short`, also 16 digits
    /// (B3's 64-bit ids, left-padded with zeros).
    pub fn parse(s: &str, allow_short: bool) -> Option<Self> {
        let mut id = [0u8; 16];
        match s.len() {
            32 => decode_hex(s, &mut id)?,
            16 if allow_short => decode_hex(s, &mut id[8..])?,
            _ => return None,
        }
        (id != [0; 16]).then_some(Self(id))
    }
}

impl SpanId {
    /// A random, non-zero span id.
    pub fn random(rng: &mut impl Rng) -> Self {
        loop {
            let mut id = [0; 8];
            rng.fill_bytes(&mut id);
            if id != [0; 8] {
                return Self(id);
            }
        }
    }

    /// Parses 16 lowercase hex digits (not all zero).
    pub fn parse(s: &str) -> Option<Self> {
        let mut id = [0u8; 8];
        if s.len() != 16 {
            return None;
        }
        decode_hex(s, &mut id)?;
        (id != [0; 8]).then_some(Self(id))
    }
}

/// Decodes lowercase hex into `out` (exactly `2 * out.len()` digits). Every incoming trace
/// context is decoded, so this is a table lookup per digit with one check at the end.
fn decode_hex(s: &str, out: &mut [u8]) -> Option<()> {
    let b = s.as_bytes();
    if b.len() != out.len() * 2 {
        return None;
    }
    let mut invalid = 0;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
        invalid |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (invalid & INVALID == 0).then_some(())
}

/// The value of a lowercase hex digit, or `None`.
pub(super) fn nibble(c: u8) -> Option<u8> {
    let v = NIBBLE[usize::from(c)];
    (v & INVALID == 0).then_some(v)
}

/// Marks a byte that is not a lowercase hex digit in [`NIBBLE`].
const INVALID: u8 = 0x80;

/// Each byte's value as a lowercase hex digit, or [`INVALID`].
const NIBBLE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The two lowercase hex digits of `b`.
pub(super) fn hex_pair(b: u8) -> [u8; 2] {
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]
}

/// Writes `bytes` (at most 16) as lowercase hex in one `write_str`: ids are formatted for every
/// request (headers, records), so no per-digit formatting machinery.
fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let mut buf = [0u8; 32];
    let out = buf.get_mut(..bytes.len() * 2).ok_or(fmt::Error)?;
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&hex_pair(*b));
    }
    f.write_str(std::str::from_utf8(out).map_err(|_| fmt::Error)?)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table decodes exactly the lowercase hex digits: every pair of bytes.
    #[test]
    fn decode_hex_takes_lowercase_hex_only() {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        for hi in 0..=u8::MAX {
            assert_eq!(nibble(hi), digit(hi), "{hi}");
            for lo in 0..=u8::MAX {
                let mut out = [0u8; 1];
                let want = digit(hi).zip(digit(lo)).map(|(h, l)| (h << 4) | l);
                let got = std::str::from_utf8(&[hi, lo])
                    .ok()
                    .and_then(|s| decode_hex(s, &mut out).map(|()| out[0]));
                if std::str::from_utf8(&[hi, lo]).is_ok() {
                    assert_eq!(got, want, "{hi} {lo}");
                }
            }
        }
    }
}
