//! Istio fidelity of routing config (issue #12): Istio-shaped cases whose expected result is what
//! istiod produces; each test names the istiod rule (file / function) it follows.

use mesh_core::model::{ClusterName, LbPolicy, RouteOrigin, Snapshot};
use mesh_core::routing::{self, RequestInfo};
use mesh_core::{BuildContext, MeshSettings, Workload, istio};

use super::*;

fn vs(name: &str, meta: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}{meta}}}\nspec:\n{spec}---\n"
    )
}

fn dr(name: &str, meta: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}{meta}}}\nspec:\n{spec}---\n"
    )
}

/// The VirtualService (namespace/name) whose routes serve `reviews:9080`.
fn routed_by(s: &Snapshot) -> Vec<String> {
    let mut names: Vec<String> = routes(s, 9080, "reviews:9080")
        .iter()
        .map(|r| match &r.origin {
            RouteOrigin::VirtualService { name, .. } => name.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    names.dedup();
    names
}

/// The cluster a GET to `reviews:9080{path}` with `headers` goes to.
fn cluster_for(s: &Snapshot, path: &str, headers: &[(&str, &str)]) -> Option<String> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let info = RequestInfo {
        method: "GET",
        authority: "reviews:9080",
        path_and_query: path,
        port: 9080,
        headers: headers.as_slice(),
    };
    let selected = routing::select(s, &info).ok()?;
    Some(weights(selected.route)[0].0.clone())
}

fn subset(s: &str) -> String {
    format!("outbound|9080|{s}|{REVIEWS}")
}

const SUBSETS: &str = "  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n  - {name: v3, labels: {version: v3}}\n";

/// #11 item 7: a host listed twice used to panic the loader (index out of bounds). istiod's
/// validation refuses it: "duplicate hosts in virtual service" (pkg/config/validation
/// ValidateVirtualService), wildcards included; two spellings of one host are accepted.
#[test]
fn a_host_listed_twice_is_refused_not_a_panic() {
    let yaml = with_reviews(&vs(
        "reviews",
        "",
        "  hosts: [reviews, reviews]\n  http: [{route: [{destination: {host: reviews}}]}]\n",
    ));
    assert_eq!(
        errors(&yaml),
        [
            "test.yaml: doc 1 VirtualService default/reviews: spec.hosts[1]: duplicate hosts in virtual service: reviews & reviews"
        ]
    );
    let wild = with_reviews(&vs(
        "w",
        "",
        "  hosts: ['*.example.com', api.example.com]\n  http: [{route: [{destination: {host: reviews}}]}]\n",
    ));
    assert_eq!(
        errors(&wild),
        [
            "test.yaml: doc 1 VirtualService default/w: spec.hosts[1]: duplicate hosts in virtual service: *.example.com & api.example.com"
        ]
    );
    let spellings = with_reviews(&vs(
        "reviews",
        "",
        &format!(
            "  hosts: [reviews, {REVIEWS}]\n  http: [{{route: [{{destination: {{host: reviews}}}}]}}]\n"
        ),
    ));
    let s = load(&spellings);
    assert_eq!(routed_by(&s), ["default/reviews"]);
}

/// Weights are relative: pkg/config/validation validateHTTPRouteDestinations (each >= 0, only a
/// total of 0 across several destinations is an error) and pilot/pkg/networking/core/route
/// applyHTTPRouteDestination (one destination ignores its weight; a 0 weight among several is
/// dropped). Gateway API conversions produce totals like 5.
#[test]
fn weights_are_relative() {
    let base = with_reviews(&dr("reviews", "", SUBSETS));
    let route = |dests: &str| {
        load(&format!(
            "{base}{}",
            vs(
                "reviews",
                "",
                &format!("  hosts: [reviews]\n  http:\n  - route:\n{dests}")
            )
        ))
    };
    let s = route(
        "    - {destination: {host: reviews, subset: v1}, weight: 3}\n    - {destination: {host: reviews, subset: v2}, weight: 2}\n",
    );
    let r = routes(&s, 9080, "reviews");
    assert_eq!(weights(&r[0]), [(subset("v1"), 3), (subset("v2"), 2)]);
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));

    let s = route("    - {destination: {host: reviews, subset: v1}, weight: 50}\n");
    assert_eq!(
        weights(&routes(&s, 9080, "reviews")[0]),
        [(subset("v1"), 100)]
    );
    let s = route("    - {destination: {host: reviews, subset: v1}}\n");
    assert_eq!(
        weights(&routes(&s, 9080, "reviews")[0]),
        [(subset("v1"), 100)]
    );

    let s = route(
        "    - {destination: {host: reviews, subset: v1}, weight: 100}\n    - {destination: {host: reviews, subset: v2}}\n",
    );
    assert_eq!(
        weights(&routes(&s, 9080, "reviews")[0]),
        [(subset("v1"), 100), (subset("v2"), 0)]
    );
}

