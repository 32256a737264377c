//! Route configurations from VirtualServices.

use std::time::Duration;

use mesh_core::model::{
    AbortStatus, HeaderMatch, Percent, RetryOn, RouteAction, RouteOrigin, StringMatch,
};
use mesh_core::{Workload, istio};

use super::*;

fn outbound(subset: &str) -> String {
    format!("outbound|9080|{subset}|{REVIEWS}")
}

#[test]
fn weighted_splits_follow_the_bookinfo_samples() {
    let cases = [
        (
            "virtual-service-reviews-90-10.yaml",
            vec![("v1", 90), ("v2", 10)],
        ),
        (
            "virtual-service-reviews-80-20.yaml",
            vec![("v1", 80), ("v2", 20)],
        ),
        (
            "virtual-service-reviews-50-v3.yaml",
            vec![("v1", 50), ("v3", 50)],
        ),
        ("virtual-service-reviews-v3.yaml", vec![("v3", 100)]),
    ];
    for (file, want) in cases {
        let s = load_bookinfo(&["destination-rule-all.yaml", file]);
        let r = routes(&s, 9080, "reviews:9080");
        assert_eq!(r.len(), 1, "{file}");
        let want: Vec<_> = want.into_iter().map(|(s, w)| (outbound(s), w)).collect();
        assert_eq!(weights(&r[0]), want, "{file}");
        for (cluster, _) in &want {
            assert!(
                s.clusters.keys().any(|c| c.as_str() == cluster),
                "{cluster} exists"
            );
        }
        assert!(s.warnings.is_empty(), "{file}: {:?}", warnings(&s));
    }
}

#[test]
fn jason_goes_to_v2() {
    let s = load_bookinfo(&[
        "destination-rule-all.yaml",
        "virtual-service-reviews-test-v2.yaml",
    ]);
    let r = routes(&s, 9080, "reviews");
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0].matches[0].headers,
        vec![HeaderMatch {
            name: "end-user".into(),
            value: Some(StringMatch::Exact("jason".into())),
            invert: false
        }]
    );
    assert_eq!(weights(&r[0]), vec![(outbound("v2"), 100)]);
    assert!(r[1].matches.is_empty());
    assert_eq!(weights(&r[1]), vec![(outbound("v1"), 100)]);
    assert_eq!(
        r[0].origin,
        RouteOrigin::VirtualService {
            name: "default/reviews".into(),
            index: 0,
            route_name: None
        }
    );
}

#[test]
fn faults_from_the_bookinfo_samples() {
    let s = load_bookinfo(&[
        "destination-rule-all.yaml",
        "virtual-service-ratings-test-delay.yaml",
    ]);
    let delay = routes(&s, 9080, "ratings")
        .first()
        .and_then(|r| r.fault.clone())
        .unwrap();
    let d = delay.delay.unwrap();
    assert_eq!(
        (d.fixed_delay, d.percentage),
        (Duration::from_secs(7), Percent::ALL)
    );
    assert!(delay.abort.is_none());

    let s = load_bookinfo(&[
        "destination-rule-all.yaml",
        "virtual-service-ratings-test-abort.yaml",
    ]);
    let abort = routes(&s, 9080, "ratings")[0]
        .fault
        .clone()
        .unwrap()
        .abort
        .unwrap();
    assert_eq!(
        (abort.status, abort.percentage),
        (AbortStatus::Http(500), Percent::ALL)
    );
}

#[test]
fn fault_forms() {
    let cases = [
        // (fault yaml, delay, abort)
        (
            "{delay: {fixedDelay: 2s, percent: 30}}",
            Some((2000, 300_000)),
            None,
        ),
        ("{delay: {fixedDelay: 100ms}}", Some((100, 1_000_000)), None),
        (
            "{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.5}}}",
            None,
            Some((AbortStatus::Grpc(14), 5_000)),
        ),
        (
            "{abort: {httpStatus: 503}}",
            None,
            Some((AbortStatus::Http(503), 1_000_000)),
        ),
    ];
    for (fault, delay, abort) in cases {
        let s = load(&with_reviews(&format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - fault: {fault}
    route: [{{destination: {{host: reviews}}}}]
"
        )));
        let f = routes(&s, 9080, "reviews")[0].fault.clone().unwrap();
        assert_eq!(
            f.delay.map(|d| (
                d.fixed_delay.as_millis() as u64,
                d.percentage.parts_per_million()
            )),
            delay,
            "{fault}"
        );
        assert_eq!(
            f.abort
                .map(|a| (a.status, a.percentage.parts_per_million())),
            abort,
            "{fault}"
        );
    }
}

