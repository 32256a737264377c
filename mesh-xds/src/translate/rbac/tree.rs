//! Reading one permission or principal tree into a source or operation plus rule-level
//! conditions.
//!
//! Permissions and principals have the same boolean skeleton (`and`, `or`, `not`, `any`) around
//! different leaves, so the walk is written once over [`Tree`]. A tree is read as an `and` of
//! elements; an element is a *group* (a leaf, an `or` of leaves of one field, or the `not` of
//! either), an `any`, or a nested `and` (a condition wrapper). The first group of a field fills
//! that field (its `not_*` list when negated); nested `and`s, leaves that are conditions by
//! nature (request headers, SNI, metadata, …) and a second group of a filled field become
//! rule-level conditions.

use mesh_core::model::{AuthzCondition, ConditionKey, IpBlock, StringPattern};

use super::super::error::{Scope, XdsError};
use super::matchers::ip_text;

/// The boolean skeleton of a permission or principal.
pub(super) enum Shape<'a, T> {
    And(&'a [T]),
    Or(&'a [T]),
    Not(&'a T),
    Any(bool),
    Leaf,
}

/// A permission or a principal.
pub(super) trait Tree: Sized {
    /// Field path of an `and`'s list.
    const AND: &'static str;
    /// Field path of an `or`'s list.
    const OR: &'static str;
    /// Field path of a `not`.
    const NOT: &'static str;
    /// Field path of `any`.
    const ANY: &'static str;
    /// The skeleton node.
    fn shape(&self) -> Shape<'_, Self>;
    /// Reads a leaf (only called when [`Tree::shape`] is [`Shape::Leaf`]).
    fn leaf(&self, path: &str, scope: &mut Scope) -> Result<Leaf, XdsError>;
}

/// What a leaf matches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Hosts,
    Methods,
    Paths,
    Ports,
    Principals,
    Namespaces,
    IpBlocks,
    RequestPrincipals,
    /// Values are `ns/name` (exact patterns).
    ServiceAccounts,
    TrustDomains,
    /// A rule-level condition by nature.
    When(ConditionKey),
}

impl Slot {
    fn name(&self) -> &'static str {
        match self {
            Slot::Hosts => "hosts",
            Slot::Methods => "methods",
            Slot::Paths => "paths",
            Slot::Ports => "ports",
            Slot::Principals => "principals",
            Slot::Namespaces => "namespaces",
            Slot::IpBlocks => "ip blocks",
            Slot::RequestPrincipals => "request principals",
            Slot::ServiceAccounts => "service accounts",
            Slot::TrustDomains => "trust domains",
            Slot::When(_) => "conditions",
        }
    }
}

/// One value a leaf matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    Pattern(StringPattern),
    Port(u16),
    Ip(IpBlock),
}

impl Value {
    /// As a condition value.
    fn pattern(&self) -> StringPattern {
        match self {
            Value::Pattern(p) => p.clone(),
            Value::Port(p) => StringPattern::Exact(p.to_string()),
            Value::Ip(b) => StringPattern::Exact(ip_text(b)),
        }
    }
}

/// A decoded leaf; `inverted` when the leaf matches the opposite (`invert_match`, …).
#[derive(Clone, Debug)]
pub(super) struct Leaf {
    pub(super) slot: Slot,
    pub(super) value: Value,
    pub(super) inverted: bool,
}

/// A field's values: any of them (or, when `negated`, none of them).
#[derive(Clone, Debug)]
pub(super) struct Group {
    pub(super) slot: Slot,
    pub(super) negated: bool,
    pub(super) values: Vec<Value>,
    pub(super) path: String,
}

/// One permission or principal, read.
#[derive(Debug, Default)]
pub(super) struct Entry {
    /// Field groups, in order.
    pub(super) fields: Vec<Group>,
    /// Rule-level conditions.
    pub(super) conditions: Vec<AuthzCondition>,
    /// Whether it names an operation / source: it has a field, or an `any` inside its `and`.
    /// A bare `any`, or an `and` of conditions only, stands for "no `to`" / "no `from`".
    pub(super) explicit: bool,
}

