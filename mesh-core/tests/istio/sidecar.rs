//! Sidecar: the ingress listeners of the Sidecar that applies to the workload, validated as
//! istiod validates them (pkg/config/validation `ValidateSidecar`), chosen as istiod chooses
//! (pilot/pkg/model/push_context.go `doGetSidecarScope`).

use mesh_core::model::{CaptureMode, DefaultEndpoint, IngressListener, Protocol};

use super::{ctx, errors, load, load_with, warnings};

fn sidecar(name: &str, namespace: &str, extra: &str, ingress: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {namespace}{extra}}}\nspec:\n{ingress}---\n"
    )
}

fn ingress_on(port: u16) -> String {
    format!(
        "  ingress:\n  - {{port: {{number: {port}, protocol: HTTP, name: http}}, defaultEndpoint: '127.0.0.1:8080', captureMode: NONE}}\n"
    )
}

fn ports(l: &[IngressListener]) -> Vec<u16> {
    l.iter().map(|l| l.port).collect()
}

#[test]
fn ingress_listeners_are_read_into_the_inbound_policy() {
    let yaml = sidecar(
        "vm",
        "default",
        "",
        "  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    bind: 10.0.0.5
    defaultEndpoint: 127.0.0.1:8080
    captureMode: NONE
  - port: {number: 9000, protocol: GRPC, name: grpc}
    defaultEndpoint: '0.0.0.0:7000'
  - port: {number: 9443, protocol: HTTP2}
    defaultEndpoint: unix:///var/run/app.sock
    captureMode: IPTABLES
",
    );
    let s = load(&yaml);
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
    let l = &s.inbound.ingress;
    assert_eq!(ports(l), [9000, 9080, 9443], "in port order");
    assert_eq!(
        l[1],
        IngressListener {
            port: 9080,
            protocol: Protocol::Http,
            name: "http".into(),
            bind: Some("10.0.0.5".parse().unwrap()),
            capture_mode: CaptureMode::None,
            default_endpoint: DefaultEndpoint::Loopback {
                ipv6: false,
                port: 8080
            },
            sidecar: "default/vm".into(),
        }
    );
    assert_eq!(
        l[0].default_endpoint,
        DefaultEndpoint::InstanceIp {
            ipv6: false,
            port: 7000
        }
    );
    assert_eq!((l[0].bind, l[0].capture_mode), (None, CaptureMode::Default));
    assert_eq!(
        l[2].default_endpoint,
        DefaultEndpoint::Unix("/var/run/app.sock".into())
    );
    assert_eq!(l[2].capture_mode, CaptureMode::Iptables);
}

/// `doGetSidecarScope`: a selector Sidecar matching the workload beats the namespace-wide one,
/// which beats the root namespace's; one whose selector does not match, or another
/// namespace's, never applies.
#[test]
fn the_sidecar_that_applies_is_istiods() {
    let selected = sidecar(
        "selected",
        "default",
        "",
        &format!(
            "  workloadSelector: {{labels: {{app: productpage}}}}\n{}",
            ingress_on(1001)
        ),
    );
    let other_app = sidecar(
        "other-app",
        "default",
        "",
        &format!(
            "  workloadSelector: {{labels: {{app: reviews}}}}\n{}",
            ingress_on(1002)
        ),
    );
    let namespace = sidecar("ns", "default", "", &ingress_on(1003));
    let root = sidecar("root", "istio-system", "", &ingress_on(1004));
    let elsewhere = sidecar("elsewhere", "shop", "", &ingress_on(1005));

    let all = format!("{selected}{other_app}{namespace}{root}{elsewhere}");
    assert_eq!(ports(&load(&all).inbound.ingress), [1001]);
    let no_match = format!("{other_app}{namespace}{root}{elsewhere}");
    assert_eq!(ports(&load(&no_match).inbound.ingress), [1003]);
    let root_only = format!("{other_app}{root}{elsewhere}");
    assert_eq!(ports(&load(&root_only).inbound.ingress), [1004]);
    assert!(load(&other_app).inbound.ingress.is_empty());
}

/// Two Sidecars at one level: the oldest applies, the other is reported.
#[test]
fn the_oldest_sidecar_at_a_level_wins() {
    let young = sidecar(
        "a-young",
        "default",
        ", creationTimestamp: '2025-02-01T00:00:00Z'",
        &ingress_on(2001),
    );
    let old = sidecar(
        "b-old",
        "default",
        ", creationTimestamp: '2024-02-01T00:00:00Z'",
        &ingress_on(2002),
    );
    let s = load(&format!("{young}{old}"));
    assert_eq!(ports(&s.inbound.ingress), [2002]);
    assert_eq!(
        warnings(&s),
        [
            "test.yaml: doc 0 Sidecar default/a-young: Sidecar default/b-old also applies to this workload and is older (or first by name); this Sidecar is ignored"
        ]
    );
}

