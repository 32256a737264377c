//! Structure-aware mutation of parsed documents (YAML or JSON read into a [`Value`] tree).
//!
//! A mutation picks one node by a random walk from the root and changes it the way a confused
//! author or a hostile one would: drops or duplicates keys, swaps values between fields,
//! changes a value's type, duplicates or reorders list entries, writes extreme numbers, long
//! strings or odd unicode, or grafts in a subtree seen elsewhere in the corpus. Keys and values
//! come from a [`Vocabulary`] collected from the seeds, so the mutations speak Istio's field
//! names without a hand-kept list.

use std::collections::BTreeSet;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Map, Number, Value};

/// Keys, string values and subtrees seen in the seeds.
#[derive(Debug, Default)]
pub struct Vocabulary {
    keys: Vec<String>,
    strings: Vec<String>,
    subtrees: Vec<Value>,
}

/// Strings that sit on the edges of what the loader checks.
const ODD_STRINGS: [&str; 24] = [
    "",
    " ",
    "*",
    "*.",
    ".",
    "..",
    "/",
    "0s",
    "-1s",
    "1.5s",
    "99999999999999999999s",
    "1h1m1s1ms",
    "(",
    "[a-",
    "\u{0}",
    "\u{202e}evil",
    "💥",
    "ü.default.svc.cluster.local",
    "reviews.default.svc.cluster.local",
    "spiffe://cluster.local/ns/default/sa/x",
    "10.0.0.0/33",
    "::1",
    "0.0.0.0/0",
    "%2e%2e/",
];

/// Numbers on the edges of the types the loader converts to.
fn odd_number(rng: &mut StdRng) -> Value {
    let n = match rng.random_range(0..12) {
        0 => Number::from(0),
        1 => Number::from(-1),
        2 => Number::from(u32::MAX),
        3 => Number::from(u64::from(u32::MAX) + 1),
        4 => Number::from(i64::MAX),
        5 => Number::from(u64::MAX),
        6 => Number::from(i64::MIN),
        7 => Number::from(65536),
        8 => Number::from(101),
        9 => Number::from_f64(0.5).unwrap_or_else(|| Number::from(0)),
        10 => Number::from_f64(1e308).unwrap_or_else(|| Number::from(0)),
        _ => Number::from(rng.random::<i32>()),
    };
    Value::Number(n)
}

impl Vocabulary {
    /// Collects keys, strings and subtrees from `docs`.
    pub fn from_docs<'a>(docs: impl IntoIterator<Item = &'a Value>) -> Self {
        let (mut keys, mut strings) = (BTreeSet::new(), BTreeSet::new());
        let mut subtrees = Vec::new();
        for doc in docs {
            collect(doc, &mut keys, &mut strings, &mut subtrees);
        }
        Self {
            keys: keys.into_iter().collect(),
            strings: strings.into_iter().collect(),
            subtrees,
        }
    }

    fn key(&self, rng: &mut StdRng) -> String {
        self.keys
            .choose(rng)
            .cloned()
            .unwrap_or_else(|| "spec".to_owned())
    }

    fn string(&self, rng: &mut StdRng) -> String {
        match rng.random_range(0..4) {
            0 => ODD_STRINGS.choose(rng).copied().unwrap_or("").to_owned(),
            1 => "a".repeat(rng.random_range(64..20_000)),
            _ => self.strings.choose(rng).cloned().unwrap_or_default(),
        }
    }

    fn subtree(&self, rng: &mut StdRng) -> Value {
        self.subtrees.choose(rng).cloned().unwrap_or(Value::Null)
    }

    /// A value of any shape.
    fn value(&self, rng: &mut StdRng) -> Value {
        match rng.random_range(0..8) {
            0 => Value::Null,
            1 => Value::Bool(rng.random()),
            2 => odd_number(rng),
            3 | 4 => Value::String(self.string(rng)),
            _ => self.subtree(rng),
        }
    }
}

fn collect(
    v: &Value,
    keys: &mut BTreeSet<String>,
    strings: &mut BTreeSet<String>,
    subtrees: &mut Vec<Value>,
) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                keys.insert(k.clone());
                collect(child, keys, strings, subtrees);
            }
            subtrees.push(v.clone());
        }
        Value::Array(items) => {
            for child in items {
                collect(child, keys, strings, subtrees);
            }
            subtrees.push(v.clone());
        }
        Value::String(s) => {
            strings.insert(s.clone());
        }
        _ => {}
    }
}

/// Applies one to three mutations to `doc`.
pub fn mutate_value(rng: &mut StdRng, doc: &mut Value, vocab: &Vocabulary) {
    for _ in 0..rng.random_range(1..=3) {
        mutate_somewhere(rng, doc, vocab);
    }
}

