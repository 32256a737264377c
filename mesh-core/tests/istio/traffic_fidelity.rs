//! Traffic-policy config Istio accepts, read as istiod reads it (issue #12): connection-pool
//! keep-alives, warmup, `credentialName`, WorkloadEntries on another network, unix sockets.

use std::time::Duration;

use base64::Engine;
use mesh_core::model::{
    Cluster, ClusterName, EndpointAddress, Http2Keepalive, SlowStart, TcpKeepalive, TlsMode,
};
use mesh_core::{BuildContext, MeshSettings, Workload, istio};

use super::*;

fn cluster<'a>(s: &'a Snapshot, name: &str) -> &'a Cluster {
    s.cluster(&ClusterName::new(name))
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn reviews(s: &Snapshot) -> &Cluster {
    cluster(s, &format!("outbound|9080||{REVIEWS}"))
}

fn rule(traffic_policy: &str) -> String {
    with_reviews(&format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy:
{traffic_policy}"
    ))
}

// ---- connectionPool keep-alives -------------------------------------------------------------

/// istiod's `setKeepAliveSettings` (pilot/pkg/networking/core/cluster.go): SO_KEEPALIVE with the
/// given probes, time and interval in whole seconds; and `http2KeepAlive` becomes Envoy's
/// `http2_protocol_options.connection_keepalive` (`applyConnectionPool`,
/// cluster_traffic_policy.go).
#[test]
fn tcp_and_http2_keepalives_are_read() {
    let s = load(&rule(
        "    connectionPool:
      tcp:
        tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}
      http:
        http2KeepAlive: {interval: 10s, timeout: 2s}",
    ));
    let c = reviews(&s);
    assert_eq!(
        c.connection_pool.tcp_keepalive,
        Some(TcpKeepalive {
            probes: Some(3),
            time: Some(Duration::from_secs(7200)),
            interval: Some(Duration::from_secs(75)),
        })
    );
    assert_eq!(
        c.connection_pool.http2_keepalive,
        Some(Http2Keepalive {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
        })
    );
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
    // An empty tcpKeepalive is SO_KEEPALIVE with the OS defaults.
    let s = load(&rule("    connectionPool: {tcp: {tcpKeepalive: {}}}"));
    assert_eq!(
        reviews(&s).connection_pool.tcp_keepalive,
        Some(TcpKeepalive::default())
    );
}

/// istiod's `validateConnectionPool` (pkg/config/validation/validation.go): http2KeepAlive needs
/// both an interval and a timeout, each at least 1ms.
#[test]
fn http2_keepalive_needs_interval_and_timeout() {
    let errs = errors(&rule(
        "    connectionPool: {http: {http2KeepAlive: {interval: 10s}}}",
    ));
    assert!(
        errs.iter().any(|e| e.contains(
            "spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout: http2 keepalive timeout is required"
        )),
        "{errs:?}"
    );
    let errs = errors(&rule(
        "    connectionPool: {http: {http2KeepAlive: {interval: 0s, timeout: 1s}}}",
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("interval: must be at least 1ms")),
        "{errs:?}"
    );
}

