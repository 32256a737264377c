//! String matchers shared by routes and authorization.

use std::fmt;

use serde::{Serialize, Serializer};

/// A compiled regular expression that matches the whole input, as Istio's (RE2) matchers do.
///
/// Equality and serialization use the source text.
#[derive(Clone)]
pub struct Regex {
    source: String,
    compiled: regex::Regex,
}

impl Regex {
    /// Compiles `source` anchored at both ends.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let compiled = regex::Regex::new(&format!("^(?:{source})$"))?;
        Ok(Self {
            source: source.to_owned(),
            compiled,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `input` matches.
    pub fn is_match(&self, input: &str) -> bool {
        self.compiled.is_match(input)
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Regex").field(&self.source).finish()
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Regex {}

impl Serialize for Regex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// How a string value is matched (Istio's `StringMatch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    /// The whole value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The whole value matches this regular expression.
    Regex(Regex),
}

impl StringMatch {
    /// Whether `value` matches. With `ignore_case`, exact and prefix compare ASCII
    /// case-insensitively (regexes carry their own flags).
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            StringMatch::Exact(want) if ignore_case => want.eq_ignore_ascii_case(value),
            StringMatch::Exact(want) => want == value,
            StringMatch::Prefix(p) if ignore_case => value
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
            StringMatch::Prefix(p) => value.starts_with(p.as_str()),
            StringMatch::Regex(re) => re.is_match(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_match_semantics() {
        let re = StringMatch::Regex(Regex::new("/api/v[0-9]+").unwrap());
        assert!(re.matches("/api/v12", false));
        assert!(
            !re.matches("/api/v12/x", false),
            "regex must match the whole value"
        );
        assert!(StringMatch::Prefix("/Api".into()).matches("/api/x", true));
        assert!(!StringMatch::Prefix("/Api".into()).matches("/api/x", false));
        assert!(StringMatch::Exact("jason".into()).matches("jason", false));
        assert!(!StringMatch::Exact("jason".into()).matches("Jason", false));
        assert!(!StringMatch::Prefix("/é".into()).matches("/", true));
    }
}