/// The elements of a permission or principal: its `and`'s list, or itself.
pub(super) fn elements<T: Tree>(node: &T) -> &[T] {
    match node.shape() {
        Shape::And(children) => children,
        _ => std::slice::from_ref(node),
    }
}

/// Reads one permission or principal at `path`; its last `forced_tail` elements are read as
/// conditions even where they could fill a field.
pub(super) fn entry<T: Tree>(
    node: &T,
    path: &str,
    forced_tail: usize,
    scope: &mut Scope,
) -> Result<Entry, XdsError> {
    let mut out = Entry::default();
    let elements: Vec<(String, &T)> = match node.shape() {
        Shape::And(children) => children
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{path}.{}[{i}]", T::AND), c))
            .collect(),
        _ => vec![(path.to_owned(), node)],
    };
    let top_and = matches!(node.shape(), Shape::And(_));
    // Whether the last condition came from a bare group (istiod appends `values` then
    // `notValues` of one key as two neighbours).
    let mut last_bare = false;
    let forced_from = elements.len().saturating_sub(forced_tail);
    for (index, (path, el)) in elements.into_iter().enumerate() {
        match el.shape() {
            Shape::Any(true) => {
                out.explicit |= top_and;
                last_bare = false;
            }
            Shape::Any(false) => {
                return Err(scope.error(
                    format!("{path}.{}", T::ANY),
                    "any: false matches nothing; cannot be expressed",
                ));
            }
            Shape::And(_) => {
                let mut groups = Vec::new();
                flatten(el, &path, scope, &mut groups)?;
                let mut wrapped: Vec<AuthzCondition> = Vec::new();
                for g in groups {
                    let c = condition(g, scope)?;
                    match wrapped.iter_mut().find(|w| w.key == c.key) {
                        Some(w) => {
                            w.values.extend(c.values);
                            w.not_values.extend(c.not_values);
                        }
                        None => wrapped.push(c),
                    }
                }
                out.conditions.extend(wrapped);
                last_bare = false;
            }
            _ => {
                let g = group(el, &path, scope)?;
                let is_field = !matches!(g.slot, Slot::When(_));
                if is_field
                    && index < forced_from
                    && !out
                        .fields
                        .iter()
                        .any(|f| f.slot == g.slot && f.negated == g.negated)
                {
                    out.explicit = true;
                    out.fields.push(g);
                    continue;
                }
                let c = condition(g, scope)?;
                match out.conditions.last_mut() {
                    Some(last)
                        if last_bare
                            && last.key == c.key
                            && last.not_values.is_empty()
                            && c.values.is_empty() =>
                    {
                        last.not_values = c.not_values;
                        last_bare = false;
                    }
                    _ => {
                        out.conditions.push(c);
                        last_bare = true;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The groups of a condition wrapper (nested `and`s flattened, `any` dropped).
fn flatten<T: Tree>(
    node: &T,
    path: &str,
    scope: &mut Scope,
    out: &mut Vec<Group>,
) -> Result<(), XdsError> {
    match node.shape() {
        Shape::And(children) => {
            for (i, c) in children.iter().enumerate() {
                flatten(c, &format!("{path}.{}[{i}]", T::AND), scope, out)?;
            }
            Ok(())
        }
        Shape::Any(true) => Ok(()),
        _ => {
            out.push(group(node, path, scope)?);
            Ok(())
        }
    }
}

/// A group: a leaf, an `or` of leaves of one field, or the `not` of either. A subtree of
/// metadata matchers only (istiod's JWT shapes) is read as one condition mesh does not
/// evaluate, whatever its structure.
fn group<T: Tree>(node: &T, path: &str, scope: &mut Scope) -> Result<Group, XdsError> {
    match structured(node, path, scope) {
        Ok(g) => Ok(g),
        Err(e) => match opaque_key(node, path, scope) {
            Some(key) => Ok(Group {
                slot: Slot::When(ConditionKey::Unsupported(key)),
                negated: false,
                values: vec![Value::Pattern(StringPattern::Any)],
                path: path.to_owned(),
            }),
            None => Err(e),
        },
    }
}

fn structured<T: Tree>(node: &T, path: &str, scope: &mut Scope) -> Result<Group, XdsError> {
    match node.shape() {
        Shape::Not(inner) => {
            let inner_path = format!("{path}.{}", T::NOT);
            if matches!(inner.shape(), Shape::And(_)) {
                return Err(scope.error(inner_path, "a negated and cannot be expressed"));
            }
            let mut g = structured(inner, &inner_path, scope)?;
            g.negated = !g.negated;
            Ok(g)
        }
        Shape::Or(children) => {
            let mut out: Option<Group> = None;
            for (i, c) in children.iter().enumerate() {
                let child_path = format!("{path}.{}[{i}]", T::OR);
                let g = structured(c, &child_path, scope)?;
                if g.negated && children.len() > 1 {
                    return Err(scope.error(
                        child_path,
                        "a negation inside an or of several matchers cannot be expressed",
                    ));
                }
                match &mut out {
                    None => out = Some(g),
                    Some(o) if o.slot == g.slot => o.values.extend(g.values),
                    Some(o) => {
                        return Err(scope.error(
                            child_path,
                            format!(
                                "an or mixing {} with {} cannot be expressed",
                                o.slot.name(),
                                g.slot.name()
                            ),
                        ));
                    }
                }
            }
            match out {
                Some(mut g) => {
                    path.clone_into(&mut g.path);
                    Ok(g)
                }
                None => Err(scope.error(
                    format!("{path}.{}", T::OR),
                    "an empty or matches nothing; cannot be expressed",
                )),
            }
        }
        Shape::And(_) => Err(scope.error(path, "an and inside an or or a not cannot be expressed")),
        Shape::Any(_) => Err(scope.error(
            format!("{path}.{}", T::ANY),
            "any inside an or or a not cannot be expressed",
        )),
        Shape::Leaf => {
            let leaf = node.leaf(path, scope)?;
            Ok(Group {
                slot: leaf.slot,
                negated: leaf.inverted,
                values: vec![leaf.value],
                path: path.to_owned(),
            })
        }
    }
}

/// The key of the first leaf when every leaf under `node` is a metadata condition.
fn opaque_key<T: Tree>(node: &T, path: &str, scope: &Scope) -> Option<String> {
    let mut probe = Scope::new(scope.kind, scope.name.clone());
    match node.shape() {
        Shape::And(cs) | Shape::Or(cs) => {
            let keys: Vec<_> = cs
                .iter()
                .map(|c| opaque_key(c, path, scope))
                .collect::<Option<_>>()?;
            keys.into_iter().next()
        }
        Shape::Not(inner) => opaque_key(inner, path, scope),
        Shape::Any(_) => None,
        Shape::Leaf => match node.leaf(path, &mut probe).ok()?.slot {
            Slot::When(ConditionKey::Unsupported(k)) => Some(k),
            Slot::RequestPrincipals => Some(super::REQUEST_PRINCIPAL.to_owned()),
            _ => None,
        },
    }
}

/// A group as a rule-level condition.
fn condition(g: Group, scope: &Scope) -> Result<AuthzCondition, XdsError> {
    let key = match g.slot {
        Slot::When(k) => k,
        Slot::Ports => ConditionKey::DestinationPort,
        Slot::Principals => ConditionKey::SourcePrincipal,
        Slot::Namespaces => ConditionKey::SourceNamespace,
        Slot::ServiceAccounts => ConditionKey::SourceServiceAccount,
        Slot::TrustDomains => ConditionKey::SourceTrustDomain,
        Slot::IpBlocks => ConditionKey::SourceIp,
        Slot::RequestPrincipals => ConditionKey::Unsupported(super::REQUEST_PRINCIPAL.to_owned()),
        s @ (Slot::Hosts | Slot::Methods | Slot::Paths) => {
            return Err(scope.error(
                g.path,
                format!(
                    "a second {} matcher in one operation (or one inside a nested and) cannot be expressed",
                    s.name()
                ),
            ));
        }
    };
    let values = g.values.iter().map(Value::pattern).collect();
    let (values, not_values) = if g.negated {
        (Vec::new(), values)
    } else {
        (values, Vec::new())
    };
    Ok(AuthzCondition {
        key,
        values,
        not_values,
    })
}