/// Mutates a node reached by a random walk: each step stops with probability 1/4, else descends
/// into a random child.
fn mutate_somewhere(rng: &mut StdRng, node: &mut Value, vocab: &Vocabulary) {
    let len = match &*node {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    if len == 0 || rng.random_range(0..4) == 0 {
        return mutate_node(rng, node, vocab);
    }
    let i = rng.random_range(0..len);
    let child = match node {
        Value::Object(m) => m.values_mut().nth(i),
        Value::Array(a) => a.get_mut(i),
        _ => None,
    };
    if let Some(child) = child {
        mutate_somewhere(rng, child, vocab);
    }
}

fn mutate_node(rng: &mut StdRng, node: &mut Value, vocab: &Vocabulary) {
    match node {
        Value::Object(map) if !map.is_empty() && rng.random_range(0..3) > 0 => {
            mutate_object(rng, map, vocab)
        }
        Value::Array(items) if !items.is_empty() && rng.random_range(0..3) > 0 => {
            mutate_array(rng, items, vocab)
        }
        _ => *node = replacement(rng, node, vocab),
    }
}

fn mutate_object(rng: &mut StdRng, map: &mut Map<String, Value>, vocab: &Vocabulary) {
    let keys: Vec<String> = map.keys().cloned().collect();
    let key = keys[rng.random_range(0..keys.len())].clone();
    match rng.random_range(0..6) {
        0 => {
            map.remove(&key);
        }
        1 => {
            // The same value under another field's name.
            if let Some(v) = map.get(&key).cloned() {
                map.insert(vocab.key(rng), v);
            }
        }
        2 => {
            let other = keys[rng.random_range(0..keys.len())].clone();
            if let (Some(a), Some(b)) = (map.get(&key).cloned(), map.get(&other).cloned()) {
                map.insert(key, b);
                map.insert(other, a);
            }
        }
        3 => {
            map.insert(vocab.key(rng), vocab.value(rng));
        }
        4 => {
            // A key with different case or a typo.
            if let Some(v) = map.remove(&key) {
                let renamed = match rng.random_range(0..3) {
                    0 => key.to_uppercase(),
                    1 => format!("{key}s"),
                    _ => key.chars().rev().collect(),
                };
                map.insert(renamed, v);
            }
        }
        _ => {
            if let Some(v) = map.get_mut(&key) {
                *v = vocab.value(rng);
            }
        }
    }
}

fn mutate_array(rng: &mut StdRng, items: &mut Vec<Value>, vocab: &Vocabulary) {
    let i = rng.random_range(0..items.len());
    match rng.random_range(0..6) {
        0 => {
            let copy = items[i].clone();
            items.insert(i, copy);
        }
        1 => {
            items.remove(i);
        }
        2 => {
            let j = rng.random_range(0..items.len());
            items.swap(i, j);
        }
        3 => items.push(vocab.value(rng)),
        4 => items.clear(),
        _ => {
            // Many copies: lists as long as a limit.
            let copy = items[i].clone();
            let n = rng.random_range(2..200);
            items.extend(std::iter::repeat_n(copy, n));
        }
    }
}

/// A value to put in place of `old`: often the same content in another type.
fn replacement(rng: &mut StdRng, old: &Value, vocab: &Vocabulary) -> Value {
    match rng.random_range(0..8) {
        0 => match old {
            Value::Number(n) => Value::String(n.to_string()),
            Value::String(s) => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(format!("{s}{s}"))),
            other => Value::String(other.to_string()),
        },
        1 => Value::Array(vec![old.clone()]),
        2 => {
            let mut m = Map::new();
            m.insert(vocab.key(rng), old.clone());
            Value::Object(m)
        }
        3 => odd_number(rng),
        4 => match old {
            Value::String(s) if !s.is_empty() => {
                let mut chars: Vec<char> = s.chars().collect();
                let at = rng.random_range(0..chars.len());
                let odd = ['.', '*', '/', '\u{0}', 'ü', ' ', '-', ':', '[', '%'];
                chars[at] = odd[rng.random_range(0..odd.len())];
                Value::String(chars.into_iter().collect())
            }
            _ => Value::String(vocab.string(rng)),
        },
        _ => vocab.value(rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn mutations_reach_every_kind_of_change() {
        let seed = json!({"spec": {"hosts": ["reviews"], "http": [{"timeout": "1s"}]}});
        let vocab = Vocabulary::from_docs([&seed]);
        assert!(vocab.keys.contains(&"hosts".to_owned()));
        let mut rng = StdRng::seed_from_u64(9);
        let (mut changed, mut dup_host, mut typed) = (0, 0, 0);
        for _ in 0..2000 {
            let mut doc = seed.clone();
            mutate_value(&mut rng, &mut doc, &vocab);
            changed += usize::from(doc != seed);
            dup_host += usize::from(doc["spec"]["hosts"] == json!(["reviews", "reviews"]));
            typed += usize::from(doc["spec"]["http"][0]["timeout"].is_number());
        }
        assert!(changed > 1500, "{changed}");
        assert!(dup_host > 0 && typed > 0, "{dup_host} {typed}");
    }
}