/// Two VirtualServices for one host: istiod keeps the oldest by creationTimestamp, then by
/// name (pilot/pkg/model/config.go configCompareByCreationTime, applied by
/// sortMergedVirtualServicesByCreationTime), whatever the file order.
#[test]
fn the_oldest_virtual_service_keeps_a_host() {
    let spec = |subset: &str| {
        format!(
            "  hosts: [reviews]\n  http: [{{route: [{{destination: {{host: reviews, subset: {subset}}}}}]}}]\n"
        )
    };
    let base = with_reviews(&dr("reviews", "", SUBSETS));
    let s = load(&format!(
        "{base}{}{}",
        vs(
            "newer",
            ", creationTimestamp: '2024-05-02T00:00:00Z'",
            &spec("v1")
        ),
        vs(
            "older",
            ", creationTimestamp: '2024-05-01T23:59:59Z'",
            &spec("v2")
        ),
    ));
    assert_eq!(routed_by(&s), ["default/older"]);
    assert!(
        warnings(&s)
            .iter()
            .any(|w| w.contains("VirtualService default/newer")
                && w.contains("is already routed by VirtualService default/older")),
        "{:?}",
        warnings(&s)
    );
    // No timestamps (Go's zero time for all): the name decides.
    let s = load(&format!(
        "{base}{}{}",
        vs("b", "", &spec("v1")),
        vs("a", "", &spec("v2"))
    ));
    assert_eq!(routed_by(&s), ["default/a"]);
    // An unstamped resource is older than any stamped one.
    let s = load(&format!(
        "{base}{}{}",
        vs(
            "a",
            ", creationTimestamp: '2020-01-01T00:00:00Z'",
            &spec("v1")
        ),
        vs("z", "", &spec("v2"))
    ));
    assert_eq!(routed_by(&s), ["default/z"]);
    let bad = format!(
        "{base}{}",
        vs("a", ", creationTimestamp: yesterday", &spec("v1"))
    );
    assert_eq!(
        errors(&bad),
        [
            r#"test.yaml: doc 2 VirtualService default/a: metadata.creationTimestamp: "yesterday" is not an RFC 3339 time (e.g. 2024-05-01T10:00:00Z)"#
        ]
    );
}

