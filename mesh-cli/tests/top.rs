//! `mesh top` against real admin endpoints on 127.0.0.1.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime};

use mesh_core::model::Snapshot;
use mesh_core::telemetry::{PeerWorkload, Reporter, RequestRecord};
use mesh_core::{BuildContext, Mesh, Workload};
use mesh_tower::admin::{AdminState, serve};
use mesh_tower::telemetry::ServiceGraph;
use tokio::time::Instant;

fn workload(name: &str, version: &str) -> PeerWorkload {
    PeerWorkload::from_workload(
        &Workload::new("default", name).labels([("version", version)]),
        "Kubernetes",
    )
}

fn call(src: &PeerWorkload, dst: &PeerWorkload, code: u16) -> RequestRecord {
    let mut r = RequestRecord::new(Reporter::Source, SystemTime::now());
    r.response_code = Some(code);
    r.duration = Duration::from_millis(20);
    r.source = src.clone();
    r.destination = dst.clone();
    r
}

fn admin(rt: &tokio::runtime::Runtime, graph: ServiceGraph) -> SocketAddr {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin");
        let addr = listener.local_addr().expect("admin address");
        let mesh = Mesh::from_snapshot(BuildContext::default(), Snapshot::empty());
        tokio::spawn(serve(mesh, listener, AdminState::new().graph(graph)));
        addr
    })
}

#[test]
fn top_once_prints_the_merged_table() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (front, reviews, ratings) = (
        workload("productpage", "v1"),
        workload("reviews", "v2"),
        workload("ratings", "v1"),
    );
    let (a, b) = rt.block_on(async { (ServiceGraph::default(), ServiceGraph::default()) });
    for i in 0..10 {
        a.record(&call(&front, &reviews, 200), Instant::now());
        b.record(
            &call(&reviews, &ratings, if i < 5 { 503 } else { 200 }),
            Instant::now(),
        );
    }
    let (a_addr, b_addr) = (admin(&rt, a), admin(&rt, b));
    let out = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["top", "--once", "--admin"])
        .arg(a_addr.to_string())
        .arg(format!("http://{b_addr}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("2 edge(s)") && lines[0].contains("2 process(es)"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("SOURCE"));
    let ratings_row = lines
        .iter()
        .find(|l| l.contains("default/reviews/v2") && l.contains("default/ratings/v1"))
        .unwrap();
    assert!(ratings_row.contains("50.00"), "{ratings_row}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("default/productpage/v1"))
    );
    assert!(!stdout.contains('\x1b'), "--once prints no escape codes");
}

#[test]
fn top_once_fails_when_no_admin_answers() {
    // A port bound but not listening: connections to it are refused for as long as `reserved`
    // lives, and no other socket can take it. (A listener bound and dropped could hand its port
    // to the admin server the other test of this binary starts at the same time.)
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = reserved.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["top", "--once", "--admin", &dead.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("error: http://"), "{stdout}");
}