#[test]
fn retries() {
    let default = RetryOn {
        connect_failure: true,
        refused_stream: true,
        grpc_unavailable: true,
        grpc_cancelled: true,
        retriable_status_codes: true,
        ..RetryOn::default()
    };
    /// (attempts, per-try timeout in ms, conditions, status codes); `None`: no retries.
    type Want = Option<(u32, Option<u64>, RetryOn, Vec<u16>)>;
    let cases: [(&str, Want); 4] = [
        ("", Some((2, None, default.clone(), vec![503]))),
        (
            "retries: {attempts: 3, perTryTimeout: 2s, retryOn: '5xx,gateway-error,unavailable,409'}",
            Some((
                3,
                Some(2000),
                RetryOn {
                    server_error: true,
                    gateway_error: true,
                    grpc_unavailable: true,
                    retriable_status_codes: true,
                    ..RetryOn::default()
                },
                vec![409],
            )),
        ),
        (
            "retries: {attempts: 5}",
            Some((5, None, default, vec![503])),
        ),
        ("retries: {attempts: 0}", None),
    ];
    for (retries, want) in cases {
        let s = load(&with_reviews(&format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews}}}}]
    {retries}
"
        )));
        let got = routes(&s, 9080, "reviews")[0].retry.clone().map(|r| {
            assert_eq!(r.backoff_base, Duration::from_millis(25));
            (
                r.attempts,
                r.per_try_timeout.map(|d| d.as_millis() as u64),
                r.retry_on,
                r.retriable_status_codes,
            )
        });
        assert_eq!(got, want, "{retries}");
    }
}

#[test]
fn services_without_virtual_service_get_a_default_route() {
    let s = load(&with_reviews(""));
    let r = routes(&s, 9080, "reviews.default.svc.cluster.local:9080");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].origin, RouteOrigin::Default);
    assert_eq!(weights(&r[0]), vec![(outbound(""), 100)]);
    assert_eq!(r[0].timeout, None);
    let retry = r[0].retry.clone().unwrap();
    assert_eq!(
        (retry.attempts, retry.backoff_max),
        (2, Duration::from_millis(250))
    );
}

#[test]
fn short_hosts_resolve_in_the_resource_namespace() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    timeout: 3s
";
    let host = "reviews.prod.svc.cluster.local";
    // Seen from `default`: no bare short name.
    let s = load(yaml);
    let rc = s.route_config(9080).unwrap();
    assert!(rc.virtual_host("reviews").is_none());
    let vh = rc.virtual_host("reviews.prod").unwrap();
    assert_eq!(vh.name, format!("{host}:9080"));
    for d in [host, "reviews.prod.svc", "reviews.prod:9080"] {
        assert!(vh.domains.iter().any(|x| x == d), "{d} in {:?}", vh.domains);
    }
    assert_eq!(vh.routes[0].timeout, Some(Duration::from_secs(3)));
    assert_eq!(
        weights(&vh.routes[0]),
        vec![(format!("outbound|9080||{host}"), 100)]
    );
    // Seen from `prod`: the short name too.
    let s = load_with(yaml, &ctx_for(Workload::new("prod", "x")));
    assert!(
        s.route_config(9080)
            .unwrap()
            .virtual_host("reviews:9080")
            .is_some()
    );
}

#[test]
fn source_labels_are_evaluated_for_this_workload() {
    let yaml = with_reviews(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews}}]
    timeout: 1s
  - match: [{sourceLabels: {app: other}}, {sourceNamespace: other}]
    route: [{destination: {host: reviews}}]
    timeout: 2s
  - route: [{destination: {host: reviews}}]
    timeout: 3s
