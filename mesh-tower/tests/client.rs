//! MeshClient against real axum backends on 127.0.0.1: splits, header routes, retries, budgets,
//! outlier ejection, circuit breaking, faults, mirroring and config swaps under traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

mod backends;

use std::sync::atomic::Ordering;
use std::time::Duration;

use backends::{apply, backend, mesh, service_yaml};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::telemetry::ResponseFlag;
use mesh_tower::client::MeshClient;
use tower::ServiceExt;

async fn get(
    client: &MeshClient,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String, Option<ResponseFlag>) {
    let mut builder = Request::get(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = client
        .clone()
        .oneshot(builder.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let flag = response.extensions().get::<ResponseFlag>().copied();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), flag)
}

fn vs(name: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hosts: [{name}]\n  http:\n{http}"
    )
}

/// Five-sigma bound for a binomial count.
fn within_5_sigma(count: usize, n: usize, p: f64) -> bool {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - mean).abs() <= 5.0 * sigma
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_95_5_split_over_10000_requests() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let yaml = service_yaml("inventory", &[&v1, &v2], "")
        + &vs(
            "inventory",
            "  - route:\n    - destination: {host: inventory, subset: v1}\n      weight: 95\n    - destination: {host: inventory, subset: v2}\n      weight: 5\n",
        );
    let client = MeshClient::builder(mesh(&yaml)).seed(7).build();
    let n = 10_000;
    let mut v2_count = 0;
    for _ in 0..n {
        let (status, body, _) = get(&client, "http://inventory:8080/items", &[]).await;
        assert_eq!(status, StatusCode::OK);
        if body == "v2" {
            v2_count += 1;
        }
    }
    assert!(
        within_5_sigma(v2_count, n, 0.05),
        "v2 got {v2_count} of {n}"
    );
    assert_eq!(
        v1.hits.load(Ordering::Relaxed) + v2.hits.load(Ordering::Relaxed),
        n
    );
}

#[tokio::test]
async fn end_user_jason_goes_to_v2() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let yaml = service_yaml("reviews", &[&v1, &v2], "")
        + &vs(
            "reviews",
            "  - match:\n    - headers:\n        end-user: {exact: jason}\n    route:\n    - destination: {host: reviews, subset: v2}\n  - route:\n    - destination: {host: reviews, subset: v1}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    for _ in 0..20 {
        assert_eq!(
            get(&client, "http://reviews:8080/", &[("end-user", "jason")])
                .await
                .1,
            "v2"
        );
        assert_eq!(
            get(&client, "http://reviews:8080/", &[("end-user", "alice")])
                .await
                .1,
            "v1"
        );
        assert_eq!(get(&client, "http://reviews:8080/", &[]).await.1, "v1");
    }
}

