//! The examples drain on SIGTERM, what Kubernetes sends: the built `mtls-server` binary gets
//! SIGTERM while requests are in flight, finishes every one of them, and exits 0; `shop` gets
//! it mid-load, lets its orders in flight finish, prints its summary and exits 0.
//! Synchronises on the server's own output (its listening line and one log line per request
//! started), never on sleeps; every wait is bounded.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the server if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on its own connection; returns the whole response.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn sigterm_drains_requests_in_flight_and_exits_0() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtls-server"))
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The listening line goes to stderr, the request logs (tracing's default writer) to stdout.
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let mut server = Running(child);
    let (lines_tx, lines) = mpsc::channel();
    let out_tx = lines_tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if out_tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let next_line = || {
        lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server output before the deadline")
    };
    let addr = loop {
        if let Some(a) = next_line().strip_prefix("mtls-server: listening on ") {
            break a.to_owned();
        }
    };

    // Four requests that take 1.5 s each; SIGTERM once the server has started all of them.
    let n = 4;
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || get(&addr, "/delay/1500"))
        })
        .collect();
    let mut started = 0;
    while started < n {
        if next_line().contains("delay request started") {
            started += 1;
        }
    }
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    for r in requests {
        let response = r.join().unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200") && response.ends_with("ok\n"),
            "an in-flight request completes: {response:?}"
        );
    }
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server exits after draining");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "drained and exited cleanly: {status}"
    );
}

#[test]
fn sigterm_stops_the_shop_load_after_its_orders_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
        // --duration 0: runs until stopped.
        .args(["--json", "--admin", "127.0.0.1:0", "--seed", "7"])
        .args(["--duration", "0", "--rps", "100"])
        .arg("--config")
        .arg(dir.path().join("config"))
        .arg("--certs")
        .arg(dir.path().join("certs"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (out_tx, stdout_reader) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = out_tx.send(out);
    });
    let pid = child.id();
    let mut shop = Running(child);
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    // Mid-load: once 100 orders went through.
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("shop's progress before the deadline");
        let ok = line
            .strip_prefix("progress:")
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ok=")))
            .and_then(|n| n.parse::<u64>().ok());
        if ok.is_some_and(|ok| ok >= 100) {
            break;
        }
    }
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    let out = stdout_reader
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("shop closes its output before the deadline");
    let status = loop {
        if let Some(status) = shop.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "shop exits after draining");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "stopped cleanly: {status}");
    let summary: serde_json::Value = serde_json::from_str(&out).expect("the summary on stdout");
    // No order failed, none was abandoned in flight ("still in flight at exit").
    assert_eq!(
        summary["orders"]["failed"],
        serde_json::json!({}),
        "{summary:#}"
    );
    assert!(
        summary["orders"]["ok"].as_u64().unwrap() >= 100,
        "{summary:#}"
    );
}
