//! The query parameters of Envoy's admin stats handler on the Prometheus text mesh renders:
//! `/stats/prometheus?filter=<regex>&usedonly&type=<Counters|Gauges|Histograms|TextReadouts|All>`,
//! and `/stats?format=prometheus` with the same parameters.
//!
//! Envoy's rules (`source/server/admin/stats_params.cc`, `StatsParams::parse`, and
//! `stats_params.h`, `StatsParams::shouldShowMetric`), followed here:
//! - `filter` is an RE2 regex searched anywhere in a stat's name (`RE2::PartialMatch`); one
//!   that does not compile is answered `400 Invalid re2 regex`. The `regex` crate has RE2's
//!   syntax and linear-time matching.
//! - `usedonly` (any value) keeps the stats that were ever updated.
//! - `type` keeps one kind of stat (mesh has no text readouts); another value is
//!   `400 invalid &type= param`.
//! - a metric family is written (with its `# HELP` and `# TYPE`) only if one of its series is.
//!
//! An Envoy stat's name carries its tag values (`cluster.<name>.upstream_rq_total`); mesh's
//! series are named by their family and labels, so the regex is searched in
//! `family{label="value",...}` (a histogram's `le` and a summary's `quantile` left out: they
//! split one stat into lines). A series is used when its value (a histogram's or summary's
//! `_count`) is not zero; gauges are set when they are registered, so each counts as used.

use std::collections::HashMap;

use regex::Regex;

/// Kinds of stats `type=` selects, as Envoy names them (`StatLabels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counters,
    Gauges,
    Histograms,
    /// Envoy's text readouts: mesh has none, so nothing is shown.
    TextReadouts,
    All,
}

/// The parsed parameters of a stats request.
#[derive(Debug)]
pub(super) struct StatsQuery {
    filter: Option<Regex>,
    used_only: bool,
    kind: Kind,
    /// `format=` as given (only `/stats` reads it).
    format: Option<String>,
}

/// A request Envoy's handler would refuse, with its answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadQuery(pub(super) &'static str);

impl StatsQuery {
    /// Parses a request's query string (percent-decoded, `+` as space).
    pub(super) fn parse(query: Option<&str>) -> Result<Self, BadQuery> {
        let mut out = Self {
            filter: None,
            used_only: false,
            kind: Kind::All,
            format: None,
        };
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes());
        for (name, value) in pairs {
            match name.as_ref() {
                "usedonly" => out.used_only = true,
                "filter" => {
                    let regex = Regex::new(&value).map_err(|_| BadQuery("Invalid re2 regex"))?;
                    out.filter = Some(regex);
                }
                "type" => {
                    out.kind = match value.as_ref() {
                        "Counters" => Kind::Counters,
                        "Gauges" => Kind::Gauges,
                        "Histograms" => Kind::Histograms,
                        "TextReadouts" => Kind::TextReadouts,
                        "All" => Kind::All,
                        _ => return Err(BadQuery("invalid &type= param")),
                    };
                }
                "format" => out.format = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether `/stats` was asked for Prometheus text (the one format mesh renders).
    pub(super) fn wants_prometheus(&self) -> bool {
        self.format.as_deref() == Some("prometheus")
    }

    /// Whether the query selects anything less than everything.
    fn selects(&self) -> bool {
        self.filter.is_some() || self.used_only || self.kind != Kind::All
    }

    /// `text` (Prometheus exposition) with only the series this query shows.
    pub(super) fn apply(&self, text: String) -> String {
        if !self.selects() {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut family = Family::default();
        for line in text.lines() {
            if let Some(name) = comment_name(line) {
                if name != family.name {
                    family.write(self, &mut out);
                    family = Family::new(name);
                }
                family.header.push(line);
            } else if !line.trim().is_empty() {
                family.sample(line);
            }
        }
        family.write(self, &mut out);
        out
    }
}

/// The metric a `# HELP name ...` or `# TYPE name kind` line is about.
fn comment_name(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("# HELP ")
        .or_else(|| line.strip_prefix("# TYPE "))?;
    rest.split(' ').next()
}

/// One metric family of the exposition, its series in the order they came.
#[derive(Default)]
struct Family<'a> {
    name: &'a str,
    header: Vec<&'a str>,
    series: Vec<Series<'a>>,
    /// Index in `series` by key.
    index: HashMap<String, usize>,
}

struct Series<'a> {
    /// `family{labels}`, what the filter is searched in.
    key: String,
    lines: Vec<&'a str>,
    used: bool,
}

impl<'a> Family<'a> {
    fn new(name: &'a str) -> Self {
        Self {
            name,
            ..Self::default()
        }
    }

    /// The family's kind from its `# TYPE` line (`untyped` without one).
    fn kind(&self) -> &'a str {
        self.header
            .iter()
            .find_map(|l| l.strip_prefix("# TYPE "))
            .and_then(|rest| rest.split(' ').nth(1))
            .unwrap_or("untyped")
    }

