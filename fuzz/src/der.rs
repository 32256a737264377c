//! Structure-aware mutation of DER (certificates, keys) at the TLV level, without a schema.
//!
//! DER is read as a tree of tag-length-value elements (constructed elements, and BIT/OCTET
//! STRINGs that hold DER themselves, as extensions do, are descended into). A mutation walks
//! down to one element and drops, duplicates or reorders it, changes its tag, or changes its
//! content (extreme integers, odd times, long or empty strings, flipped bytes). Lengths are
//! written back correctly, so parsers get past the framing to the fields.

use rand::Rng;
use rand::rngs::StdRng;

use crate::mutate::mutate_bytes;

#[derive(Clone, Debug, PartialEq)]
struct Tlv {
    tag: u8,
    /// A BIT STRING's unused-bits byte, kept apart when its content is DER.
    bit_prefix: Option<u8>,
    content: Content,
}

#[derive(Clone, Debug, PartialEq)]
enum Content {
    Bytes(Vec<u8>),
    Children(Vec<Tlv>),
}

fn read_tlv(bytes: &mut &[u8], depth: u32) -> Option<Tlv> {
    let (&tag, rest) = bytes.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags do not occur in certificates
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    *bytes = rest;
    let nested = depth < 16;
    let content = if tag & 0x20 != 0 && nested {
        Content::Children(read_all(value, depth + 1)?)
    } else if tag == 0x04 && nested && !value.is_empty() {
        read_all(value, depth + 1).map_or_else(|| Content::Bytes(value.to_vec()), Content::Children)
    } else if tag == 0x03 && nested && value.len() > 1 && value[0] == 0 {
        if let Some(children) = read_all(&value[1..], depth + 1) {
            return Some(Tlv {
                tag,
                bit_prefix: Some(0),
                content: Content::Children(children),
            });
        }
        Content::Bytes(value.to_vec())
    } else {
        Content::Bytes(value.to_vec())
    };
    Some(Tlv {
        tag,
        bit_prefix: None,
        content,
    })
}

fn read_all(mut bytes: &[u8], depth: u32) -> Option<Vec<Tlv>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(read_tlv(&mut bytes, depth)?);
    }
    Some(out)
}

fn write(t: &Tlv, out: &mut Vec<u8>) {
    let mut value = Vec::new();
    value.extend(t.bit_prefix);
    match &t.content {
        Content::Bytes(b) => value.extend_from_slice(b),
        Content::Children(c) => c.iter().for_each(|c| write(c, &mut value)),
    }
    out.push(t.tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(&value);
}

const TAGS: [u8; 12] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x17, 0x18, 0x30, 0x31,
];

/// Mutates `der` in place (bytes that are not DER get byte-level mutations).
pub fn mutate(rng: &mut StdRng, der: &mut Vec<u8>) {
    let mut input = der.as_slice();
    let Some(mut root) = read_tlv(&mut input, 0).filter(|_| input.is_empty()) else {
        mutate_bytes(rng, der, &[], None);
        return;
    };
    mutate_in(rng, &mut root);
    der.clear();
    write(&root, der);
}

fn mutate_in(rng: &mut StdRng, t: &mut Tlv) {
    if let Content::Children(children) = &mut t.content
        && !children.is_empty()
    {
        if rng.random_bool(0.75) {
            let i = rng.random_range(0..children.len());
            return mutate_in(rng, &mut children[i]);
        }
        let i = rng.random_range(0..children.len());
        match rng.random_range(0..4) {
            0 => {
                children.remove(i);
            }
            1 => {
                let copy = children[i].clone();
                children.insert(i, copy);
            }
            2 => {
                let j = rng.random_range(0..children.len());
                children.swap(i, j);
            }
            _ => children[i].tag = TAGS[rng.random_range(0..TAGS.len())],
        }
        return;
    }
    let bytes = match &mut t.content {
        Content::Bytes(b) => b,
        Content::Children(c) => {
            c.push(Tlv {
                tag: 0x05,
                bit_prefix: None,
                content: Content::Bytes(Vec::new()),
            });
            return;
        }
    };
    match rng.random_range(0..6) {
        0 => bytes.clear(),
        1 => *bytes = vec![0xff; rng.random_range(1..40)],
        2 => *bytes = vec![b'a'; rng.random_range(100..3000)],
        3 if t.tag == 0x17 || t.tag == 0x18 => {
            let times: [&[u8]; 5] = [
                b"000101000000Z",
                b"991231235959Z",
                b"99991231235959Z",
                b"20250230000000Z",
                b"2025010100000",
            ];
            *bytes = times[rng.random_range(0..times.len())].to_vec();
        }
        4 => t.tag = TAGS[rng.random_range(0..TAGS.len())],
        _ => mutate_bytes(rng, bytes, &[], None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn reads_writes_and_mutates_der() {
        // SEQUENCE { INTEGER 5, OCTET STRING { UTF8String "hi" }, BIT STRING { NULL } }
        let der = vec![
            0x30, 0x0e, 0x02, 0x01, 0x05, 0x04, 0x04, 0x0c, 0x02, b'h', b'i', 0x03, 0x03, 0x00,
            0x05, 0x00,
        ];
        let mut input = der.as_slice();
        let tlv = read_tlv(&mut input, 0).expect("reads");
        let mut out = Vec::new();
        write(&tlv, &mut out);
        assert_eq!(out, der);
        let mut rng = StdRng::seed_from_u64(5);
        let mut changed = 0;
        for _ in 0..300 {
            let mut d = der.clone();
            mutate(&mut rng, &mut d);
            changed += usize::from(d != der);
        }
        assert!(changed > 200, "{changed}");
    }
}
