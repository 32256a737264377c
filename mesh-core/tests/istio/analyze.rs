//! Checks like `istioctl analyze`'s, reported as warnings with Istio's message codes.

use mesh_core::config::Diagnostic;

use super::*;

fn coded<'a>(s: &'a mesh_core::model::Snapshot, code: &str) -> Vec<&'a Diagnostic> {
    s.warnings
        .iter()
        .filter(|w| w.message.starts_with(code))
        .collect()
}

const REVIEWS: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}, {name: grpc, port: 9090}]}
";

/// `pkg/config/validation/validation.go` `analyzeUnreachableHTTPRules`: a match equal (name
/// aside) to an earlier rule's is ineffective, a rule whose every match is is unreachable, and
/// so is every rule after a rule without matches.
#[test]
fn unreachable_rules_and_ineffective_matches() {
    let yaml = format!(
        "{REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - match: [{{uri: {{prefix: /a}}, headers: {{x: {{exact: '1'}}}}}}]
    route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]
  - name: again
    match: [{{name: same, headers: {{x: {{exact: '1'}}}}, uri: {{prefix: /a}}}}]
    route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]
  - route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]
  - match: [{{uri: {{prefix: /b}}}}]
    route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]
"
    );
    let s = load(&yaml);
    let found: Vec<String> = coded(&s, "IST013")
        .iter()
        .map(|d| format!("{}: {}", d.field, d.message))
        .collect();
    assert_eq!(
        found,
        [
            r#"spec.http[1].match[0]: IST0131 VirtualServiceIneffectiveMatch: VirtualService rule "again" match "same" is not used (duplicate/overlapping match in rule #0)"#,
            r#"spec.http[1]: IST0130 VirtualServiceUnreachableRule: VirtualService rule "again" not used (all matches used by prior rules)"#,
            "spec.http[3].match[0]: IST0130 VirtualServiceUnreachableRule: VirtualService rule #3 not used (route without matches defined before)",
        ]
    );
}

/// `validation.go` `analyzeUnreachableHTTPRules`, prefix overlap (`genMatchHTTPRoutes`,
/// `coveredValidation`): a later URI prefix extending an earlier one, on the same port,
/// method (absent counts as GET), authority, headers, query parameters and withoutHeaders, is
/// ineffective; a different method, port or header set keeps it reachable.
#[test]
fn a_match_under_an_earlier_prefix_is_ineffective() {
    let rule = |m: &str| {
        format!(
            "  - match: [{m}]\n    route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]\n"
        )
    };
    let yaml = format!(
        "{REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
{}{}{}{}{}{}",
        rule("{uri: {prefix: /debug}}"),
        rule("{uri: {prefix: /debugs}, method: {exact: GET}}"),
        rule("{uri: {prefix: /debugz}, method: {exact: POST}}"),
        rule("{uri: {prefix: /debug/x}, headers: {x: {exact: '1'}}}"),
        rule("{uri: {prefix: /debug/y}, port: 9080}"),
        rule("{uri: {exact: /debug/z}}"),
    );
    let s = load(&yaml);
    let found: Vec<String> = coded(&s, "IST013")
        .iter()
        .map(|d| format!("{}: {}", d.field, d.message))
        .collect();
    assert_eq!(
        found,
        [
            "spec.http[1].match[0]: IST0131 VirtualServiceIneffectiveMatch: VirtualService rule #1 match #0 of prefix /debugs is not used (duplicate/overlapping match in rule #0 of prefix /debug on #0)"
        ]
    );
}

/// `destinationhosts.go` `checkServiceEntryPorts`: a destination without a port on a service
/// with several ports needs one.
#[test]
fn a_destination_on_a_multi_port_service_needs_a_port() {
    let yaml = format!(
        "{REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews}}}}]
    mirror: {{host: reviews, port: {{number: 9090}}}}
"
    );
    let s = load(&yaml);
    let found = coded(&s, "IST0112");
    assert_eq!(found.len(), 1, "{:?}", s.warnings);
    assert_eq!(found[0].field, "spec.http[0].route[0].destination");
    assert_eq!(
        found[0].message,
        "IST0112 VirtualServiceDestinationPortSelectorRequired: this VirtualService routes to a \
         service \"reviews\" that exposes multiple ports [9080 9090]. Specifying a port in the \
         destination is required to disambiguate."
    );
}

/// `conflictingmeshgatewayhosts.go`: two mesh VirtualServices for one host conflict when their
/// exportTo scopes meet (a namespace scope meets `*`); private ones in different namespaces
/// do not.
#[test]
fn conflicting_hosts_take_export_to_into_account() {
    let vs = |ns: &str, name: &str, export: &str| {
        format!(
            "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  exportTo: {export}
  http: [{{route: [{{destination: {{host: reviews.default.svc.cluster.local}}}}]}}]
"
        )
    };
    let private = format!("{}{}", vs("a", "one", "['.']"), vs("b", "two", "['.']"));
    let s = load(&private);
    assert!(coded(&s, "IST0109").is_empty(), "{:?}", s.warnings);
    let meeting = format!("{}{}", vs("a", "one", "['.']"), vs("b", "two", "['*']"));
    let s = load(&meeting);
    let found = coded(&s, "IST0109");
    assert_eq!(found.len(), 2, "{:?}", s.warnings);
    assert_eq!(found[0].field, "metadata.name");
    assert!(
        found[0].message.contains("the VirtualServices a/one,b/two associated with mesh gateway define the same host a/reviews.default.svc.cluster.local"),
        "{}",
        found[0].message
    );
}

/// IST0101: a destination host no Service or ServiceEntry declares.
#[test]
fn a_missing_destination_host_is_referenced_resource_not_found() {
    let s = load(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: x}
spec:
  hosts: [x.example.com]
  http: [{route: [{destination: {host: nowhere}}]}]
",
    );
    let found = coded(&s, "IST0101");
    assert_eq!(found.len(), 1, "{:?}", s.warnings);
    assert_eq!(found[0].field, "spec.http[0].route[0].destination.host");
}