    fn sample(&mut self, line: &'a str) {
        let (identity, value) = line.rsplit_once(' ').unwrap_or((line, ""));
        let (sample_name, labels) = match identity.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or(rest)),
            None => (identity, ""),
        };
        if self.name.is_empty() {
            self.name = sample_name;
        }
        let kept: Vec<&str> = split_labels(labels)
            .filter(|l| !l.starts_with("le=") && !l.starts_with("quantile="))
            .collect();
        let key = if kept.is_empty() {
            self.name.to_owned()
        } else {
            format!("{}{{{}}}", self.name, kept.join(","))
        };
        let nonzero = value.parse::<f64>().is_ok_and(|v| v != 0.0);
        let kind = self.kind();
        let counts = match kind {
            "histogram" | "summary" => sample_name.ends_with("_count") && nonzero,
            "gauge" => true,
            _ => nonzero,
        };
        match self.index.get(&key).and_then(|&i| self.series.get_mut(i)) {
            Some(s) => {
                s.lines.push(line);
                s.used |= counts;
            }
            None => {
                self.index.insert(key.clone(), self.series.len());
                self.series.push(Series {
                    key,
                    lines: vec![line],
                    used: counts,
                });
            }
        }
    }

    fn write(&self, query: &StatsQuery, out: &mut String) {
        let kind = match self.kind() {
            "counter" => Kind::Counters,
            "gauge" => Kind::Gauges,
            "histogram" | "summary" => Kind::Histograms,
            _ => Kind::All,
        };
        if query.kind != Kind::All && query.kind != kind {
            return;
        }
        let shown: Vec<&Series> = self
            .series
            .iter()
            .filter(|s| !query.used_only || s.used)
            .filter(|s| query.filter.as_ref().is_none_or(|r| r.is_match(&s.key)))
            .collect();
        if shown.is_empty() {
            return;
        }
        for line in self
            .header
            .iter()
            .chain(shown.iter().flat_map(|s| &s.lines))
        {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
}

/// The `name="value"` pairs of a label block, splitting at commas outside quoted values.
fn split_labels(labels: &str) -> impl Iterator<Item = &str> {
    let mut rest = labels;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let mut escaped = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let label = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        Some(label)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP reqs_total Requests
# TYPE reqs_total counter
reqs_total{reporter=\"source\",app=\"a,b\"} 3
reqs_total{reporter=\"destination\",app=\"x\"} 0

# TYPE lat histogram
lat_bucket{reporter=\"source\",le=\"1\"} 1
lat_bucket{reporter=\"source\",le=\"+Inf\"} 2
lat_sum{reporter=\"source\"} 4.5
lat_count{reporter=\"source\"} 2
lat_bucket{reporter=\"destination\",le=\"1\"} 0
lat_bucket{reporter=\"destination\",le=\"+Inf\"} 0
lat_sum{reporter=\"destination\"} 0
lat_count{reporter=\"destination\"} 0

# TYPE up gauge
up 0

";

    fn apply(query: &str) -> String {
        StatsQuery::parse(Some(query))
            .unwrap()
            .apply(TEXT.to_owned())
    }

    #[test]
    fn no_parameters_answer_everything_unchanged() {
        assert_eq!(apply(""), TEXT);
    }

    #[test]
    fn filter_is_searched_in_family_and_labels() {
        // A label value (percent-encoded quotes), not a prefix: RE2's PartialMatch.
        let out = apply("filter=reporter%3D%22destination%22");
        assert!(
            out.contains("reqs_total{reporter=\"destination\",app=\"x\"} 0"),
            "{out}"
        );
        assert!(!out.contains("reporter=\"source\""), "{out}");
        // The histogram's every line, `le` and all, stays with its series.
        assert_eq!(out.matches("lat_").count(), 4, "{out}");
        assert!(!out.contains("up 0"), "{out}");
        // A family with no series left loses its header too.
        let out = apply("filter=^up$");
        assert_eq!(out, "# TYPE up gauge\nup 0\n\n");
        // A comma inside a quoted value does not split the label.
        assert!(apply("filter=app=\"a,b\"").contains("reqs_total{reporter=\"source\""));
    }

    #[test]
    fn usedonly_keeps_series_ever_updated() {
        let out = apply("usedonly");
        assert!(out.contains("reqs_total{reporter=\"source\""), "{out}");
        assert!(
            !out.contains("reqs_total{reporter=\"destination\""),
            "{out}"
        );
        assert!(out.contains("lat_count{reporter=\"source\"} 2"), "{out}");
        assert!(
            !out.contains("lat_count{reporter=\"destination\"}"),
            "{out}"
        );
        assert!(
            out.contains("up 0"),
            "a gauge is set when registered: {out}"
        );
    }

    #[test]
    fn type_selects_a_kind() {
        let out = apply("type=Histograms&usedonly=");
        assert!(out.starts_with("# TYPE lat histogram\n"), "{out}");
        assert!(
            !out.contains("reqs_total") && !out.contains("up 0"),
            "{out}"
        );
        // Envoy accepts text readouts; mesh has none.
        assert_eq!(apply("type=TextReadouts"), "");
    }

    #[test]
    fn bad_parameters_are_refused_as_envoy_refuses_them() {
        assert_eq!(
            StatsQuery::parse(Some("filter=(")).unwrap_err(),
            BadQuery("Invalid re2 regex")
        );
        assert_eq!(
            StatsQuery::parse(Some("type=Sometimes")).unwrap_err(),
            BadQuery("invalid &type= param")
        );
    }
}