",
    );
    let s = load(&yaml);
    let r = routes(&s, 9080, "reviews");
    let timeouts: Vec<_> = r.iter().map(|r| r.timeout.unwrap().as_secs()).collect();
    assert_eq!(
        timeouts,
        [1, 3],
        "the second entry cannot match productpage"
    );
    let s = istio::load_str("t.yaml", &yaml, &ctx_for(Workload::new("other", "x"))).unwrap();
    let r = routes(&s, 9080, "reviews.default");
    let timeouts: Vec<_> = r.iter().map(|r| r.timeout.unwrap().as_secs()).collect();
    assert_eq!(timeouts, [2, 3]);
}

#[test]
fn several_ports_route_per_port() {
    let s = load(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 80, name: http}, {number: 8080, name: http-admin}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.example.com]
  http:
  - match: [{port: 8080, uri: {prefix: /admin}}]
    route: [{destination: {host: api.example.com}}]
  - route: [{destination: {host: api.example.com}}]
",
    );
    let r80 = routes(&s, 80, "api.example.com");
    assert_eq!(r80.len(), 1, "the port-8080 match is not on port 80");
    assert_eq!(
        weights(&r80[0]),
        vec![("outbound|80||api.example.com".into(), 100)]
    );
    let r8080 = routes(&s, 8080, "api.example.com:8080");
    assert_eq!(r8080.len(), 2);
    assert_eq!(
        r8080[0].matches[0].path,
        Some(StringMatch::Prefix("/admin".into()))
    );
    assert_eq!(
        weights(&r8080[1]),
        vec![("outbound|8080||api.example.com".into(), 100)]
    );
    assert_eq!(s.route_config(80).unwrap().name, "80");
}

#[test]
fn actions_headers_mirrors_and_rewrites() {
    let s = load(&with_reviews(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: old
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - match: [{uri: {regex: '/health.*'}, ignoreUriCase: true}]
    directResponse: {status: 200, body: {string: ok}}
  - headers:
      request: {set: {X-Mesh: mesh}, remove: [x-debug]}
    rewrite: {uri: /v2/}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 25}
    route:
    - destination: {host: reviews, subset: v1}
      headers: {response: {add: {x-from: v1}}}
",
    ));
    let r = routes(&s, 9080, "reviews");
    assert_eq!(
        r[0].action,
        RouteAction::Redirect {
            path: Some("/new".into()),
            authority: None,
            status: 308
        }
    );
    assert_eq!(
        r[1].action,
        RouteAction::DirectResponse {
            status: 200,
            body: Some("ok".into())
        }
    );
    assert!(r[1].matches[0].ignore_uri_case);
    assert_eq!(
        r[2].request_headers.set,
        vec![("x-mesh".to_string(), "mesh".to_string())]
    );
    assert_eq!(r[2].request_headers.remove, vec!["x-debug".to_string()]);
    assert_eq!(
        r[2].rewrite.as_ref().and_then(|r| r.uri.clone()),
        Some("/v2/".into())
    );
    assert_eq!(r[2].mirrors[0].cluster.as_str(), outbound("v2"));
    assert_eq!(
        r[2].mirrors[0].percentage,
        Percent::from_percent(25.0).unwrap()
    );
    match &r[2].action {
        RouteAction::Forward(w) => {
            assert_eq!(
                w[0].response_headers.add,
                vec![("x-from".to_string(), "v1".to_string())]
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mesh_gateway_only() {
    let s = load(&with_reviews(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  gateways: [bookinfo-gateway]
  http:
  - route: [{destination: {host: reviews}}]
    timeout: 1s
",
    ));
    assert_eq!(routes(&s, 9080, "reviews")[0].origin, RouteOrigin::Default);
    assert_eq!(
        warnings(&s),
        [
            "test.yaml: doc 1 VirtualService default/reviews: spec.gateways: applies to gateways only (not \"mesh\"); skipped"
        ]
    );
}

#[test]
fn tcp_only_virtual_services_keep_the_default_route() {
    let s = load(&with_reviews(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  tcp: [{route: [{destination: {host: reviews}}]}]
",
    ));
    assert_eq!(routes(&s, 9080, "reviews")[0].origin, RouteOrigin::Default);
    assert_eq!(
        warnings(&s),
        ["test.yaml: doc 1 VirtualService default/reviews: spec.tcp: not implemented; ignored"]
    );
}