/// exportTo: a VirtualService private to another namespace does not take over this workload's
/// traffic; the workload's own private ones come before public ones
/// (pilot/pkg/model/push_context.go initVirtualServices and VirtualServicesForGateway:
/// private, then exported to the namespace, then public).
#[test]
fn virtual_service_export_to() {
    let spec = |subset: &str, export: &str| {
        format!(
            "  hosts: [{REVIEWS}]\n  exportTo: {export}\n  http: [{{route: [{{destination: {{host: {REVIEWS}, subset: {subset}}}}}]}}]\n"
        )
    };
    let base = with_reviews(&dr("reviews", "", SUBSETS));
    let other_private = vs(
        "hijack",
        ", namespace: other, creationTimestamp: '2020-01-01T00:00:00Z'",
        &spec("v3", "['.']"),
    );
    let own = vs(
        "reviews",
        ", creationTimestamp: '2024-01-01T00:00:00Z'",
        &spec("v1", "['*']"),
    );
    let s = load(&format!("{base}{other_private}{own}"));
    assert_eq!(routed_by(&s), ["default/reviews"]);

    // Exported by name to `default`: seen, and older, so it wins over a public one.
    let exported = vs(
        "shared",
        ", namespace: other, creationTimestamp: '2020-01-01T00:00:00Z'",
        &spec("v3", "[default]"),
    );
    let s = load(&format!("{base}{exported}{own}"));
    assert_eq!(routed_by(&s), ["other/shared"]);

    // The workload's private VirtualService beats an older public one.
    let public_old = vs(
        "public",
        ", namespace: other, creationTimestamp: '2020-01-01T00:00:00Z'",
        &spec("v3", "['*']"),
    );
    let private_new = vs(
        "mine",
        ", creationTimestamp: '2024-01-01T00:00:00Z'",
        &spec("v2", "['.']"),
    );
    let s = load(&format!("{base}{public_old}{private_new}"));
    assert_eq!(routed_by(&s), ["default/mine"]);

    // MeshConfig defaultVirtualServiceExportTo: ["."] makes unmarked ones private.
    let ctx = BuildContext {
        settings: MeshSettings {
            default_virtual_service_export_to: vec![".".into()],
            ..MeshSettings::default()
        },
        ..ctx()
    };
    let unmarked = vs(
        "unmarked",
        ", namespace: other",
        &format!(
            "  hosts: [{REVIEWS}]\n  http: [{{route: [{{destination: {{host: {REVIEWS}, subset: v3}}}}]}}]\n"
        ),
    );
    let s = load_with(&format!("{base}{unmarked}"), &ctx);
    assert!(routes(&s, 9080, "reviews")[0].origin == RouteOrigin::Default);
    let s = load(&format!("{base}{unmarked}"));
    assert_eq!(routed_by(&s), ["other/unmarked"]);

    // validateExportTo.
    let bad = format!("{base}{}", vs("x", "", &spec("v1", "['~']")));
    assert_eq!(
        errors(&bad),
        [
            "test.yaml: doc 2 VirtualService default/x: spec.exportTo[0]: exportTo ~ (none) is not allowed for Istio configuration objects"
        ]
    );
    let bad = format!("{base}{}", vs("x", "", &spec("v1", "[default, '.']")));
    assert_eq!(
        errors(&bad),
        [
            "test.yaml: doc 2 VirtualService default/x: spec.exportTo[1]: duplicate entries in exportTo: . and current namespace default"
        ]
    );
}

/// ServiceEntry exportTo (`~` allowed) and DestinationRule exportTo: a rule private to another
/// namespace is not applied (push_context.go destinationRule / getExportedDestinationRuleFromNamespace;
/// servicesExportedToNamespace).
#[test]
fn service_entry_and_destination_rule_export_to() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: other}\nspec:\n  hosts: [api.example.com]\n  exportTo: ['~']\n  resolution: DNS\n  ports: [{number: 443, name: https, protocol: TLS}]\n";
    let s = load(se);
    assert!(s.route_config(443).is_none());
    let s = load(&se.replace("['~']", "['.']"));
    assert!(s.route_config(443).is_none());
    let s = load(&se.replace("['~']", "[default]"));
    assert!(s.route_config(443).is_some());

    let rule = |export: &str| {
        dr(
            "reviews",
            ", namespace: istio-system",
            &format!(
                "  host: {REVIEWS}\n  exportTo: {export}\n  trafficPolicy: {{loadBalancer: {{simple: RANDOM}}}}\n"
            ),
        )
    };
    let lb = |s: &Snapshot| {
        s.cluster(&ClusterName::outbound(REVIEWS, 9080, None))
            .map(|c| c.lb.clone())
    };
    let s = load(&with_reviews(&rule("['.']")));
    assert_eq!(lb(&s), Some(LbPolicy::LeastRequest));
    let s = load(&with_reviews(&rule("['*']")));
    assert_eq!(lb(&s), Some(LbPolicy::Random));
}

