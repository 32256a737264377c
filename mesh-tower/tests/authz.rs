//! `AuthzLayer` in front of a real axum `Router`, served by hyper on 127.0.0.1.
#![allow(clippy::unwrap_used)] // A test: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::routing::{any, get};
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, ConditionKey,
    IpBlock, Snapshot, StringPattern,
};
use mesh_core::{BuildContext, Mesh};
use mesh_tower::inbound::authz::Audit;
use mesh_tower::inbound::{AuthzLayer, LocalAddr, PeerInfo, RemoteAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

const SLEEP: &str = "cluster.local/ns/foo/sa/sleep";
const LIMIT: Duration = Duration::from_secs(10);

/// Stands in for the TLS acceptor's verified peer identity.
#[derive(Clone, Debug)]
struct TestPeer(&'static str);

impl PeerInfo for TestPeer {
    fn principal(&self) -> Option<&str> {
        Some(self.0)
    }
    fn sni(&self) -> Option<&str> {
        None
    }
}

struct Server {
    addr: SocketAddr,
    mesh: Mesh,
    /// Calls that reached a handler.
    handled: Arc<AtomicUsize>,
}

impl Server {
    /// Serves the test app behind `AuthzLayer`; every connection carries `peer` (None: plaintext).
    async fn start(policies: Vec<AuthzPolicy>, peer: Option<TestPeer>) -> Self {
        let mesh = Mesh::from_snapshot(BuildContext::default(), snapshot(policies));
        let handled = Arc::new(AtomicUsize::new(0));
        let count = |h: &Arc<AtomicUsize>| {
            let h = h.clone();
            move |req: AxumRequest| async move {
                h.fetch_add(1, Ordering::SeqCst);
                let audited = req.extensions().get::<Audit>().map(|a| a.0.join(","));
                match audited {
                    Some(a) => format!("{} audit={a}", req.uri()),
                    None => req.uri().to_string(),
                }
            }
        };
        let app = Router::new()
            .route("/admin", get(count(&handled)))
            .route("/public/{*rest}", any(count(&handled)))
            .route("/pkg.Svc/Call", any(count(&handled)))
            .fallback(count(&handled));
        let svc = tower::ServiceBuilder::new()
            .layer(AuthzLayer::<TestPeer>::new(mesh.clone()))
            .service(app);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, remote)) = listener.accept().await {
                let local = stream.local_addr().unwrap();
                let (svc, peer) = (svc.clone(), peer.clone());
                let conn = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(RemoteAddr(remote));
                    req.extensions_mut().insert(LocalAddr(local));
                    if let Some(peer) = &peer {
                        req.extensions_mut().insert(peer.clone());
                    }
                    svc.clone().oneshot(req)
                });
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    // A connection error ends that connection only; the test sees it as a
                    // failed exchange.
                    let _ = builder.serve_connection(TokioIo::new(stream), conn).await;
                });
            }
        });
        Server {
            addr,
            mesh,
            handled,
        }
    }

    fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }

    /// Sends `GET <target>` byte for byte over HTTP/1.1; returns status and body.
    async fn get(&self, target: &str, host: &str) -> (u16, String) {
        self.get_with(target, host, "").await
    }

    /// Like [`Server::get`], with extra header lines (each ending in `\r\n`).
    async fn get_with(&self, target: &str, host: &str, headers: &str) -> (u16, String) {
        let exchange = async {
            let mut s = TcpStream::connect(self.addr).await.unwrap();
            let head = format!(
                "GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).await.unwrap();
            String::from_utf8(raw).unwrap()
        };
        let text = tokio::time::timeout(LIMIT, exchange).await.unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }
}

fn snapshot(policies: Vec<AuthzPolicy>) -> Snapshot {
    let mut s = Snapshot::empty();
    s.inbound.authorization = policies;
    s
}

fn pats(v: &[&str]) -> Vec<StringPattern> {
    v.iter().map(|s| StringPattern::parse(s)).collect()
}

fn policy(name: &str, action: AuthzAction, rules: Vec<AuthzRule>) -> AuthzPolicy {
    AuthzPolicy {
        name: name.into(),
        action,
        rules,
    }
}

fn paths(v: &[&str]) -> AuthzRule {
    AuthzRule {
        to: vec![AuthzOperation {
            paths: pats(v),
            ..AuthzOperation::default()
        }],
        ..AuthzRule::default()
    }
}

fn admin_and_public() -> Vec<AuthzPolicy> {
    vec![
        policy(
            "foo/deny-admin",
            AuthzAction::Deny,
            vec![paths(&["/admin", "/admin/*"])],
        ),
        policy(
            "foo/allow-public",
            AuthzAction::Allow,
            vec![paths(&["/public/*", "/admin"])],
        ),
    ]
}

#[tokio::test]
async fn bypass_vectors_never_reach_the_handler() {
    let server = Server::start(admin_and_public(), Some(TestPeer(SLEEP))).await;
    for target in [
        "/admin",
        "//admin",
        "/%2Fadmin",
        "/%2fadmin",
        "/%5Cadmin",
        "/./admin",
        "/a/../admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public%2F..%2Fadmin",
        "/admin/",
        "/%61dmin",
        "/admin?x=1",
        // Case-sensitive like Istio: not the DENY, but the ALLOW policy does not cover it.
        "/ADMIN",
    ] {
        let (status, body) = server.get(target, "httpbin.foo:8000").await;
        assert_eq!(
            (status, body.as_str()),
            (403, "RBAC: access denied"),
            "{target}"
        );
    }
    for target in ["/admin%00", "/admin%zz", "/admin%0a"] {
        let (status, _) = server.get(target, "httpbin.foo").await;
        assert_eq!(status, 400, "{target}");
    }
    // hyper (the `http` crate) drops a `#fragment` before any layer sees the URI, so the policy
    // judges `/admin`, and so does the application (normalize_path itself refuses fragments).
    let (status, _) = server.get("/admin#frag", "httpbin.foo").await;
    assert_eq!(status, 403, "/admin#frag");
    assert_eq!(
        server.handled(),
        0,
        "a refused request reached the application"
    );
}