/// istiod's `applyConnectionPool` (cluster_traffic_policy.go): `tcp.maxConnectionDuration` is
/// the HTTP protocol options' max_connection_duration; `tcp.idleTimeout` is the idle timeout
/// when `http.idleTimeout` is unset, and `http.idleTimeout` wins. `validateConnectionPool`:
/// maxConnectionDuration at least 1ms; a tcp idleTimeout of 0s disables the timeout.
#[test]
fn tcp_max_connection_duration_and_idle_timeout_are_read() {
    let s = load(&rule(
        "    connectionPool: {tcp: {maxConnectionDuration: 30m, idleTimeout: 90s}}",
    ));
    let pool = &reviews(&s).connection_pool;
    assert_eq!(
        pool.max_connection_duration,
        Some(Duration::from_secs(1800))
    );
    assert_eq!(pool.idle_timeout, Some(Duration::from_secs(90)));
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
    let s = load(&rule(
        "    connectionPool: {tcp: {idleTimeout: 90s}, http: {idleTimeout: 5s}}",
    ));
    assert_eq!(
        reviews(&s).connection_pool.idle_timeout,
        Some(Duration::from_secs(5))
    );
    let s = load(&rule("    connectionPool: {tcp: {idleTimeout: 0s}}"));
    assert_eq!(reviews(&s).connection_pool.idle_timeout, None);
    // Unset, Envoy's 1 h idle timeout and no maximum duration.
    let s = load(&rule("    connectionPool: {tcp: {maxConnections: 5}}"));
    let pool = &reviews(&s).connection_pool;
    assert_eq!(pool.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(pool.max_connection_duration, None);
    let errs = errors(&rule(
        "    connectionPool: {tcp: {maxConnectionDuration: 0s}}",
    ));
    assert!(
        errs.iter().any(|e| e.contains(
            "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration: must be at least 1ms"
        )),
        "{errs:?}"
    );
}

/// `http.useClientProtocol`: istiod's `shouldH2Upgrade` does not upgrade and
/// `applyConnectionPool` sets `setUseDownstreamProtocol` (cluster_traffic_policy.go);
/// `validateConnectionPool` refuses it together with `h2UpgradePolicy: UPGRADE`.
#[test]
fn use_client_protocol_is_read() {
    let s = load(&rule(
        "    connectionPool: {http: {useClientProtocol: true}}",
    ));
    assert!(reviews(&s).connection_pool.use_client_protocol);
    assert!(!reviews(&s).connection_pool.h2_upgrade);
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
    let errs = errors(&rule(
        "    connectionPool: {http: {useClientProtocol: true, h2UpgradePolicy: UPGRADE}}",
    ));
    assert!(
        errs.iter().any(|e| e.contains(
            "spec.trafficPolicy.connectionPool.http.useClientProtocol: use client protocol must not be true when H2UpgradePolicy is UPGRADE"
        )),
        "{errs:?}"
    );
}

// ---- loadBalancer.warmup ---------------------------------------------------------------------

/// istiod's `setWarmup` (cluster_traffic_policy.go): aggression defaults to 1.0 and the minimum
/// weight to 10 %; `warmup` wins over the deprecated `warmupDurationSecs`, which gives Envoy's
/// same defaults (`setSlowStartConfig`).
#[test]
fn warmup_becomes_slow_start() {
    let s = load(&rule(
        "    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 60s, aggression: 2, minimumPercent: 5}}",
    ));
    assert_eq!(
        reviews(&s).slow_start,
        Some(SlowStart {
            window: Duration::from_secs(60),
            aggression: 2.0,
            min_weight_percent: 5.0,
        })
    );
    let s = load(&rule(
        "    loadBalancer: {warmupDurationSecs: 30s, warmup: {duration: 90s}}",
    ));
    assert_eq!(
        reviews(&s).slow_start,
        Some(SlowStart {
            window: Duration::from_secs(90),
            aggression: 1.0,
            min_weight_percent: 10.0,
        })
    );
    let s = load(&rule(
        "    loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 30s}",
    ));
    assert_eq!(
        reviews(&s).slow_start.as_ref().map(|w| w.window),
        Some(Duration::from_secs(30))
    );
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
}

/// istiod's `applyLoadBalancer`: only ROUND_ROBIN and LEAST_REQUEST (and the default) get a slow
/// start config; a consistent hash replaces the LB config. Accepted, warned, not applied.
#[test]
fn warmup_with_random_or_hashing_is_ignored_with_a_warning() {
    for lb in [
        "{simple: RANDOM, warmup: {duration: 60s}}",
        "{consistentHash: {httpHeaderName: x-user}, warmup: {duration: 60s}}",
    ] {
        let s = load(&rule(&format!("    loadBalancer: {lb}")));
        assert_eq!(reviews(&s).slow_start, None);
        assert!(
            warnings(&s)
                .iter()
                .any(|w| w.contains("loadBalancer.warmup: ignored")),
            "{:?}",
            warnings(&s)
        );
    }
}

/// istiod's `validateLoadBalancer`: duration required, aggression > 0, minimumPercent <= 100.
#[test]
fn bad_warmup_is_refused_like_istiod() {
    for (warmup, message) in [
        ("{aggression: 2}", "warmup.duration: duration is required"),
        (
            "{duration: 10s, aggression: 0}",
            "warmup.aggression: aggression should be greater than 0",
        ),
        (
            "{duration: 10s, minimumPercent: 150}",
            "warmup.minimumPercent",
        ),
    ] {
        let errs = errors(&rule(&format!("    loadBalancer: {{warmup: {warmup}}}")));
        assert!(errs.iter().any(|e| e.contains(message)), "{errs:?}");
    }
}

// ---- WorkloadEntry network ------------------------------------------------------------------

const EXTERNAL_WORKLOADS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms}
spec:
  hosts: [vms.example.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-local}
spec: {address: 10.1.0.1, network: network1, labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-remote}
spec: {network: network2, labels: {app: vm}}
";

