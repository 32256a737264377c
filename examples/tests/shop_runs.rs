//! The demo as a new user meets it: two demos started side by side both work (each run owns its
//! config directory and ports), a second demo pointed at a directory another one is using is
//! refused with a clear message (and the first keeps working), and a demo whose traffic fails
//! says so and exits 1. Every wait is bounded; processes are killed if a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the process if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shop() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Starts `command`, forwarding its stderr lines (prefixed) to ours and to the receiver.
fn start(mut command: Command, tag: &'static str) -> (Running, mpsc::Receiver<String>) {
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{tag}] {line}");
            let _ = tx.send(line);
        }
    });
    (Running(child), rx)
}

/// Waits for the process to exit (bounded), returning its status and stdout.
fn finish(mut running: Running, deadline: Instant) -> (ExitStatus, String) {
    let mut stdout = String::new();
    if let Some(mut out) = running.0.stdout.take() {
        out.read_to_string(&mut stdout).unwrap();
    }
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            return (status, stdout);
        }
        assert!(Instant::now() < deadline, "the demo did not exit in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The next line satisfying `want`, before `deadline`.
fn wait_line(lines: &mpsc::Receiver<String>, deadline: Instant, want: impl Fn(&str) -> bool) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if want(&line) => return,
            Ok(_) => {}
            Err(e) => panic!("the expected line did not come: {e}"),
        }
    }
}

/// A run's summary shows every order answered and the denials it should.
fn assert_worked(status: ExitStatus, stdout: &str) {
    assert!(status.success(), "exit {status}: {stdout}");
    let summary: Value = serde_json::from_str(stdout).unwrap();
    assert_eq!(
        summary["orders"]["failed"],
        serde_json::json!({}),
        "{summary:#}"
    );
    assert!(summary["orders"]["ok"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(summary["denied"].as_u64().unwrap() > 0, "{summary:#}");
}

/// Before: both runs wrote `./shop-config` and the second's ServiceEntries pointed the first's
/// clients at the second's servers, whose CA the first does not trust: every call failed, and
/// the first still exited 0.
#[test]
fn two_demos_at_once_both_work() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let cwd = tempfile::tempdir().unwrap();
    let run = |tag, duration: &str| {
        let mut command = shop();
        command
            .current_dir(cwd.path())
            .args(["--json", "--rps", "40", "--duration", duration]);
        start(command, tag)
    };
    let (first, first_lines) = run("first", "8");
    wait_line(&first_lines, deadline, |l| l.starts_with("progress:"));
    // The second starts while the first is sending traffic, in the same working directory.
    let (second, _second_lines) = run("second", "5");
    let (first_status, first_out) = finish(first, deadline);
    let (second_status, second_out) = finish(second, deadline);
    assert_worked(first_status, &first_out);
    assert_worked(second_status, &second_out);
    // Each run's config was its own temporary directory, gone with it.
    assert!(!cwd.path().join("shop-config").exists());
}

/// `--config DIR` while another demo uses DIR: refused, naming the directory and the way out;
/// the first demo is untouched.
#[test]
fn a_second_demo_on_a_busy_config_directory_is_refused_clearly() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let mut command = shop();
    command
        .args(["--json", "--duration", "5", "--rps", "40", "--config"])
        .arg(&config);
    let (first, first_lines) = start(command, "first");
    wait_line(&first_lines, deadline, |l| l.starts_with("progress:"));

    let mut command = shop();
    command
        .args(["--json", "--duration", "5", "--config"])
        .arg(&config);
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in use by another shop demo") && stderr.contains("--config"),
        "{stderr}"
    );

    let (status, stdout) = finish(first, deadline);
    assert_worked(status, &stdout);
    assert!(
        !config.join(".shop.lock").exists(),
        "the lock is released at exit"
    );
}

/// A port plan for the separate-process mode unlikely to collide with other tests: 16 ports
/// from a base derived from this process' id.
fn base_port() -> u16 {
    let slot = u16::try_from(std::process::id() % 1500).unwrap();
    30000 + slot * 20
}

/// The multi-process demo loses checkout (killed) while the load runs: the load generator's
/// orders fail, and it says so and exits 1 instead of printing a summary and exiting 0.
#[test]
fn a_demo_whose_backend_is_killed_exits_non_zero() {
    let deadline = Instant::now() + Duration::from_secs(90);
    let dir = tempfile::tempdir().unwrap();
    let base = base_port().to_string();
    let common = |command: &mut Command| {
        command
            .arg("--config")
            .arg(dir.path().join("config"))
            .arg("--certs")
            .arg(dir.path().join("certs"))
            .args(["--base-port", base.as_str()]);
    };
    let mut prepare = shop();
    prepare.arg("--prepare");
    common(&mut prepare);
    let out = prepare.output().unwrap();
    assert!(out.status.success(), "{out:?}");

    let mut servers = Vec::new();
    let mut checkout = None;
    for service in [
        "payment",
        "inventory-v1",
        "inventory-v2",
        "checkout",
        "frontend",
    ] {
        let mut command = shop();
        command.args(["--service", service]);
        common(&mut command);
        let (running, lines) = start(command, "server");
        wait_line(&lines, deadline, |l| l.contains("serving on"));
        if service == "checkout" {
            checkout = Some(running);
        } else {
            servers.push(running);
        }
    }
    let mut command = shop();
    command.args([
        "--service",
        "loadgen",
        "--json",
        "--duration",
        "8",
        "--rps",
        "40",
    ]);
    common(&mut command);
    let (loadgen, lines) = start(command, "loadgen");
    wait_line(&lines, deadline, |l| {
        l.starts_with("progress:") && !l.contains(" ok=0 ")
    });
    drop(checkout); // killed

    let (status, stdout) = finish(loadgen, deadline);
    assert_eq!(status.code(), Some(1), "{stdout}");
    // The reader thread ends at the closed pipe, which ends the channel.
    let mut saw_message = false;
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
        saw_message |= line.contains("shop: traffic failed:");
    }
    assert!(saw_message, "the demo says its traffic failed");
    // The summary is still printed, with the failures in it.
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_ne!(
        summary["orders"]["failed"],
        serde_json::json!({}),
        "{summary:#}"
    );
    drop(servers);
}