/// istiod's `ValidateSidecar` errors, each naming the field.
#[test]
fn invalid_sidecars_are_refused_with_the_field() {
    let cases: &[(&str, &str)] = &[
        ("  {}\n", "spec: empty configuration provided"),
        (
            "  ingress: [{defaultEndpoint: '127.0.0.1:1'}]\n",
            "spec.ingress[0].port: port is required for ingress listeners",
        ),
        (
            "  ingress: [{port: {number: 70000}, defaultEndpoint: '127.0.0.1:1'}]\n",
            "spec.ingress[0].port.number: port number must be in the range 1..65535",
        ),
        (
            "  ingress: [{port: {number: 80, targetPort: 8080}, defaultEndpoint: '127.0.0.1:1'}]\n",
            "spec.ingress[0].port.targetPort: targetPort has no impact on Sidecars",
        ),
        (
            "  ingress: [{port: {number: 80, protocol: QUIC}, defaultEndpoint: '127.0.0.1:1'}]\n",
            "spec.ingress[0].port.protocol: unsupported protocol: QUIC",
        ),
        (
            "  ingress: [{port: {number: 80, name: Web_Port}, defaultEndpoint: '127.0.0.1:1'}]\n",
            "spec.ingress[0].port.name: invalid port name: Web_Port",
        ),
        (
            "  ingress: [{port: {number: 80}, bind: app.local, defaultEndpoint: '127.0.0.1:1'}]\n",
            "spec.ingress[0].bind: \"app.local\" is not a valid IP address",
        ),
        (
            "  ingress: [{port: {number: 80}, defaultEndpoint: '10.0.0.1:8080'}]\n",
            "spec.ingress[0].defaultEndpoint: defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port>, unix://filepath or unset",
        ),
        (
            "  ingress: [{port: {number: 80}, defaultEndpoint: '127.0.0.1:http'}]\n",
            "spec.ingress[0].defaultEndpoint: defaultEndpoint port (http) is not a port number 1..65535",
        ),
        (
            "  ingress: [{port: {number: 80}, defaultEndpoint: 'unix://relative'}]\n",
            "spec.ingress[0].defaultEndpoint: \"relative\" is not an absolute path",
        ),
        (
            "  ingress:\n  - {port: {number: 80}, defaultEndpoint: '127.0.0.1:1'}\n  - {port: {number: 80}, defaultEndpoint: '127.0.0.1:2'}\n",
            "spec.ingress[1].port.number: ports on IP bound listeners must be unique",
        ),
        (
            "  ingress: [{port: {number: 80}, defaultEndpoint: '127.0.0.1:1', captureMode: SOMETIMES}]\n",
            "spec.ingress[0].captureMode",
        ),
        (
            "  ingress: [{port: {number: 80}, defaultEndpoint: '127.0.0.1:1', bindd: 1.2.3.4}]\n",
            "spec.ingress[0].bindd: unknown field",
        ),
        (
            "  workloadSelector: {labels: {app: '*'}}\n  ingress: [{port: {number: 80}, defaultEndpoint: '127.0.0.1:1'}]\n",
            "spec.workloadSelector.labels: wildcard is not supported in selector: app=*",
        ),
    ];
    for (spec, expected) in cases {
        let e = errors(&sidecar("bad", "default", "", spec));
        assert_eq!(e.len(), 1, "{spec}: {e:?}");
        let prefix = "test.yaml: doc 0 Sidecar default/bad: ";
        assert!(
            e[0].starts_with(&format!("{prefix}{expected}")),
            "{spec}: {e:?}"
        );
    }
}

/// What mesh cannot do as asked is a warning, never silently dropped: ignored settings
/// (`egress`, `outboundTrafficPolicy`, connection pools), and listeners left out rather than
/// served differently (the application's own TLS, TCP ports, no `defaultEndpoint`).
#[test]
fn what_mesh_does_not_implement_is_reported() {
    let yaml = sidecar(
        "partial",
        "default",
        "",
        "  egress: [{hosts: ['./*']}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  inboundConnectionPool: {http: {http1MaxPendingRequests: 10}}
  ingress:
  - {port: {number: 1, protocol: HTTP}, defaultEndpoint: '127.0.0.1:8080', connectionPool: {tcp: {maxConnections: 1}}}
  - {port: {number: 2, protocol: HTTPS}, defaultEndpoint: '127.0.0.1:8443', tls: {mode: SIMPLE}}
  - {port: {number: 3, protocol: TCP}, defaultEndpoint: '127.0.0.1:9000'}
  - {port: {number: 4, protocol: HTTP}}
",
    );
    let s = load_with(&yaml, &ctx());
    assert_eq!(ports(&s.inbound.ingress), [1]);
    let fields: Vec<String> = s.warnings.iter().map(|w| w.field.clone()).collect();
    assert_eq!(
        fields,
        [
            "spec.egress",
            "spec.outboundTrafficPolicy",
            "spec.inboundConnectionPool",
            "spec.ingress[0].connectionPool",
            "spec.ingress[1].tls",
            "spec.ingress[2].port.protocol",
            "spec.ingress[3].defaultEndpoint",
        ]
    );
}
