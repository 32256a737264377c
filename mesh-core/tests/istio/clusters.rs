//! Clusters from ServiceEntries, WorkloadEntries and DestinationRules.

use std::net::SocketAddr;
use std::time::Duration;

use mesh_core::model::{
    Cluster, ClusterName, ConnectionPool, EndpointAddress, HashKey, LbPolicy, OutlierDetection,
    Protocol, Resolution, RetryBudget, TlsMode,
};

use super::*;

fn cluster<'a>(s: &'a Snapshot, name: &str) -> &'a Cluster {
    s.cluster(&ClusterName::new(name)).unwrap_or_else(|| {
        panic!(
            "no cluster {name}; have {:?}",
            s.clusters.keys().collect::<Vec<_>>()
        )
    })
}

fn addrs(c: &Cluster) -> Vec<String> {
    c.endpoints.iter().map(|e| e.address.to_string()).collect()
}

#[test]
fn subsets_select_endpoints_by_label() {
    let s = load_bookinfo(&["destination-rule-all.yaml"]);
    let all = cluster(&s, &format!("outbound|9080||{REVIEWS}"));
    assert_eq!(
        addrs(all),
        ["10.0.1.1:9080", "10.0.1.2:9080", "10.0.1.3:9080"]
    );
    assert_eq!(all.service.namespace, "default");
    assert_eq!(all.protocol, Protocol::Http);
    assert_eq!(all.resolution, Resolution::Static);
    assert_eq!(
        all.endpoints[0].identity.as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/bookinfo-reviews")
    );
    for (subset, addr) in [
        ("v1", "10.0.1.1:9080"),
        ("v2", "10.0.1.2:9080"),
        ("v3", "10.0.1.3:9080"),
    ] {
        let c = cluster(&s, &format!("outbound|9080|{subset}|{REVIEWS}"));
        assert_eq!(addrs(c), [addr]);
        assert_eq!(c.service.subset.as_deref(), Some(subset));
    }
    // destination-rule-all has no tls: mesh-internal services default to ISTIO_MUTUAL.
    assert_eq!(all.tls.mode, TlsMode::IstioMutual);
    // Protocol from the port name prefix.
    let ratings = cluster(&s, "outbound|9080||ratings.default.svc.cluster.local");
    assert_eq!(ratings.protocol, Protocol::Http);
}

#[test]
fn subset_policies_merge_like_istio() {
    let s = load(&with_reviews(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    retryBudget: {percent: 25, minRetryConcurrency: 5}
    connectionPool: {tcp: {maxConnections: 10, connectTimeout: 2s}, http: {http1MaxPendingRequests: 5}}
    portLevelSettings:
    - port: {number: 9080}
      outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 1m}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      connectionPool: {http: {http2MaxRequests: 7}}
      portLevelSettings:
      - port: {number: 9080}
        tls: {mode: SIMPLE, sni: reviews.example}
",
    ));
    let base = cluster(&s, &format!("outbound|9080||{REVIEWS}"));
    let v1 = cluster(&s, &format!("outbound|9080|v1|{REVIEWS}"));
    let v2 = cluster(&s, &format!("outbound|9080|v2|{REVIEWS}"));
    let rule_pool = ConnectionPool {
        max_connections: 10,
        connect_timeout: Duration::from_secs(2),
        max_pending_requests: 5,
        ..ConnectionPool::default()
    };
    let rule_outlier = OutlierDetection {
        consecutive_5xx: 3,
        interval: Duration::from_secs(5),
        base_ejection_time: Duration::from_secs(60),
        ..OutlierDetection::default()
    };
    // Rule level, with the rule's port-level outlier detection.
    for c in [base, v1] {
        assert_eq!(c.lb, LbPolicy::RoundRobin);
        assert_eq!(c.connection_pool, rule_pool);
        assert_eq!(c.outlier.as_ref(), Some(&rule_outlier));
        assert_eq!(c.tls.mode, TlsMode::IstioMutual);
    }
    // The subset replaces loadBalancer and connectionPool whole, keeps the inherited outlier
    // detection, and its own port-level tls applies last.
    assert_eq!(v2.lb, LbPolicy::Random);
    assert_eq!(
        v2.connection_pool,
        ConnectionPool {
            max_requests: 7,
            ..ConnectionPool::default()
        }
    );
    assert_eq!(v2.outlier.as_ref(), Some(&rule_outlier));
    for c in [base, v1, v2] {
        assert_eq!(
            c.retry_budget,
            RetryBudget {
                budget_percent: 25,
                min_retry_concurrency: 5
            }
        );
    }
    assert_eq!(
        (v2.tls.mode, v2.tls.sni.as_deref()),
        (TlsMode::Simple, Some("reviews.example"))
    );
}

