//! Every error class, with the exact file, document, resource and field it names; warnings for
//! what is read but not implemented; skipped kinds; lists; duplicates.

use mesh_core::config::Severity;
use mesh_core::istio;

use super::*;

const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
";

fn vs(http: &str) -> String {
    with_reviews(&format!("{VS}{http}"))
}

const DR: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
";

fn dr(rest: &str) -> String {
    with_reviews(&format!("{DR}{rest}"))
}

fn se(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext}}
spec:
{spec}"
    )
}

const VS_DOC: &str = "test.yaml: doc 1 VirtualService default/reviews";
const DR_DOC: &str = "test.yaml: doc 1 DestinationRule default/reviews";
const SE_DOC: &str = "test.yaml: doc 0 ServiceEntry default/ext";

#[test]
fn every_error_names_file_document_resource_and_field() {
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "malformed YAML",
            "apiVersion: v1\nkind: [\n".into(),
            vec!["test.yaml: doc 0: malformed YAML at line 2, column 7: unclosed bracket '['".into()],
        ),
        (
            "wrong type",
            vs("  - route: [{destination: {host: reviews}, weight: ninety}]\n"),
            vec![format!(r#"{VS_DOC}: spec.http[0].route[0].weight: invalid type: string "ninety", expected i64"#)],
        ),
        (
            "unknown enum value",
            dr("  trafficPolicy: {loadBalancer: {simple: FASTEST}}\n"),
            vec![format!("{DR_DOC}: spec.trafficPolicy.loadBalancer.simple: unknown variant `FASTEST`, expected one of `UNSPECIFIED`, `LEAST_CONN`, `RANDOM`, `PASSTHROUGH`, `ROUND_ROBIN`, `LEAST_REQUEST`")],
        ),
        (
            "unknown field",
            vs("  - route: [{destination: {host: reviews}}]\n    timeuot: 1s\n"),
            vec![format!("{VS_DOC}: spec.http[0].timeuot: unknown field")],
        ),
        (
            // No hosts is a delegate (valid in Istio), but it still needs routes.
            "missing hosts and routes",
            with_reviews("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {}\n"),
            vec![format!("{VS_DOC}: spec.http: at least one of http, tcp, tls is required")],
        ),
        (
            "missing host",
            with_reviews("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {}\n"),
            vec![format!("{DR_DOC}: spec.host: host is required")],
        ),
        (
            "missing destination host",
            vs("  - route: [{destination: {subset: v1}}]\n"),
            vec![format!("{VS_DOC}: spec.http[0].route[0].destination.host: host is required")],
        ),
        (
            "invalid duration",
            vs("  - route: [{destination: {host: reviews}}]\n    timeout: '10'\n"),
            vec![format!(r#"{VS_DOC}: spec.http[0].timeout: invalid duration "10": missing unit (e.g. "s" or "ms")"#)],
        ),
        (
            "invalid regex",
            vs("  - match: [{uri: {regex: '/api/(v1'}}]\n    route: [{destination: {host: reviews}}]\n"),
            vec![format!("{VS_DOC}: spec.http[0].match[0].uri.regex: invalid regex: error: unclosed group")],
        ),
        (
            "dangling subset",
            dr("  subsets: [{name: v1, labels: {version: v1}}]\n---\n")
                + &format!("{VS}  - route: [{{destination: {{host: reviews, subset: v9}}}}]\n"),
            vec![format!(
                r#"test.yaml: doc 2 VirtualService default/reviews: spec.http[0].route[0].destination.subset: IST0101 ReferencedResourceNotFound: subset "v9" is not defined by DestinationRule default/reviews (test.yaml: doc 1) for host {REVIEWS}"#
            )],
        ),
        (
            // pkg/config/validation validateWeight.
            "a negative weight",
            vs("  - route:\n    - {destination: {host: reviews}, weight: 90}\n    - {destination: {host: reviews}, weight: -5}\n"),
            vec![format!("{VS_DOC}: spec.http[0].route[1].weight: weight -5 < 0")],
        ),
        (
            // pkg/config/validation validateHTTPRouteDestinations.
            "several destinations without weights",
            vs("  - route:\n    - {destination: {host: reviews}}\n    - {destination: {host: reviews}}\n"),
            vec![format!("{VS_DOC}: spec.http[0].route: total destination weight = 0")],
        ),
        (
            "percentage out of range",
            vs("  - route: [{destination: {host: reviews}}]\n    fault: {abort: {httpStatus: 503, percentage: {value: 120}}}\n"),
            vec![format!("{VS_DOC}: spec.http[0].fault.abort.percentage.value: percentage 120 is outside 0..100")],
        ),
        (
            "legacy percent out of range",
            vs("  - route: [{destination: {host: reviews}}]\n    fault: {delay: {fixedDelay: 1s, percent: -1}}\n"),
            vec![format!("{VS_DOC}: spec.http[0].fault.delay.percent: percentage -1 is outside 0..100")],
        ),
        (
            "unknown gRPC status",
            vs("  - route: [{destination: {host: reviews}}]\n    fault: {abort: {grpcStatus: NOPE}}\n"),
            vec![format!(r#"{VS_DOC}: spec.http[0].fault.abort.grpcStatus: unknown gRPC status "NOPE""#)],
        ),
        (
            "unknown retry condition",
            vs("  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 2, retryOn: '5xx,sometimes'}\n"),
            vec![format!(r#"{VS_DOC}: spec.http[0].retries.retryOn: unknown retry condition "sometimes""#)],
        ),
        (
            "no action",
            vs("  - timeout: 1s\n"),
            vec![format!("{VS_DOC}: spec.http[0]: one of route, redirect, directResponse is required")],
        ),
        (
            "host * for the mesh",
            with_reviews("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: ['*']\n  http: [{route: [{destination: {host: reviews}}]}]\n"),
            vec![format!("{VS_DOC}: spec.hosts[0]: host * is only allowed for gateways, not the mesh")],
        ),
        (
            "route and redirect",
            vs("  - route: [{destination: {host: reviews}}]\n    redirect: {uri: /x}\n"),
            vec![format!("{VS_DOC}: spec.http[0]: route, redirect and directResponse are mutually exclusive")],
        ),
        (
            "two hash keys",
            dr("  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: a, useSourceIp: true}}}\n"),
            vec![format!("{DR_DOC}: spec.trafficPolicy.loadBalancer.consistentHash: exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required")],
        ),
        (
            "MUTUAL without a key",
            dr("  trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c.pem}}\n"),
            vec![format!("{DR_DOC}: spec.trafficPolicy.tls.privateKey: required with mode MUTUAL")],
        ),
        (
            "port-level settings twice for a port",
            dr("  trafficPolicy:\n    portLevelSettings: [{port: {number: 9080}}, {port: {number: 9080}}]\n"),
            vec![format!("{DR_DOC}: spec.trafficPolicy.portLevelSettings[1].port: port 9080 has more than one portLevelSettings entry")],
        ),
        (
            "a subset defined twice",
            dr("  subsets: [{name: v1}, {name: v1}]\n"),
            vec![format!(r#"{DR_DOC}: spec.subsets[1].name: subset "v1" is defined twice"#)],
        ),
        (
            "locality weights",
            dr("  trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {a/*: 70, b/*: 20}}]}}}\n"),
            vec![format!("{DR_DOC}: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: weights sum to 90, expected 100")],
        ),
        (
            "endpoints with resolution NONE",
            se("  hosts: [api.example.com]\n  ports: [{number: 80, name: http}]\n  endpoints: [{address: 10.0.0.1}]\n"),
            vec![format!("{SE_DOC}: spec.endpoints: endpoints are not allowed with resolution NONE")],
        ),
        (
            "bad header operations",
            vs("  - route: [{destination: {host: reviews}}]\n    headers: {request: {set: {x-a: \"1\\n2\"}, remove: [':path']}}\n"),
            vec![
                format!(r#"{VS_DOC}: spec.http[0].headers.request.set.x-a: invalid header value "1\n2""#),
                format!(r#"{VS_DOC}: spec.http[0].headers.request.remove[0]: invalid header name ":path""#),
            ],
        ),
        (
            "bad port",
            se("  hosts: [api.example.com]\n  ports: [{number: 70000, name: http}]\n"),
            vec![format!("{SE_DOC}: spec.ports[0].number: port 70000 is out of range 1..65535")],
        ),
        (
            "bad endpoint address",
            se("  hosts: [api.example.com]\n  resolution: STATIC\n  ports: [{number: 80, name: http}]\n  endpoints: [{address: 10.0.0.300}]\n"),
            vec![format!(r#"{SE_DOC}: spec.endpoints[0].address: "10.0.0.300" is not an IP address (host names need resolution DNS)"#)],
        ),
        (
            "bad service address",
            se("  hosts: [api.example.com]\n  addresses: [10.0.0.0/40]\n  ports: [{number: 80, name: http}]\n"),
            vec![format!(r#"{SE_DOC}: spec.addresses[0]: "10.0.0.0/40" is not an IP address or CIDR block"#)],
        ),
        (
            "unknown protocol",
            se("  hosts: [api.example.com]\n  ports: [{number: 80, name: web, protocol: GOPHER}]\n"),
            vec![format!(r#"{SE_DOC}: spec.ports[0].protocol: unknown protocol "GOPHER""#)],
        ),
        (
            "bad CIDR in a policy",
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules: [{from: [{source: {ipBlocks: [300.1.1.1/8]}}]}]\n".into(),
            vec![r#"test.yaml: doc 0 AuthorizationPolicy default/p: spec.rules[0].from[0].source.ipBlocks[0]: "300.1.1.1/8" is not an IP address or CIDR block"#.into()],
        ),
        (
            "bad port in a policy",
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules: [{to: [{operation: {ports: [http]}}]}]\n".into(),
            vec![r#"test.yaml: doc 0 AuthorizationPolicy default/p: spec.rules[0].to[0].operation.ports[0]: "http" is not a port number 1..65535"#.into()],
        ),
        (
            "CUSTOM authorization",
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext, namespace: other}\nspec:\n  action: CUSTOM\n  provider: {name: opa}\n".into(),
            vec!["test.yaml: doc 0 AuthorizationPolicy other/ext: spec.action: CUSTOM authorization (ext_authz) is not supported; the policy is enforced as a DENY of its rules rather than allowing what the provider could deny".into()],
        ),
        (
            "portLevelMtls without a selector",
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: pa}\nspec:\n  portLevelMtls: {'8080': {mode: DISABLE}}\n".into(),
            vec!["test.yaml: doc 0 PeerAuthentication default/pa: spec.portLevelMtls: portLevelMtls requires a workload selector".into()],
        ),
        (
            "missing name",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {namespace: x}\nspec: {hosts: [a]}\n".into(),
            vec!["test.yaml: doc 0 VirtualService x/: metadata.name: required".into()],
        ),
        (
            "duplicate resources",
            dr("---\n") + DR,
            vec![format!("test.yaml: doc 2 DestinationRule default/reviews: metadata.name: defined twice: first at test.yaml: doc 1")],
        ),
    ];
    for (name, yaml, want) in cases {
        assert_eq!(errors(&yaml), want, "{name}");
    }
}

#[test]
fn all_errors_of_all_documents_are_reported() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec: {hosts: [a], http: [{route: [{destination: {host: a}}], timeout: x}]}
---
: : bad
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b}
spec: {host: b, trafic: {}}
";
    let e = mesh_core::istio::load_str("all.yaml", yaml, &ctx()).unwrap_err();
    let where_: Vec<_> = e.errors().map(|d| (d.document, d.field.clone())).collect();
    assert_eq!(
        where_,
        [
            (Some(0), "spec.http[0].timeout".into()),
            (Some(1), String::new()),
            (Some(2), "spec.trafic".into()),
        ]
    );
    assert!(
        e.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning),
        "warnings kept too"
    );
    assert!(
        e.to_string()
            .starts_with("config refused with 3 errors\n  all.yaml: doc 0 VirtualService default/a: spec.http[0].timeout")
    );
}

#[test]
fn warnings_for_what_is_read_but_not_implemented() {
    let cases = [
        (
            vs(
                "  - route: [{destination: {host: reviews}}]\n    corsPolicy: {allowOrigins: [{exact: x}]}\n",
            ),
            vec![format!(
                "{VS_DOC}: spec.http[0].corsPolicy: not implemented; ignored"
            )],
        ),
        (
            with_reviews(&format!(
                "{VS}  - route: [{{destination: {{host: reviews}}}}]\n    retries: {{attempts: 1, retryRemoteLocalities: true}}\n  tcp: []\n  exportTo: ['.']\n"
            )),
            vec![
                format!("{VS_DOC}: spec.tcp: not implemented; ignored"),
                format!(
                    "{VS_DOC}: spec.http[0].retries.retryRemoteLocalities: not implemented; ignored"
                ),
            ],
        ),
        (
            dr(
                "  exportTo: ['*']\n  trafficPolicy:\n    tunnel: {protocol: CONNECT, targetHost: x, targetPort: 1}\n    connectionPool: {http: {maxConcurrentStreams: 10}}\n",
            ),
            vec![
                format!("{DR_DOC}: spec.trafficPolicy.tunnel: not implemented; ignored"),
                format!(
                    "{DR_DOC}: spec.trafficPolicy.connectionPool.http.maxConcurrentStreams: not implemented; ignored"
                ),
            ],
        ),
        (
            vs("  - route: [{destination: {host: reviews, subset: v1}}]\n"),
            vec![format!(
                r#"{VS_DOC}: spec.http[0].route[0].destination.subset: IST0101 ReferencedResourceNotFound: no DestinationRule defines subsets for {REVIEWS}; subset "v1" has no cluster"#
            )],
        ),
        (
            se(
                "  hosts: [api.example.com]\n  addresses: [240.0.0.1]\n  ports: [{number: 80, name: http}]\n",
            ),
            vec![format!(
                "{SE_DOC}: spec.addresses: not used: mesh routes by host name (authority), not by destination address"
            )],
        ),
    ];
    for (yaml, want) in cases {
        let s = load(&yaml);
        assert_eq!(warnings(&s), want);
    }
}

#[test]
fn other_kinds_are_skipped_and_lists_are_read() {
    let s = load(
        "# leading comment only
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: reviews}
- apiVersion: networking.istio.io/v1alpha3
  kind: ServiceEntry
  metadata: {name: api, namespace: ext}
  spec:
    hosts: [api.example.com]
    resolution: DNS
    ports: [{number: 443, name: tls, protocol: TLS}]
- apiVersion: networking.istio.io/v1beta1
  kind: Gateway
  metadata: {name: gw}
  spec: {}
---
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: default, namespace: istio-system}
",
    );
    assert!(
        s.cluster(&mesh_core::model::ClusterName::outbound(
            "api.example.com",
            443,
            None
        ))
        .is_some()
    );
    assert_eq!(
        warnings(&s),
        [
            "test.yaml: doc 1 Deployment default/reviews: items[0]: apps/v1 Deployment is not read by mesh; skipped",
            "test.yaml: doc 1 Gateway default/gw: items[2]: networking.istio.io/v1beta1 Gateway is not read by mesh; skipped",
            "test.yaml: doc 3 EnvoyFilter istio-system/default: networking.istio.io/v1alpha3 EnvoyFilter is not read by mesh; skipped",
        ]
    );
    // Errors inside list items carry the item path.
    let e = errors(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: x}\n  spec: {host: x, subset: []}\n",
    );
    assert_eq!(
        e,
        ["test.yaml: doc 0 DestinationRule default/x: items[0].spec.subset: unknown field"]
    );
}

#[test]
fn versions_are_content_hashes() {
    let a = load(&with_reviews(""));
    let b = load(&with_reviews(""));
    let c = load(&with_reviews("# changed\n"));
    assert_eq!(a.version, b.version);
    assert_ne!(a.version, c.version);
    assert_eq!(a.version.len(), 16);
    assert!(a.version.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn top_level_typos_and_missing_headers() {
    let e = errors(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nsepc: {hosts: [a]}\n---\nkind: VirtualService\n",
    );
    assert_eq!(
        e,
        [
            "test.yaml: doc 0 VirtualService default/x: sepc: unknown field",
            "test.yaml: doc 0 VirtualService default/x: spec.http: at least one of http, tcp, tls is required",
            "test.yaml: doc 1: apiVersion: required",
        ]
    );
}

#[test]
fn conflicts_that_istio_resolves_are_warnings() {
    let s = load(&with_reviews(&format!(
        "{VS}  - route: [{{destination: {{host: reviews}}}}]
    timeout: 1s
---
{}---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews-again}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{{number: 9080, name: http}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: nothing}}
spec:
  host: nothing.example.com
",
        VS.replace("name: reviews}", "name: reviews-2}")
            + "  - route: [{destination: {host: reviews}}]\n    timeout: 2s\n"
    )));
    assert_eq!(
        routes(&s, 9080, "reviews")[0].timeout,
        Some(std::time::Duration::from_secs(1))
    );
    // The analyzer's IST0109 for the two VirtualServices is tested in `analyze.rs`.
    let ours: Vec<String> = warnings(&s)
        .into_iter()
        .filter(|w| !w.contains("IST0109"))
        .collect();
    assert_eq!(
        ours,
        [
            format!("test.yaml: doc 2 VirtualService default/reviews-2: spec.hosts[0]: {REVIEWS} is already routed by VirtualService default/reviews (test.yaml: doc 1); this VirtualService is ignored for it"),
            format!("test.yaml: doc 3 ServiceEntry default/reviews-again: spec.hosts[0]: {REVIEWS} is already declared by ServiceEntry default/reviews (test.yaml: doc 0); this declaration is ignored"),
            "test.yaml: doc 4 DestinationRule default/nothing: spec.host: no Service or ServiceEntry declares a host matching nothing.example.com; the rule is not applied".into(),
        ]
    );
}

#[test]
fn collect_files_walks_directories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("b/nested")).unwrap();
    std::fs::create_dir_all(root.join(".hidden")).unwrap();
    for f in [
        "a.yaml",
        "b/nested/c.yml",
        "b/readme.md",
        ".hidden/x.yaml",
        "b/.y.yaml",
    ] {
        std::fs::write(root.join(f), "").unwrap();
    }
    let explicit = root.join("b/readme.md");
    let files = istio::collect_files(&[root, explicit.as_path()]).unwrap();
    assert_eq!(
        files,
        [root.join("a.yaml"), root.join("b/nested/c.yml"), explicit]
    );
    let e = istio::collect_files(&[root.join("missing")]).unwrap_err();
    assert!(e.to_string().contains("missing: cannot read"), "{e}");
}