/// Several DestinationRules for one host merge (pilot/pkg/model/destination_rule.go
/// mergeDestinationRule): subsets appended, a repeated subset keeps the first, the oldest rule's
/// trafficPolicy wins (setDestinationRules sorts by sortConfigBySelectorAndCreationTime).
#[test]
fn destination_rules_for_one_host_merge() {
    let newer = dr(
        "newer",
        ", creationTimestamp: '2024-02-01T00:00:00Z'",
        "  host: reviews\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  - {name: v2, labels: {version: v2}}\n  - {name: v1, labels: {version: v3}}\n",
    );
    let older = dr(
        "older",
        ", creationTimestamp: '2024-01-01T00:00:00Z'",
        "  host: reviews\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n",
    );
    let s = load(&with_reviews(&format!("{newer}{older}")));
    let cluster = |sub: Option<&str>| {
        s.cluster(&ClusterName::outbound(REVIEWS, 9080, sub))
            .unwrap_or_else(|| panic!("cluster {sub:?}"))
            .clone()
    };
    assert_eq!(cluster(None).lb, LbPolicy::RoundRobin);
    assert_eq!(cluster(Some("v2")).lb, LbPolicy::RoundRobin);
    // v1 is the older rule's (version v1), not the newer's repeated name.
    let v1 = cluster(Some("v1"));
    assert_eq!(v1.endpoints.len(), 1);
    assert_eq!(
        v1.endpoints[0].labels.get("version").map(String::as_str),
        Some("v1")
    );
    // A rule without trafficPolicy lets a later one's apply.
    let bare = dr(
        "a",
        "",
        "  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]\n",
    );
    let policy = dr(
        "b",
        "",
        "  host: reviews\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n",
    );
    let s = load(&with_reviews(&format!("{bare}{policy}")));
    assert_eq!(
        s.cluster(&ClusterName::outbound(REVIEWS, 9080, Some("v1")))
            .map(|c| c.lb.clone()),
        Some(LbPolicy::Random)
    );
}

/// exportTo variations of merged rules (push_context.go setDestinationRules,
/// mergeDestinationRule with ENABLE_ENHANCED_DESTINATIONRULE_MERGE): a rule exported only to
/// another namespace is not local to its own, and rules with different exportTo stay apart.
#[test]
fn destination_rule_merge_follows_export_to() {
    let elsewhere = dr(
        "a",
        ", creationTimestamp: '2024-01-01T00:00:00Z'",
        "  host: reviews\n  exportTo: [other]\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: v1, labels: {version: v1}}]\n",
    );
    let here = dr(
        "b",
        ", creationTimestamp: '2024-02-01T00:00:00Z'",
        "  host: reviews\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n  subsets: [{name: v2, labels: {version: v2}}]\n",
    );
    let yaml = with_reviews(&format!("{elsewhere}{here}"));
    let s = load(&yaml);
    let lb = |s: &Snapshot, sub: Option<&str>| {
        s.cluster(&ClusterName::outbound(REVIEWS, 9080, sub))
            .map(|c| c.lb.clone())
    };
    assert_eq!(lb(&s, None), Some(LbPolicy::RoundRobin));
    assert_eq!(lb(&s, Some("v2")), Some(LbPolicy::RoundRobin));
    assert_eq!(lb(&s, Some("v1")), None);
    // Seen from `other`, through the service namespace's exported rules: only `a` is
    // exported there (`b`, exported everywhere by default, merges with it only when their
    // exportTo sets are equal, so it stays apart and the last catch-all wins).
    let other = ctx_for(Workload::new("other", "client"));
    let s = load_with(&yaml, &other);
    assert_eq!(lb(&s, None), Some(LbPolicy::RoundRobin));

    // No exportTo and `exportTo: ['*']` are different sets to mergeDestinationRule (the
    // empty set equals only the empty set), so these two stay apart and the later catch-all
    // applies whole: its policy, its subsets only.
    let implicit = dr(
        "a",
        ", creationTimestamp: '2024-01-01T00:00:00Z'",
        "  host: reviews\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: v1, labels: {version: v1}}]\n",
    );
    let star = dr(
        "b",
        ", creationTimestamp: '2024-02-01T00:00:00Z'",
        "  host: reviews\n  exportTo: ['*']\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n  subsets: [{name: v2, labels: {version: v2}}]\n",
    );
    let s = load(&with_reviews(&format!("{implicit}{star}")));
    assert_eq!(lb(&s, None), Some(LbPolicy::RoundRobin));
    assert_eq!(lb(&s, Some("v2")), Some(LbPolicy::RoundRobin));
    assert_eq!(lb(&s, Some("v1")), None);
}