/// istiod's `validateWorkloadEntry` accepts a WorkloadEntry without an address when it names a
/// network (a warning). With no east-west gateway (multi-network not enabled) istiod's
/// `filterIstioEndpoint` (pilot/pkg/xds/endpoints/endpoint_builder.go) drops an endpoint without
/// an address, and `EndpointsByNetworkFilter` (ep_filters.go) keeps every addressed endpoint
/// whatever its network.
#[test]
fn workload_entry_on_another_network_without_address_is_dropped_with_a_warning() {
    let s = load(EXTERNAL_WORKLOADS);
    let c = cluster(&s, "outbound|8080||vms.example.internal");
    let addrs: Vec<String> = c.endpoints.iter().map(|e| e.address.to_string()).collect();
    assert_eq!(addrs, ["10.1.0.1:8080"]);
    let w = warnings(&s);
    assert!(
        w.iter()
            .any(|w| w.contains("WorkloadEntry default/vm-remote")
                && w.contains("address is unset with network \"network2\"")),
        "{w:?}"
    );
    // Without a network, an address is still required.
    let errs = errors(&EXTERNAL_WORKLOADS.replace("spec: {network: network2, ", "spec: {"));
    assert!(
        errs.iter()
            .any(|e| e.contains("vm-remote: spec.address: address is required")),
        "{errs:?}"
    );
}

// ---- unix domain sockets --------------------------------------------------------------------

fn unix_service(endpoint: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: local}}
spec:
  hosts: [local.sock.internal]
  resolution: STATIC
  ports: [{{number: 80, name: http}}]
  endpoints: [{endpoint}]
"
    )
}

/// istiod's `convertWorkloadInstanceToServiceInstance` (serviceentry/conversion.go): a `unix://`
/// address becomes an Envoy pipe address and its port is not used; `ValidateUnixAddress` wants
/// an absolute path (or an abstract `@name`), `validateWorkloadEntry` no ports.
#[test]
fn unix_socket_endpoints_are_read() {
    let s = load(&unix_service("{address: \"unix:///var/run/app.sock\"}"));
    let c = cluster(&s, "outbound|80||local.sock.internal");
    assert_eq!(
        c.endpoints[0].address,
        EndpointAddress::Unix {
            path: "/var/run/app.sock".into()
        }
    );
    assert_eq!(
        c.endpoints[0].address.to_string(),
        "unix:///var/run/app.sock"
    );
    let s = load(&unix_service("{address: \"unix://@abstract\"}"));
    assert_eq!(
        cluster(&s, "outbound|80||local.sock.internal").endpoints[0].address,
        EndpointAddress::Unix {
            path: "@abstract".into()
        }
    );
    let errs = errors(&unix_service("{address: \"unix://relative.sock\"}"));
    assert!(
        errs.iter()
            .any(|e| e.contains("is not an absolute path to a file")),
        "{errs:?}"
    );
    let errs = errors(&unix_service(
        "{address: \"unix:///var/run/app.sock\", ports: {http: 8080}}",
    ));
    assert!(
        errs.iter().any(|e| e.contains("must not include ports")),
        "{errs:?}"
    );
}

// ---- tls.credentialName ---------------------------------------------------------------------

const CERT: &str = "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n";
const CA: &str = "-----BEGIN CERTIFICATE-----\nY2E=\n-----END CERTIFICATE-----\n";
const OTHER_CA: &str = "-----BEGIN CERTIFICATE-----\nb3RoZXI=\n-----END CERTIFICATE-----\n";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn external(tls: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api}}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{{number: 443, name: https, protocol: HTTPS}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api}}
spec:
  host: api.example.com
  trafficPolicy:
    tls: {tls}
{extra}"
    )
}

fn api(s: &Snapshot) -> &Cluster {
    cluster(s, "outbound|443||api.example.com")
}

/// istiod's `ExtractCertInfo` / `ExtractRoot` (pilot/pkg/credentials/kube/secrets.go): a
/// `kubernetes.io/tls` Secret gives `tls.crt`/`tls.key`/`ca.crt`; a generic one `cert`/`key`/
/// `cacert`, and `cert`/`key` win when both are present.
#[test]
fn credential_name_resolves_from_a_secret_in_the_config() {
    let secret = format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: client-cred}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: {}, ca.crt: {}}}
",
        b64(CERT),
        b64(KEY),
        b64(CA)
    );
    let s = load(&external(
        "{mode: MUTUAL, credentialName: client-cred}",
        &secret,
    ));
    let tls = &api(&s).tls;
    assert_eq!(tls.mode, TlsMode::Mutual);
    let cred = tls.credential.as_ref().expect("a credential");
    assert_eq!(cred.name, "client-cred");
    assert_eq!(cred.cert_chain.as_deref(), Some(CERT));
    assert_eq!(cred.private_key.as_deref(), Some(KEY));
    assert_eq!(cred.ca_certificates.as_deref(), Some(CA));
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
    // Secrets never show: not in Debug, not in the config dump.
    let debug = format!("{:?}", api(&s));
    let dump = serde_json::to_string(api(&s)).expect("serializable");
    for text in [&debug, &dump] {
        for secret in ["Y2VydA==", "a2V5", "Y2E=", "PRIVATE KEY"] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        assert!(text.contains("client-cred"));
    }

    // Generic keys, with stringData.
    let generic = format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: client-cred}}
