//! Structure-aware mutation of protobuf messages at the wire-format level, without their schema.
//!
//! A message is read as its list of fields (number, wire type, payload). A mutation walks down
//! through length-delimited fields that themselves read as messages (nested messages, `Any`
//! values) and, at the level where it stops, drops, duplicates, reorders or renumbers a field,
//! writes an extreme varint, or changes a length-delimited payload's bytes. The result is
//! always well-formed protobuf (unless the bytes were not to begin with), so the decoders past
//! prost see it.

use rand::Rng;
use rand::rngs::StdRng;

use crate::mutate::mutate_bytes;

#[derive(Clone, Debug, PartialEq)]
enum Payload {
    Varint(u64),
    Fixed64(u64),
    LengthDelimited(Vec<u8>),
    Fixed32(u32),
}

#[derive(Clone, Debug, PartialEq)]
struct Field {
    number: u64,
    payload: Payload,
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

/// The fields of `bytes`, or `None` when it is not a well-formed message.
fn parse(mut bytes: &[u8]) -> Option<Vec<Field>> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes)?;
        let number = key >> 3;
        if number == 0 {
            return None;
        }
        let payload = match key & 7 {
            0 => Payload::Varint(read_varint(&mut bytes)?),
            1 => Payload::Fixed64(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().ok()?)),
            2 => {
                let len = usize::try_from(read_varint(&mut bytes)?).ok()?;
                Payload::LengthDelimited(take(&mut bytes, len)?.to_vec())
            }
            5 => Payload::Fixed32(u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?)),
            _ => return None,
        };
        fields.push(Field { number, payload });
    }
    Some(fields)
}

fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let wire = match f.payload {
            Payload::Varint(_) => 0,
            Payload::Fixed64(_) => 1,
            Payload::LengthDelimited(_) => 2,
            Payload::Fixed32(_) => 5,
        };
        write_varint(&mut out, (f.number << 3) | wire);
        match &f.payload {
            Payload::Varint(v) => write_varint(&mut out, *v),
            Payload::Fixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Payload::LengthDelimited(b) => {
                write_varint(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Payload::Fixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

const EXTREME: [u64; 9] = [
    0,
    1,
    2,
    0x7f,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
    // -1 as a sign-extended int32/int64.
    0xffff_ffff_ffff_fffe,
];

/// Mutates `message` in place (bytes that are not a message get byte-level mutations).
pub fn mutate(rng: &mut StdRng, message: &mut Vec<u8>) {
    let Some(mut fields) = parse(message) else {
        mutate_bytes(rng, message, &[], None);
        return;
    };
    mutate_fields(rng, &mut fields, 0);
    *message = encode(&fields);
}

fn mutate_fields(rng: &mut StdRng, fields: &mut Vec<Field>, depth: u32) {
    if fields.is_empty() {
        fields.push(Field {
            number: rng.random_range(1..20),
            payload: Payload::Varint(EXTREME[rng.random_range(0..EXTREME.len())]),
        });
        return;
    }
    // Descend into a nested message most of the time, while there is one.
    if depth < 12 && rng.random_bool(0.7) {
        let nested: Vec<usize> = (0..fields.len())
            .filter(|&i| {
                matches!(&fields[i].payload, Payload::LengthDelimited(b)
                    if !b.is_empty() && parse(b).is_some())
            })
            .collect();
        if !nested.is_empty() {
            let i = nested[rng.random_range(0..nested.len())];
            if let Payload::LengthDelimited(bytes) = &mut fields[i].payload
                && let Some(mut inner) = parse(bytes)
            {
                mutate_fields(rng, &mut inner, depth + 1);
                *bytes = encode(&inner);
                return;
            }
        }
    }
    let i = rng.random_range(0..fields.len());
    match rng.random_range(0..7) {
        0 => {
            fields.remove(i);
        }
        1 => {
            let copy = fields[i].clone();
            let at = rng.random_range(0..=fields.len());
            fields.insert(at, copy);
        }
        2 => {
            let j = rng.random_range(0..fields.len());
            fields.swap(i, j);
        }
        3 => fields[i].number = rng.random_range(1..40),
        4 => {
            fields[i].payload = match &fields[i].payload {
                Payload::LengthDelimited(_) => Payload::Varint(rng.random()),
                _ => Payload::LengthDelimited(vec![0xff; rng.random_range(0..8)]),
            }
        }
        _ => match &mut fields[i].payload {
            Payload::Varint(v) | Payload::Fixed64(v) => {
                *v = EXTREME[rng.random_range(0..EXTREME.len())];
            }
            Payload::Fixed32(v) => *v = rng.random(),
            Payload::LengthDelimited(b) => match rng.random_range(0..4) {
                0 => b.clear(),
                1 => *b = vec![b'a'; rng.random_range(100..5000)],
                _ => mutate_bytes(rng, b, &[], None),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_and_encodes_back() {
        let msg = encode(&[
            Field {
                number: 1,
                payload: Payload::Varint(300),
            },
            Field {
                number: 2,
                payload: Payload::LengthDelimited(encode(&[Field {
                    number: 3,
                    payload: Payload::Fixed32(7),
                }])),
            },
            Field {
                number: 4,
                payload: Payload::Fixed64(u64::MAX),
            },
        ]);
        assert_eq!(encode(&parse(&msg).expect("parses")), msg);
        assert!(parse(&[0x08]).is_none());
        let mut rng = StdRng::seed_from_u64(1);
        let mut changed = 0;
        for _ in 0..500 {
            let mut m = msg.clone();
            mutate(&mut rng, &mut m);
            changed += usize::from(m != msg);
            assert!(parse(&m).is_some(), "{m:?}");
        }
        assert!(changed > 400, "{changed}");
    }
}
