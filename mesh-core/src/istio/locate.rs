//! Where a diagnostic's field is in its file: the line and column of the key (or sequence item)
//! that a field path such as `items[0].spec.http[1].route[0].weight` names, so that tools can
//! point at it like a compiler does. Only diagnostics are located, so the document is parsed a
//! second time, with spans, only when a location is asked for.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node with the span of every key and item.
enum Node {
    Map(BTreeMap<String, (Spanned<Key>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

/// A mapping key as text (keys can be numbers or booleans in YAML).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key(String::new()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<Spanned<Key>>()? {
                    let value = map.next_value::<Spanned<Node>>()?;
                    out.entry(key.value.0.clone()).or_insert((key, value));
                }
                Ok(Node::Map(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    out.push(item);
                }
                Ok(Node::Seq(out))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

/// One step of a field path.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[0].c` as steps; a key may hold dots (`metadata.labels.app.kubernetes.io/name`), which
/// the walk resolves by trying longer keys.
fn steps(field: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else { break };
            if let Ok(i) = inner[..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &inner[end + 1..];
        }
    }
    out
}

/// The 1-based line and column, within `text`, of the deepest node of `field` that exists.
fn locate_in(text: &str, field: &str) -> Option<(usize, usize)> {
    let root: Spanned<Node> = serde_saphyr::from_str(text).ok()?;
    let steps = steps(field);
    let mut node = &root;
    let mut at = None;
    let mut i = 0;
    let position = |l: &serde_saphyr::Location| {
        Some((
            usize::try_from(l.line()).ok()?,
            usize::try_from(l.column()).ok()?,
        ))
    };
    while i < steps.len() {
        match (&node.value, &steps[i]) {
            (Node::Seq(items), Step::Index(n)) => {
                let Some(item) = items.get(*n) else { break };
                at = position(&item.referenced).or(at);
                node = item;
                i += 1;
            }
            (Node::Map(entries), Step::Key(_)) => {
                // The longest run of key steps, joined by dots, that is a key here.
                let mut found = None;
                let mut key = String::new();
                for (j, step) in steps[i..].iter().enumerate() {
                    let Step::Key(k) = step else { break };
                    if j > 0 {
                        key.push('.');
                    }
                    key.push_str(k);
                    if let Some(entry) = entries.get(&key) {
                        found = Some((j + 1, entry));
                    }
                }
                let Some((used, (k, value))) = found else {
                    break;
                };
                at = position(&k.referenced).or(at);
                node = value;
                i += used;
            }
            _ => break,
        }
    }
    at.or_else(|| position(&root.referenced))
}

/// The 1-based line and column in `content` (a whole file) of `field` in document `document`
/// (numbered from 0, as in [`Diagnostic::document`](crate::config::Diagnostic::document)):
/// the key or item the field path names, or its deepest ancestor present (a missing field
/// points at its parent). `None` when the document cannot be parsed.
pub fn locate(content: &str, document: usize, field: &str) -> Option<(usize, usize)> {
    let doc = super::documents::split(content).into_iter().nth(document)?;
    let (line, column) = locate_in(doc.text, field)?;
    Some((doc.first_line + line - 1, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_items_and_dotted_keys() {
        let yaml = "# c\napiVersion: v1\nkind: List\nitems:\n- metadata:\n    labels: {app.kubernetes.io/name: x}\n  spec:\n    http:\n    - route:\n      - weight: 5\n---\na: 1\n";
        assert_eq!(
            locate(yaml, 0, "items[0].spec.http[0].route[0].weight"),
            Some((10, 9))
        );
        assert_eq!(
            locate(yaml, 0, "items[0].metadata.labels.app.kubernetes.io/name"),
            Some((6, 14))
        );
        // A missing field points at its deepest present ancestor.
        assert_eq!(locate(yaml, 0, "items[0].spec.tcp"), Some((7, 3)));
        assert_eq!(locate(yaml, 1, "a"), Some((12, 1)));
        assert_eq!(locate(yaml, 5, "a"), None);
    }
}