stringData:
  cert: |
{}  key: |
{}  cacert: |
{}",
        indent(CERT),
        indent(KEY),
        indent(CA)
    );
    let s = load(&external(
        "{mode: MUTUAL, credentialName: client-cred}",
        &generic,
    ));
    let cred = api(&s).tls.credential.clone().expect("a credential");
    assert_eq!(cred.cert_chain.as_deref(), Some(CERT));
    assert_eq!(cred.ca_certificates.as_deref(), Some(CA));
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// istiod's client validation context asks for `<name>-cacert` (`SdsCaSuffix`,
/// `ApplyCustomSDSToClientCommonTLSContext`), and `GetCaCert` falls back to `<name>` only when
/// no such Secret exists. SIMPLE needs only the CA.
#[test]
fn the_cacert_secret_wins_for_the_ca() {
    let secrets = format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: cred}}
data: {{ca.crt: {}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: cred-cacert}}
data: {{cacert: {}}}
",
        b64(CA),
        b64(OTHER_CA)
    );
    let s = load(&external("{mode: SIMPLE, credentialName: cred}", &secrets));
    let cred = api(&s).tls.credential.clone().expect("a credential");
    assert_eq!(cred.ca_certificates.as_deref(), Some(OTHER_CA));
    assert_eq!(cred.cert_chain, None);
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
}

/// A Secret of another namespace is not the workload's ("must exist in the namespace of the
/// proxy"); a missing credential is accepted with a warning, as istiod accepts the rule, and the
/// cluster keeps the name so connections fail closed.
#[test]
fn a_missing_credential_is_a_warning_and_stays_unresolved() {
    let secret = format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: cred, namespace: other}}
data: {{ca.crt: {}}}
",
        b64(CA)
    );
    let s = load(&external("{mode: SIMPLE, credentialName: cred}", &secret));
    let cred = api(&s).tls.credential.clone().expect("the name is kept");
    assert_eq!(cred.ca_certificates, None);
    assert!(
        warnings(&s)
            .iter()
            .any(|w| w
                .contains("spec.trafficPolicy.tls.credentialName: credential \"cred\" not found")),
        "{:?}",
        warnings(&s)
    );
}

/// `ValidateDestinationRuleTLS` (pkg/config/validation/agent/validation.go): with credentialName
/// the file fields must be unset, and MUTUAL no longer needs clientCertificate/privateKey.
#[test]
fn credential_name_excludes_file_fields() {
    let errs = errors(&external(
        "{mode: SIMPLE, credentialName: cred, caCertificates: /etc/ca.pem}",
        "",
    ));
    assert!(
        errs.iter().any(|e| e.contains(
            "credentialName: cannot specify client certificates or CA certificate or CA CRL"
        )),
        "{errs:?}"
    );
    assert!(
        !errs
            .iter()
            .any(|e| e.contains("clientCertificate: required")),
        "{errs:?}"
    );
}

/// The credentials folder: `<dir>/<name>/<key>` with istiod's key names.
#[test]
fn credential_name_resolves_from_the_credentials_folder() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cred = dir.path().join("folder-cred");
    std::fs::create_dir(&cred).expect("mkdir");
    std::fs::write(cred.join("tls.crt"), CERT).expect("write");
    std::fs::write(cred.join("tls.key"), KEY).expect("write");
    std::fs::write(cred.join("ca.crt"), CA).expect("write");
    let ctx = BuildContext {
        workload: Workload::new("default", "client"),
        settings: MeshSettings {
            credentials_dir: Some(dir.path().to_owned()),
            ..MeshSettings::default()
        },
    };
    let yaml = external("{mode: MUTUAL, credentialName: folder-cred}", "");
    let s = istio::load_str("test.yaml", &yaml, &ctx).expect("accepted");
    let c = s
        .cluster(&ClusterName::new("outbound|443||api.example.com"))
        .expect("cluster");
    let got = c.tls.credential.clone().expect("a credential");
    assert_eq!(got.private_key.as_deref(), Some(KEY));
    assert_eq!(got.ca_certificates.as_deref(), Some(CA));
    // A name never climbs out of the folder.
    let yaml = external("{mode: MUTUAL, credentialName: ..}", "");
    let s = istio::load_str("test.yaml", &yaml, &ctx).expect("accepted");
    let c = s
        .cluster(&ClusterName::new("outbound|443||api.example.com"))
        .expect("cluster");
    assert_eq!(
        c.tls.credential.as_ref().and_then(|c| c.cert_chain.clone()),
        None
    );
}
