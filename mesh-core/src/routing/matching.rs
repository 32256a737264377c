//! Route conditions, with Istio's semantics: within a match block every condition must hold; a
//! route matches when any of its blocks does (or it has none).

use super::{RequestHeaders, RequestInfo};
use crate::model::{HeaderMatch, QueryMatch, Route, RouteMatch};

/// Whether `route` matches the request.
pub fn route_matches<H: RequestHeaders + ?Sized>(
    route: &Route,
    request: &RequestInfo<'_, H>,
) -> bool {
    route.matches.is_empty() || route.matches.iter().any(|m| block_matches(m, request))
}

fn block_matches<H: RequestHeaders + ?Sized>(m: &RouteMatch, request: &RequestInfo<'_, H>) -> bool {
    if m.port.is_some_and(|port| port != request.port) {
        return false;
    }
    let fails = |matcher: &Option<crate::model::StringMatch>, value: &str, ignore_case: bool| {
        matcher
            .as_ref()
            .is_some_and(|m| !m.matches(value, ignore_case))
    };
    if fails(&m.path, request.path(), m.ignore_uri_case)
        || fails(&m.method, request.method, false)
        || fails(&m.authority, request.authority, false)
    {
        return false;
    }
    m.headers.iter().all(|h| header_matches(h, request.headers))
        && m.query.iter().all(|q| query_matches(q, request.query()))
}

fn header_matches<H: RequestHeaders + ?Sized>(h: &HeaderMatch, headers: &H) -> bool {
    let hit = match (headers.header(&h.name), &h.value) {
        // Envoy's `treat_missing_header_as_empty`, which istiod sets on every inverted value
        // match (pilot/pkg/networking/core/route TranslateRouteMatch, withoutHeaders).
        (None, Some(matcher)) if h.invert => matcher.matches("", false),
        (None, _) => false,
        (Some(_), None) => true,
        (Some(value), Some(matcher)) => matcher.matches(value, false),
    };
    hit != h.invert
}

fn query_matches(q: &QueryMatch, query: Option<&str>) -> bool {
    let Some(query) = query else { return false };
    query
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == q.name).then_some(value)
        })
        .any(|value| q.value.as_ref().is_none_or(|m| m.matches(value, false)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Regex, RouteAction, RouteOrigin, StringMatch};

    fn route(matches: Vec<RouteMatch>) -> Route {
        Route {
            origin: RouteOrigin::Default,
            matches,
            action: RouteAction::DirectResponse {
                status: 200,
                body: None,
            },
            timeout: None,
            retry: None,
            fault: None,
            mirrors: vec![],
            request_headers: Default::default(),
            response_headers: Default::default(),
            rewrite: None,
        }
    }

    fn req<'a>(
        path: &'a str,
        headers: &'a [(String, String)],
    ) -> RequestInfo<'a, [(String, String)]> {
        RequestInfo {
            method: "GET",
            authority: "reviews:9080",
            path_and_query: path,
            port: 9080,
            headers,
        }
    }

    fn hdr(name: &str, value: &str) -> Vec<(String, String)> {
        vec![(name.to_owned(), value.to_owned())]
    }

    #[test]
    fn conditions_follow_istio() {
        let jason = RouteMatch {
            headers: vec![HeaderMatch {
                name: "end-user".into(),
                value: Some(StringMatch::Exact("jason".into())),
                invert: false,
            }],
            ..Default::default()
        };
        let api = RouteMatch {
            path: Some(StringMatch::Prefix("/API".into())),
            ignore_uri_case: true,
            ..Default::default()
        };
        let present = RouteMatch {
            headers: vec![HeaderMatch {
                name: "x-canary".into(),
                value: None,
                invert: false,
            }],
            ..Default::default()
        };
        let without = RouteMatch {
            headers: vec![HeaderMatch {
                name: "x-debug".into(),
                value: Some(StringMatch::Regex(Regex::new("on|yes").unwrap())),
                invert: true,
            }],
            ..Default::default()
        };
        let query = RouteMatch {
            query: vec![QueryMatch {
                name: "v".into(),
                value: Some(StringMatch::Exact("2".into())),
            }],
            ..Default::default()
        };
        let port = RouteMatch {
            port: Some(9090),
            ..Default::default()
        };
        let none: Vec<(String, String)> = vec![];
        type Case<'a> = (&'a str, RouteMatch, &'a str, Vec<(String, String)>, bool);
        let cases: Vec<Case<'_>> = vec![
            (
                "header exact",
                jason.clone(),
                "/",
                hdr("end-user", "jason"),
                true,
            ),
            (
                "header exact other value",
                jason.clone(),
                "/",
                hdr("end-user", "json"),
                false,
            ),
            ("header absent", jason, "/", none.clone(), false),
            (
                "prefix ignoring case",
                api.clone(),
                "/api/v1?x=1",
                none.clone(),
                true,
            ),
            ("prefix elsewhere", api, "/v1/api", none.clone(), false),
            ("presence", present.clone(), "/", hdr("x-canary", ""), true),
            ("presence absent", present, "/", none.clone(), false),
            (
                "without header absent",
                without.clone(),
                "/",
                none.clone(),
                true,
            ),
            (
                "without header other value",
                without.clone(),
                "/",
                hdr("x-debug", "off"),
                true,
            ),
            (
                "without header matching",
                without,
                "/",
                hdr("x-debug", "on"),
                false,
            ),
            (
                "query exact",
                query.clone(),
                "/p?a=1&v=2",
                none.clone(),
                true,
            ),
            ("query other", query.clone(), "/p?v=3", none.clone(), false),
            ("query absent", query, "/p", none.clone(), false),
            ("port other", port, "/", none.clone(), false),
        ];
        for (name, m, path, headers, want) in cases {
            let r = route(vec![m]);
            assert_eq!(route_matches(&r, &req(path, &headers)), want, "{name}");
        }
        assert!(
            route_matches(&route(vec![]), &req("/", &none)),
            "no match blocks match all"
        );
    }
}