#[tokio::test]
async fn no_route_is_404_nr() {
    let v1 = backend("v1").await;
    // A declared host whose routes do not match answers 404 NR (undeclared hosts follow the
    // outbound traffic policy: see client_passthrough.rs).
    let yaml = service_yaml("reviews", &[&v1], "")
        + &service_yaml("ratings", &[&v1], "")
        + &vs(
            "ratings",
            "  - match: [{headers: {end-user: {exact: jason}}}]\n    route: [{destination: {host: ratings}}]\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    let (status, _, flag) = get(&client, "http://ratings:8080/", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(flag, Some(ResponseFlag::NoRoute));
    // A service with no VirtualService has a default route.
    assert_eq!(
        get(&client, "http://reviews:8080/", &[]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn retries_recover_from_a_failing_endpoint() {
    let (bad, good) = (backend("v1").await, backend("v1").await);
    bad.fail_next.store(u32::MAX, Ordering::Relaxed);
    let yaml = service_yaml(
        "payment",
        &[&bad, &good],
        "    loadBalancer: {simple: ROUND_ROBIN}\n",
    ) + &vs(
        "payment",
        "  - route:\n    - destination: {host: payment}\n    retries: {attempts: 2, retryOn: 5xx}\n",
    );
    let client = MeshClient::builder(mesh(&yaml)).seed(1).build();
    for _ in 0..50 {
        let (status, _, _) = get(&client, "http://payment:8080/charge", &[]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "every call recovers on the healthy endpoint"
        );
    }
    assert!(
        bad.hits.load(Ordering::Relaxed) > 0,
        "the failing endpoint was tried"
    );
}

#[tokio::test]
async fn without_retries_the_failure_reaches_the_caller() {
    let bad = backend("v1").await;
    bad.fail_next.store(u32::MAX, Ordering::Relaxed);
    let yaml = service_yaml("payment", &[&bad], "")
        + &vs(
            "payment",
            "  - route:\n    - destination: {host: payment}\n    retries: {attempts: 0}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    assert_eq!(
        get(&client, "http://payment:8080/", &[]).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(bad.hits.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_budget() {
    // 20 concurrent requests to an endpoint that answers 503 after 300 ms. Their first attempts
    // fail together; the budget then admits max(3, 20% of 20 active) = 4 concurrent retries, and
    // the other 16 requests fail without retrying. No retry storm.
    let bad = backend("v1").await;
    bad.fail_next.store(u32::MAX, Ordering::Relaxed);
    bad.delay_ms.store(300, Ordering::Relaxed);
    let yaml = service_yaml("payment", &[&bad], "")
        + &vs(
            "payment",
            "  - route:\n    - destination: {host: payment}\n    retries: {attempts: 1, retryOn: 5xx}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { get(&client, "http://payment:8080/", &[]).await.0 })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        bad.hits.load(Ordering::Relaxed),
        24,
        "20 first attempts and 4 budgeted retries"
    );
}

#[tokio::test]
async fn connect_failures_are_503_uf() {
    // A port bound but not listening: refused while `reserved` lives, and no other socket can
    // take it (a listener bound and dropped could hand its port to another test's server).
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = reserved.local_addr().unwrap().port();
    let dead = backends::Backend {
        addr: ([127, 0, 0, 1], port).into(),
        version: "v1".into(),
        hits: Default::default(),
        fail_next: Default::default(),
        authorities: Default::default(),
        delay_ms: Default::default(),
    };
    let yaml = service_yaml("gone", &[&dead], "")
        + &vs(
            "gone",
            "  - route:\n    - destination: {host: gone}\n    retries: {attempts: 0}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    let (status, _, flag) = get(&client, "http://gone:8080/", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(flag, Some(ResponseFlag::UpstreamConnectionFailure));
}

#[tokio::test]
async fn outlier_detection_ejects_and_returns() {
    let (bad, good) = (backend("v1").await, backend("v1").await);
    bad.fail_next.store(3, Ordering::Relaxed);
    let policy = "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 3, interval: 10ms, baseEjectionTime: 2s, maxEjectionPercent: 100}\n";
    let yaml = service_yaml("cart", &[&bad, &good], policy)
        + &vs(
            "cart",
            "  - route:\n    - destination: {host: cart}\n    retries: {attempts: 0}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    // Round robin alternates; three 503s from `bad` eject it.
    let mut failures = 0;
    for _ in 0..6 {
        if get(&client, "http://cart:8080/", &[]).await.0 != StatusCode::OK {
            failures += 1;
        }
    }
    assert_eq!(failures, 3);
    let before = bad.hits.load(Ordering::Relaxed);
    for _ in 0..20 {
        assert_eq!(
            get(&client, "http://cart:8080/", &[]).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        bad.hits.load(Ordering::Relaxed),
        before,
        "ejected: no traffic"
    );
    // After the ejection time, it returns (bounded wait, real time: ejection is 2 s, long enough
    // that the 20 calls above finish inside it on a loaded machine).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bad.hits.load(Ordering::Relaxed) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "endpoint never returned to service"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            get(&client, "http://cart:8080/", &[]).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_overflow_is_503_uo() {
    let slow = backend("v1").await;
    slow.delay_ms.store(300, Ordering::Relaxed);
    let policy = "    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1, http2MaxRequests: 2}}\n";
    let yaml = service_yaml("slow", &[&slow], policy)
        + &vs(
            "slow",
            "  - route:\n    - destination: {host: slow}\n    retries: {attempts: 0}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { get(&client, "http://slow:8080/", &[]).await })
        })
        .collect();
    let mut ok = 0;
    let mut overflow = 0;
    for c in calls {
        let (status, _, flag) = c.await.unwrap();
        if status == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(
                (status, flag),
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(ResponseFlag::UpstreamOverflow)
                )
            );
            overflow += 1;
        }
    }
    assert!(ok >= 1 && overflow >= 4, "ok {ok}, overflow {overflow}");
}

#[tokio::test]
async fn fault_abort_and_delay() {
    let v1 = backend("v1").await;
    let yaml = service_yaml("ratings", &[&v1], "")
        + &vs(
            "ratings",
            "  - match:\n    - headers: {end-user: {exact: jason}}\n    fault:\n      abort: {httpStatus: 500, percentage: {value: 100}}\n    route:\n    - destination: {host: ratings}\n  - fault:\n      delay: {fixedDelay: 300ms, percentage: {value: 100}}\n    route:\n    - destination: {host: ratings}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    let (status, _, flag) = get(&client, "http://ratings:8080/", &[("end-user", "jason")]).await;
    assert_eq!(
        (status, flag),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(ResponseFlag::FaultInjected)
        )
    );
    assert_eq!(
        v1.hits.load(Ordering::Relaxed),
        0,
        "aborted before the upstream"
    );
    let start = std::time::Instant::now();
    assert_eq!(
        get(&client, "http://ratings:8080/", &[]).await.0,
        StatusCode::OK
    );
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "delayed {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn route_timeout_is_504_ut() {
    let slow = backend("v1").await;
    slow.delay_ms.store(2_000, Ordering::Relaxed);
    let yaml = service_yaml("slow", &[&slow], "")
        + &vs(
            "slow",
            "  - route:\n    - destination: {host: slow}\n    timeout: 100ms\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    let (status, _, flag) = get(&client, "http://slow:8080/", &[]).await;
    assert_eq!(
        (status, flag),
        (
            StatusCode::GATEWAY_TIMEOUT,
            Some(ResponseFlag::UpstreamRequestTimeout)
        )
    );
}

#[tokio::test]
async fn mirroring_sends_a_shadow_copy() {
    let (main, shadow) = (backend("v1").await, backend("v2").await);
    let yaml = service_yaml("orders", &[&main, &shadow], "")
        + &vs(
            "orders",
            "  - route:\n    - destination: {host: orders, subset: v1}\n    mirror: {host: orders, subset: v2}\n    mirrorPercentage: {value: 100}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    for _ in 0..5 {
        assert_eq!(get(&client, "http://orders:8080/", &[]).await.1, "v1");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while shadow.hits.load(Ordering::Relaxed) < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mirror copies did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = shadow.authorities.lock().unwrap().clone();
    assert!(seen.iter().all(|a| a == "orders-shadow:8080"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_swaps_every_50ms_under_traffic_fail_nothing() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let config = |w1: u32| {
        service_yaml("inventory", &[&v1, &v2], "")
            + &vs(
                "inventory",
                &format!(
                    "  - route:\n    - destination: {{host: inventory, subset: v1}}\n      weight: {w1}\n    - destination: {{host: inventory, subset: v2}}\n      weight: {}\n",
                    100 - w1
                ),
            )
    };
    let mesh = mesh(&config(50));
    let client = MeshClient::new(mesh.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (mesh, stop) = (mesh.clone(), stop.clone());
        let configs: Vec<String> = (0..=10).map(|i| config(i * 10)).collect();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                apply(&mesh, &configs[i % configs.len()]);
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            i
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut failures = 0;
                for _ in 0..1_250 {
                    if get(&client, "http://inventory:8080/", &[]).await.0 != StatusCode::OK {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = 0;
    for w in workers {
        failures += w.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.await.unwrap();
    assert_eq!(failures, 0);
    assert!(swaps >= 2, "only {swaps} swaps happened");
}

#[tokio::test]
async fn consistent_hash_on_a_header_is_sticky() {
    let backends = [
        backend("v1").await,
        backend("v1").await,
        backend("v1").await,
        backend("v1").await,
    ];
    let refs: Vec<&backends::Backend> = backends.iter().collect();
    let policy = "    loadBalancer: {consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 1024}}}\n";
    let client = MeshClient::new(mesh(&service_yaml("cart", &refs, policy)));
    let mut seen_by_user = std::collections::BTreeMap::new();
    for user in [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ] {
        for _ in 0..10 {
            let before: Vec<usize> = backends
                .iter()
                .map(|b| b.hits.load(Ordering::Relaxed))
                .collect();
            assert_eq!(
                get(&client, "http://cart:8080/", &[("x-user", user)])
                    .await
                    .0,
                StatusCode::OK
            );
            let hit = backends
                .iter()
                .zip(&before)
                .position(|(b, n)| b.hits.load(Ordering::Relaxed) > *n)
                .expect("one backend answered");
            let first = *seen_by_user.entry(user).or_insert(hit);
            assert_eq!(first, hit, "{user} moved between endpoints");
        }
    }
    let distinct: std::collections::BTreeSet<_> = seen_by_user.values().collect();
    assert!(
        distinct.len() >= 2,
        "8 users all hashed to one endpoint: {seen_by_user:?}"
    );
}

#[tokio::test]
async fn bodies_over_64_kib_are_not_retried() {
    // Retrying needs the request again; past the 64 KiB replay buffer it is gone, so the
    // failure is final (as Envoy does past its buffer limit).
    let bad = backend("v1").await;
    bad.fail_next.store(u32::MAX, Ordering::Relaxed);
    let yaml = service_yaml("upload", &[&bad], "")
        + &vs(
            "upload",
            "  - route:\n    - destination: {host: upload}\n    retries: {attempts: 3, retryOn: 5xx}\n",
        );
    let client = MeshClient::new(mesh(&yaml));
    let small = Request::post("http://upload:8080/")
        .body(http_body_util::Full::new(Bytes::from(vec![7u8; 1024])))
        .unwrap();
    assert_eq!(
        client.clone().oneshot(small).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        bad.hits.load(Ordering::Relaxed),
        4,
        "a small body is retried 3 times"
    );
    let large = Request::post("http://upload:8080/")
        .body(http_body_util::Full::new(Bytes::from(vec![
            7u8;
            100 * 1024
        ])))
        .unwrap();
    assert_eq!(
        client.clone().oneshot(large).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        bad.hits.load(Ordering::Relaxed),
        5,
        "a 100 KiB body is sent once"
    );
}