/// workloadSelector on DestinationRules: a matching rule in the workload's namespace wins, one
/// that does not match is not applied, and rules with different selectors do not merge
/// (pilot/pkg/model/sidecar.go SidecarScope.DestinationRule; mergeDestinationRule).
#[test]
fn destination_rule_workload_selector() {
    let general = dr(
        "general",
        "",
        "  host: reviews\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n",
    );
    let mine = dr(
        "mine",
        "",
        "  host: reviews\n  workloadSelector: {matchLabels: {app: productpage}}\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n",
    );
    let theirs = dr(
        "theirs",
        "",
        "  host: reviews\n  workloadSelector: {matchLabels: {app: ratings}}\n  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}\n",
    );
    let lb = |yaml: &str| {
        load(&with_reviews(yaml))
            .cluster(&ClusterName::outbound(REVIEWS, 9080, None))
            .map(|c| c.lb.clone())
    };
    assert_eq!(
        lb(&format!("{general}{mine}{theirs}")),
        Some(LbPolicy::Random)
    );
    assert_eq!(
        lb(&format!("{general}{theirs}")),
        Some(LbPolicy::RoundRobin)
    );
    // Only a non-matching selector rule: not applied, the default balancer stays.
    assert_eq!(
        lb(&theirs.replace("LEAST_REQUEST", "RANDOM")),
        Some(LbPolicy::LeastRequest)
    );
    let bad = with_reviews(&dr(
        "x",
        "",
        "  host: reviews\n  workloadSelector: {matchLabels: {app: productpage}}\n  exportTo: ['*']\n",
    ));
    assert_eq!(
        errors(&bad),
        [
            "test.yaml: doc 1 DestinationRule default/x: spec.exportTo: destination rule with workload selector cannot have exportTo beyond current namespace"
        ]
    );
}

/// ServiceEntry `ports` are optional (pkg/config/validation ValidateServiceEntry checks only the
/// ports given) and an empty protocol means sniffing (ValidateProtocol); the client sees the
/// application's HTTP request, so such a port is routed as HTTP.
#[test]
fn service_entry_ports_are_optional_and_protocol_may_be_empty() {
    let s = load(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [api.example.com]\n  resolution: DNS\n",
    );
    assert!(s.routes.is_empty());
    assert!(
        warnings(&s)[0].ends_with("spec.ports: no ports: mesh routes nothing to these hosts; requests for them follow the outbound traffic policy (ALLOW_ANY passes them through)"),
        "{:?}",
        warnings(&s)
    );
    let s = load(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 8080, name: web, protocol: ''}]\n",
    );
    let c = s
        .cluster(&ClusterName::outbound("api.example.com", 8080, None))
        .expect("cluster");
    assert_eq!(c.protocol, mesh_core::model::Protocol::Unspecified);
    assert!(routes(&s, 8080, "api.example.com:8080").len() == 1);
}

