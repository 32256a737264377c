//! Several byte strings in one input: each part as a little-endian `u32` length and its bytes.
//!
//! Targets whose input has several parts (the three PEM files, a set of xDS resources) store
//! them this way so one saved file replays the whole input. Decoding never fails: a length
//! that runs past the end takes what is left.

/// `parts`, each prefixed by its length.
pub fn encode<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let part = part.as_ref();
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&part[..len as usize]);
    }
    out
}

/// The parts of `input`; a short or overlong length takes what is left.
pub fn decode(mut input: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    while !input.is_empty() {
        let mut len = [0u8; 4];
        let n = input.len().min(4);
        len[..n].copy_from_slice(&input[..n]);
        input = &input[n..];
        let len = (u32::from_le_bytes(len) as usize).min(input.len());
        let (part, rest) = input.split_at(len);
        parts.push(part);
        input = rest;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let parts: [&[u8]; 3] = [b"abc", b"", b"\x00\xff"];
        assert_eq!(decode(&encode(&parts)), parts.to_vec());
        assert_eq!(decode(&[5, 0, 0, 0, b'x']), vec![b"x".as_slice()]);
        assert_eq!(decode(&[1, 0]), vec![b"".as_slice()]);
        assert!(decode(&[]).is_empty());
    }
}
