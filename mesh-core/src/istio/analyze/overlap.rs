//! The prefix-overlap half of `IST0131 VirtualServiceIneffectiveMatch`: a match whose URI
//! prefix extends an earlier match's prefix, with the same port, method, authority, headers,
//! query parameters and withoutHeaders (or ones the earlier match's values cover), is never
//! reached. The rule is istio/istio `pkg/config/validation/validation.go`
//! `analyzeUnreachableHTTPRules` with `genMatchHTTPRoutes` and `coveredValidation`, kept as
//! istiod has it, quirks included (an absent method counts as `GET`; a value is covered when
//! the earlier one *starts with* it).

use std::collections::BTreeMap;

use serde_json::Value;

/// A match with a URI prefix, as `genMatchHTTPRoutes` records it.
pub(super) struct PrefixMatch {
    /// The rule's index in `http` and its name for messages.
    pub(super) rule: (usize, String),
    /// The match's index in the rule and its name for messages.
    pub(super) matched: (usize, String),
    prefix: String,
    port: u64,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

/// `assignExactOrPrefix`: `exact:V`, `prefix:V`, or empty (regex and absent).
fn exact_or_prefix(m: Option<&Value>) -> String {
    let get = |k| m.and_then(|m| m.get(k)).and_then(Value::as_str);
    match (get("exact"), get("prefix")) {
        (Some(e), _) if !e.is_empty() => format!("exact:{e}"),
        (_, Some(p)) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn string_map(m: &Value, key: &str) -> BTreeMap<String, String> {
    m.get(key)
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
                .collect()
        })
        .unwrap_or_default()
}

impl PrefixMatch {
    /// `genMatchHTTPRoutes`: only a match with a non-empty URI prefix is recorded.
    pub(super) fn new(m: &Value, rule: (usize, String), matched: (usize, String)) -> Option<Self> {
        let prefix = m
            .get("uri")
            .and_then(|u| u.get("prefix"))
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())?;
        let mut method = exact_or_prefix(m.get("method"));
        if method.is_empty() {
            method = "exact:GET".to_owned();
        }
        Some(Self {
            rule,
            matched,
            prefix: prefix.to_owned(),
            port: m.get("port").and_then(Value::as_u64).unwrap_or(0),
            method,
            authority: exact_or_prefix(m.get("authority")),
            headers: string_map(m, "headers"),
            query_params: string_map(m, "queryParams"),
            without_headers: string_map(m, "withoutHeaders"),
        })
    }

    /// The match's description in messages: `#0 of prefix /debug`.
    pub(super) fn describe(&self) -> String {
        format!("{} of prefix {}", self.matched.1, self.prefix)
    }

    /// `coveredValidation(self, later)`: whether this earlier match takes every request of
    /// `later`.
    fn covers(&self, later: &Self) -> bool {
        let value_covered = |a: &str, b: &str| a == b || a.starts_with(b);
        let map_covered = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|bv| value_covered(v, bv)))
        };
        later.prefix.starts_with(&self.prefix)
            && self.port == later.port
            && value_covered(&self.method, &later.method)
            && value_covered(&self.authority, &later.authority)
            && map_covered(&self.headers, &later.headers)
            && map_covered(&self.query_params, &later.query_params)
            && map_covered(&self.without_headers, &later.without_headers)
    }
}

/// Each later match covered by an earlier one with another prefix, with that earlier match
/// (the `len(matchHTTPRoutes) > 1` loop of `analyzeUnreachableHTTPRules`).
pub(super) fn covered(matches: &[PrefixMatch]) -> Vec<(&PrefixMatch, &PrefixMatch)> {
    let mut out = Vec::new();
    for (i, earlier) in matches.iter().enumerate() {
        for later in &matches[i + 1..] {
            // Equal prefixes are the duplicate case, reported already.
            if later.prefix != earlier.prefix && earlier.covers(later) {
                out.push((later, earlier));
            }
        }
    }
    out
}