#[test]
fn load_balancer_forms() {
    let cases = [
        (
            "loadBalancer: {simple: LEAST_CONN}",
            "",
            LbPolicy::LeastRequest,
        ),
        ("", "", LbPolicy::LeastRequest),
        ("", "PEAK_EWMA", LbPolicy::PeakEwma),
        (
            "loadBalancer: {simple: LEAST_REQUEST}",
            "PEAK_EWMA",
            LbPolicy::PeakEwma,
        ),
        (
            "loadBalancer: {simple: RANDOM}",
            "PEAK_EWMA",
            LbPolicy::Random,
        ),
        (
            "loadBalancer: {consistentHash: {httpHeaderName: X-User}}",
            "",
            LbPolicy::RingHash {
                key: HashKey::Header("x-user".into()),
                minimum_ring_size: 1024,
            },
        ),
        (
            "loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: 10s}, maglev: {}}}",
            "",
            LbPolicy::Maglev {
                key: HashKey::Cookie {
                    name: "u".into(),
                    path: None,
                    ttl: Some(Duration::from_secs(10)),
                },
                table_size: 65537,
            },
        ),
        (
            "loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 4096}}",
            "",
            LbPolicy::RingHash {
                key: HashKey::SourceIp,
                minimum_ring_size: 4096,
            },
        ),
    ];
    for (policy, annotation, want) in cases {
        let annotations = if annotation.is_empty() {
            String::new()
        } else {
            format!(", annotations: {{mesh.dev/load-balancer: {annotation}}}")
        };
        let s = load(&with_reviews(&format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews{annotations}}}
spec:
  host: reviews
  trafficPolicy: {{{policy}}}
"
        )));
        assert_eq!(
            cluster(&s, &format!("outbound|9080||{REVIEWS}")).lb,
            want,
            "{policy} {annotation}"
        );
    }
}

#[test]
fn external_services_default_to_plaintext_and_resolve_by_dns() {
    let s = load_bookinfo(&["egress-rule-google-apis.yaml"]);
    let http = cluster(&s, "outbound|80||www.googleapis.com");
    assert_eq!(http.tls.mode, TlsMode::Disable);
    assert_eq!(http.lb, LbPolicy::RoundRobin);
    assert_eq!(http.resolution, Resolution::Dns);
    assert_eq!(
        http.endpoints[0].address,
        EndpointAddress::Dns {
            host: "www.googleapis.com".into(),
            port: 80
        }
    );
    let https = cluster(&s, "outbound|443||www.googleapis.com");
    assert_eq!(https.tls.mode, TlsMode::Simple);
    assert_eq!(https.protocol, Protocol::Tls);
    // The VirtualService sends port-80 traffic to the 443 cluster.
    let r = routes(&s, 80, "www.googleapis.com");
    assert_eq!(
        weights(&r[0]),
        vec![("outbound|443||www.googleapis.com".into(), 100)]
    );
}