#[tokio::test]
async fn the_handler_sees_the_path_the_policy_judged() {
    let server = Server::start(admin_and_public(), Some(TestPeer(SLEEP))).await;
    let cases = [
        ("/public/x", "/public/x"),
        ("//public/./a/..//b?q=%2F&r=/../", "/public/b?q=%2F&r=/../"),
        ("/public/%7Euser/%2e/%2A", "/public/~user/%2A"),
        ("/%70ublic\\x", "/public/x"),
        ("/public/x#frag", "/public/x"),
    ];
    for (target, seen) in cases {
        let (status, body) = server.get(target, "httpbin.foo").await;
        assert_eq!((status, body.as_str()), (200, seen), "{target}");
    }
    assert_eq!(server.handled(), cases.len());
}

#[tokio::test]
async fn plaintext_and_mtls_peers() {
    // DENY notPrincipals ["*"]: refuse plaintext. ALLOW only `sleep` from loopback.
    let policies = || {
        vec![
            policy(
                "foo/require-mtls",
                AuthzAction::Deny,
                vec![AuthzRule {
                    from: vec![AuthzSource {
                        not_principals: pats(&["*"]),
                        ..AuthzSource::default()
                    }],
                    ..AuthzRule::default()
                }],
            ),
            policy(
                "foo/allow-sleep",
                AuthzAction::Allow,
                vec![AuthzRule {
                    from: vec![AuthzSource {
                        principals: pats(&["cluster.local/ns/foo/sa/sleep"]),
                        ip_blocks: vec![IpBlock::parse("127.0.0.0/8").unwrap()],
                        ..AuthzSource::default()
                    }],
                    ..AuthzRule::default()
                }],
            ),
        ]
    };
    let plain = Server::start(policies(), None).await;
    assert_eq!(plain.get("/x", "h").await.0, 403);
    let sleep = Server::start(policies(), Some(TestPeer(SLEEP))).await;
    assert_eq!(sleep.get("/x", "h").await, (200, "/x".to_owned()));
    let other = Server::start(policies(), Some(TestPeer("cluster.local/ns/bar/sa/x"))).await;
    assert_eq!(other.get("/x", "h").await.0, 403);
    assert_eq!(plain.handled() + other.handled(), 0);
}

#[tokio::test]
async fn hosts_ports_and_audit() {
    let server = Server::start(vec![], Some(TestPeer(SLEEP))).await;
    let port = server.addr.port();
    let mut policies = snapshot(vec![
        policy(
            "foo/deny-host",
            AuthzAction::Deny,
            vec![AuthzRule {
                to: vec![AuthzOperation {
                    hosts: pats(&["blocked.example"]),
                    ports: vec![port],
                    ..AuthzOperation::default()
                }],
                ..AuthzRule::default()
            }],
        ),
        policy(
            "foo/audit-public",
            AuthzAction::Audit,
            vec![paths(&["/public/*"])],
        ),
        policy(
            "foo/deny-canary",
            AuthzAction::Deny,
            vec![AuthzRule {
                when: vec![AuthzCondition {
                    key: ConditionKey::RequestHeader("x-env".into()),
                    values: pats(&["canary"]),
                    not_values: vec![],
                }],
                ..AuthzRule::default()
            }],
        ),
    ]);
    policies.version = "2".into();
    assert!(server.mesh.apply(policies));
    assert_eq!(server.get("/x", "BLOCKED.example:8000").await.0, 403);
    assert_eq!(server.get("/x", "blocked.example").await.0, 403);
    assert_eq!(server.get("/x", "allowed.example").await.0, 200);
    let (status, body) = server.get("/public/a", "allowed.example").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "/public/a audit=foo/audit-public")
    );
    // Any value of a repeated header, whatever the case of its name.
    let env = "x-env: dev\r\nX-Env: canary\r\n";
    assert_eq!(server.get_with("/x", "h", env).await.0, 403);
    assert_eq!(server.get_with("/x", "h", "X-ENV: dev\r\n").await.0, 200);
}

#[tokio::test]
async fn policies_swap_without_restart() {
    let server = Server::start(vec![], None).await;
    assert_eq!(server.get("/admin", "h").await.0, 200);
    let mut policies = snapshot(admin_and_public());
    policies.version = "2".into();
    assert!(server.mesh.apply(policies));
    assert_eq!(server.get("/admin", "h").await.0, 403);
    let mut open = snapshot(vec![]);
    open.version = "3".into();
    assert!(server.mesh.apply(open));
    assert_eq!(server.get("/admin", "h").await.0, 200);
    assert_eq!(server.handled(), 2);
}

#[tokio::test]
async fn grpc_requests_get_permission_denied() {
    let server = Server::start(admin_and_public(), Some(TestPeer(SLEEP))).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = Request::post(Uri::from_static("http://httpbin.foo:8000/pkg.Svc/Call"))
        .header("content-type", "application/grpc+proto")
        .header("te", "trailers")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["grpc-status"], "7");
    assert_eq!(headers["grpc-message"], "RBAC: access denied");
    assert_eq!(headers["content-type"], "application/grpc");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
    assert_eq!(server.handled(), 0);
}
