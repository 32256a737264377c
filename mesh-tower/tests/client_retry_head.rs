//! A retried request goes out whole: its head sent again after a connection failure (given back
//! unsent, no copy made when the policy retries only those) and after a response that asks for
//! a retry (from the copy kept before sending).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod backends;

use std::sync::atomic::Ordering;

use backends::{Backend, backend, mesh, service_yaml};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_tower::client::MeshClient;
use tower::ServiceExt;

fn route(retry: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: payment, namespace: default}}\nspec:\n  hosts: [payment]\n  http:\n  - route:\n    - destination: {{host: payment}}\n    retries: {retry}\n"
    )
}

/// A backend address nothing listens on.
fn dead() -> Backend {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Backend {
        addr: ([127, 0, 0, 1], port).into(),
        version: "v1".into(),
        hits: Default::default(),
        fail_next: Default::default(),
        authorities: Default::default(),
        delay_ms: Default::default(),
    }
}

/// Calls `payment` with a header and a body the backend must see on the attempt that answers.
async fn call(client: &MeshClient, n: usize) {
    let user = format!("user-{n}");
    let request = Request::post(format!("http://payment:8080/charge/{n}"))
        .header("end-user", &user)
        .body(Full::new(Bytes::from(format!("order {n}"))))
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "call {n}");
    assert_eq!(response.headers()["x-saw-user"], user.as_str(), "call {n}");
    let _ = response.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn a_connect_failure_retry_sends_the_unsent_head() {
    let good = backend("v1").await;
    let yaml = service_yaml(
        "payment",
        &[&dead(), &good],
        "    loadBalancer: {simple: ROUND_ROBIN}\n",
    ) + &route("{attempts: 2, retryOn: connect-failure}");
    let client = MeshClient::builder(mesh(&yaml)).seed(3).build();
    for n in 0..20 {
        call(&client, n).await;
    }
    assert_eq!(
        good.hits.load(Ordering::Relaxed),
        20,
        "every call answered by it"
    );
    let authorities = good.authorities.lock().unwrap();
    assert!(
        authorities.iter().all(|a| a == "payment:8080"),
        "{authorities:?}"
    );
}

#[tokio::test]
async fn a_retry_after_a_503_sends_the_kept_head() {
    let (bad, good) = (backend("v1").await, backend("v1").await);
    bad.fail_next.store(u32::MAX, Ordering::Relaxed);
    let yaml = service_yaml(
        "payment",
        &[&bad, &good],
        "    loadBalancer: {simple: ROUND_ROBIN}\n",
    ) + &route("{attempts: 2, retryOn: 5xx}");
    let client = MeshClient::builder(mesh(&yaml)).seed(3).build();
    for n in 0..20 {
        call(&client, n).await;
    }
    assert!(
        bad.hits.load(Ordering::Relaxed) > 0,
        "some first attempts failed"
    );
    assert_eq!(good.hits.load(Ordering::Relaxed), 20);
}