#[test]
fn endpoints_ports_workload_entries_and_sans() {
    let s = load(
        "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: shop}
spec:
  address: 192.168.0.7
  labels: {app: cart, version: v1}
  ports: {grpc: 7070}
  locality: eu-west1/eu-west1-b
  weight: 3
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-other, namespace: shop}
spec:
  address: 192.168.0.8
  labels: {app: billing}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: grpc}
  - {number: 9090, name: http-metrics, targetPort: 9091}
  workloadSelector: {labels: {app: cart}}
  subjectAltNames: [spiffe://cluster.local/ns/shop/sa/cart]
",
    );
    let grpc = cluster(&s, "outbound|8080||cart.shop.svc.cluster.local");
    assert_eq!(grpc.protocol, Protocol::Grpc);
    assert_eq!(addrs(grpc), ["192.168.0.7:7070"]);
    let ep = &grpc.endpoints[0];
    assert_eq!((ep.weight, ep.locality.zone.as_str()), (3, "eu-west1-b"));
    assert_eq!(
        ep.identity.as_deref(),
        Some("spiffe://cluster.local/ns/shop/sa/default")
    );
    assert_eq!(
        grpc.tls.subject_alt_names,
        ["spiffe://cluster.local/ns/shop/sa/cart"]
    );
    let metrics = cluster(&s, "outbound|9090||cart.shop.svc.cluster.local");
    assert_eq!(
        metrics.endpoints[0].address,
        EndpointAddress::Socket("192.168.0.7:9091".parse::<SocketAddr>().unwrap())
    );
}

#[test]
fn wildcard_rules_apply_to_matching_services_most_specific_first() {
    let s = load(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [a.example.com, b.api.example.com]
  resolution: DNS
  ports: [{number: 443, name: https, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wide}
spec:
  host: '*.example.com'
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: narrow}
spec:
  host: '*.api.example.com'
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
",
    );
    assert_eq!(
        cluster(&s, "outbound|443||a.example.com").lb,
        LbPolicy::Random
    );
    assert_eq!(
        cluster(&s, "outbound|443||b.api.example.com").lb,
        LbPolicy::RoundRobin
    );
}

#[test]
fn rules_closest_to_the_workload_win() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  ports: [{number: 80, name: http}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-from-default, namespace: default}
spec:
  host: cart.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
";
    let name = "outbound|80||cart.shop.svc.cluster.local";
    // From `default`, the rule in `default` applies; from `shop`, the service's own.
    assert_eq!(cluster(&load(yaml), name).lb, LbPolicy::RoundRobin);
    let from_shop = load_with(yaml, &ctx_for(mesh_core::Workload::new("shop", "cart")));
    assert_eq!(cluster(&from_shop, name).lb, LbPolicy::Random);
    assert!(
        from_shop.warnings.is_empty(),
        "a shadowed rule is not reported"
    );
}

#[test]
fn unknown_load_balancer_annotation_is_an_error() {
    let e = errors(&with_reviews(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, annotations: {mesh.dev/load-balancer: FASTEST}}
spec: {host: reviews}
",
    ));
    assert_eq!(
        e,
        [
            r#"test.yaml: doc 1 DestinationRule default/reviews: metadata.annotations.mesh.dev/load-balancer: unknown load balancer "FASTEST" (expected PEAK_EWMA or LEAST_REQUEST)"#
        ]
    );
}

#[test]
fn locality_balancing_needs_outlier_detection() {
    let cases = [
        ("", false),
        ("outlierDetection: {consecutive5xxErrors: 1}", true),
        ("loadBalancer: {simple: RANDOM}, outlierDetection: {}", true),
        (
            "loadBalancer: {localityLbSetting: {enabled: false}}, outlierDetection: {}",
            false,
        ),
    ];
    for (policy, enabled) in cases {
        let s = load(&with_reviews(&format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy: {{{policy}}}
"
        )));
        let c = cluster(&s, &format!("outbound|9080||{REVIEWS}"));
        assert_eq!(c.locality_lb.enabled, enabled, "{policy}");
    }
    let s = load(&with_reviews(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {}
    loadBalancer:
      localityLbSetting:
        failover: [{from: us-east, to: us-west}]
        failoverPriority: [topology.kubernetes.io/zone]
",
    ));
    let l = &cluster(&s, &format!("outbound|9080||{REVIEWS}")).locality_lb;
    assert!(l.enabled);
    assert_eq!(
        (l.failover[0].from.as_str(), l.failover[0].to.as_str()),
        ("us-east", "us-west")
    );
    assert_eq!(l.failover_priority, ["topology.kubernetes.io/zone"]);
}