/// `withoutHeaders: {x: {regex: "*"}}` is valid: `*` is Istio's "present" match, so under
/// withoutHeaders it means "absent" (pilot/pkg/networking/core/route canBeConvertedToPresentMatch).
/// An inverted value match treats a missing header as empty (treat_missing_header_as_empty).
#[test]
fn without_headers_star_means_absent() {
    let base = with_reviews(&dr("reviews", "", SUBSETS));
    let s = load(&format!(
        "{base}{}",
        vs(
            "reviews",
            "",
            "  hosts: [reviews]\n  http:\n  - match: [{withoutHeaders: {x-user: {regex: '*'}}}]\n    route: [{destination: {host: reviews, subset: v1}}]\n  - match: [{withoutHeaders: {x-env: {regex: '.*'}}}]\n    route: [{destination: {host: reviews, subset: v3}}]\n  - route: [{destination: {host: reviews, subset: v2}}]\n",
        )
    ));
    assert_eq!(cluster_for(&s, "/", &[]), Some(subset("v1")));
    assert_eq!(cluster_for(&s, "/", &[("x-user", "")]), Some(subset("v2")));
    assert_eq!(
        cluster_for(&s, "/", &[("x-user", "jason")]),
        Some(subset("v2"))
    );
}

/// A match block naming `gateways` is kept for a sidecar when one is `mesh`, and then its
/// sourceLabels / sourceNamespace are not consulted (pilot/pkg/networking/core/route/route.go
/// sourceMatchHTTP); without gateways, sourceLabels must match the caller's labels.
#[test]
fn match_gateways_and_source_labels() {
    let base = with_reviews(&dr("reviews", "", SUBSETS));
    let s = load(&format!(
        "{base}{}",
        vs(
            "reviews",
            "",
            "  hosts: [reviews]\n  gateways: [mesh, istio-system/ingress]\n  http:\n  - match: [{gateways: [mesh], sourceLabels: {app: ratings}}]\n    route: [{destination: {host: reviews, subset: v1}}]\n  - match: [{sourceLabels: {app: ratings}}]\n    route: [{destination: {host: reviews, subset: v3}}]\n  - match: [{gateways: [istio-system/ingress]}]\n    route: [{destination: {host: reviews, subset: v3}}]\n  - route: [{destination: {host: reviews, subset: v2}}]\n",
        )
    ));
    let r = routes(&s, 9080, "reviews");
    let got: Vec<_> = r.iter().map(|r| weights(r)[0].0.clone()).collect();
    assert_eq!(got, [subset("v1"), subset("v2")]);
    // For a ratings workload, the sourceLabels block applies too.
    let ratings = ctx_for(Workload::new("default", "ratings").labels([("app", "ratings")]));
    let s = istio::load_str("test.yaml", &format!(
        "{base}{}",
        vs(
            "reviews",
            "",
            "  hosts: [reviews]\n  http:\n  - match: [{sourceLabels: {app: ratings}}]\n    route: [{destination: {host: reviews, subset: v3}}]\n  - route: [{destination: {host: reviews, subset: v2}}]\n",
        )
    ), &ratings).expect("load");
    assert_eq!(routes(&s, 9080, "reviews").len(), 2);
}

/// Delegate VirtualServices (pilot/pkg/model/virtualservice_controller.go mergeVirtualServices,
/// virtualservice.go MergeHTTPRoutes / mergeHTTPMatchRequests / hasConflict): the root's entry is
/// replaced by the delegate's routes, matches merged (a delegate block outside the root's prefix
/// is dropped), unset fields inherited, short hosts resolved in the delegate's namespace; a
/// delegate must be exported to the root's namespace.
#[test]
fn delegate_virtual_services_merge_into_their_root() {
    let root = vs(
        "root",
        "",
        "  hosts: [reviews]\n  http:\n  - name: api\n    match: [{uri: {prefix: /api}}]\n    timeout: 3s\n    delegate: {name: api-routes, namespace: team}\n  - route: [{destination: {host: reviews, subset: v1}}]\n",
    );
    let delegate = |export: &str| {
        vs(
            "api-routes",
            ", namespace: team",
            &format!(
                "  exportTo: {export}\n  http:\n  - name: v2\n    match: [{{uri: {{prefix: /api/v2}}}}]\n    route: [{{destination: {{host: {REVIEWS}, subset: v2}}}}]\n  - name: other\n    match: [{{uri: {{prefix: /other}}}}]\n    route: [{{destination: {{host: {REVIEWS}, subset: v3}}}}]\n  - name: rest\n    route: [{{destination: {{host: {REVIEWS}, subset: v3}}}}]\n"
            ),
        )
    };
    let base = with_reviews(&dr("reviews", "", SUBSETS));
    let s = load(&format!("{base}{root}{}", delegate("['*']")));
    let r = routes(&s, 9080, "reviews");
    // v2 (merged), rest (inherits the root's /api match), then the root's catch-all; `other`
    // conflicts with /api and is dropped.
    let got: Vec<_> = r.iter().map(|r| weights(r)[0].0.clone()).collect();
    assert_eq!(got, [subset("v2"), subset("v3"), subset("v1")]);
    assert_eq!(r[0].timeout, Some(std::time::Duration::from_secs(3)));
    assert_eq!(cluster_for(&s, "/api/v2/x", &[]), Some(subset("v2")));
    assert_eq!(cluster_for(&s, "/api/v1", &[]), Some(subset("v3")));
    assert_eq!(cluster_for(&s, "/other", &[]), Some(subset("v1")));
    match &r[0].origin {
        RouteOrigin::VirtualService {
            name, route_name, ..
        } => {
            assert_eq!(name, "default/root");
            assert_eq!(route_name.as_deref(), Some("api-v2"));
        }
        other => panic!("{other:?}"),
    }
    // Not exported to the root's namespace: the delegating entry is skipped.
    let s = load(&format!("{base}{root}{}", delegate("['.']")));
    let got: Vec<_> = routes(&s, 9080, "reviews")
        .iter()
        .map(|r| weights(r)[0].0.clone())
        .collect();
    assert_eq!(got, [subset("v1")]);
    assert!(
        warnings(&s).iter().any(|w| w.ends_with(
            "spec.http[0].delegate: delegate virtual service team/api-routes is not exported to default; entry skipped"
        )),
        "{:?}",
        warnings(&s)
    );
    // A root entry delegating may not also route (validateHTTPRouteConflict); a delegate may
    // not delegate again.
    let bad = format!(
        "{base}{}{}",
        vs(
            "root",
            "",
            "  hosts: [reviews]\n  http:\n  - name: api\n    delegate: {name: api-routes, namespace: team}\n    route: [{destination: {host: reviews}}]\n",
        ),
        vs(
            "api-routes",
            ", namespace: team",
            "  http:\n  - delegate: {name: x}\n",
        )
    );
    assert_eq!(
        errors(&bad),
        [
            "test.yaml: doc 2 VirtualService default/root: spec.http[0].route: root HTTP route api must not specify route",
            "test.yaml: doc 3 VirtualService team/api-routes: spec.http[0].delegate: delegate HTTP route cannot contain delegate",
        ]
    );
    // A delegate may not name gateways (ValidateVirtualService).
    let bad = format!(
        "{base}{}",
        vs(
            "d",
            "",
            "  gateways: [mesh]\n  http: [{route: [{destination: {host: reviews}}]}]\n"
        )
    );
    assert_eq!(
        errors(&bad),
        [
            "test.yaml: doc 2 VirtualService default/d: spec.gateways: delegate virtual service must have no gateways specified"
        ]
    );
}
