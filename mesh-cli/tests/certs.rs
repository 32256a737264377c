//! `mesh certs init` and `mesh certs issue`, run as a user would.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use mesh_core::identity::{Credentials, IdentityFiles};
use rustls_pki_types::UnixTime;

fn mesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_then_issue_writes_a_loadable_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    let out = tmp.path().join("reviews");
    let ca = ca.to_str().unwrap();

    let init = mesh(&[
        "certs",
        "init",
        "--dir",
        ca,
        "--trust-domain",
        "example.org",
    ]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    assert!(text(&init.stdout).contains("trust domain example.org"));

    let issue = mesh(&[
        "certs",
        "issue",
        "--dir",
        ca,
        "--namespace",
        "bookinfo",
        "--service-account",
        "reviews",
        "--out",
        out.to_str().unwrap(),
        "--ttl",
        "2h",
    ]);
    assert!(issue.status.success(), "{}", text(&issue.stderr));
    assert!(
        text(&issue.stdout).starts_with("issued spiffe://example.org/ns/bookinfo/sa/reviews"),
        "{}",
        text(&issue.stdout)
    );

    let creds = Credentials::load(&IdentityFiles::in_dir(&out), UnixTime::now()).unwrap();
    assert_eq!(
        creds.spiffe_id().as_str(),
        "spiffe://example.org/ns/bookinfo/sa/reviews"
    );
    let lifetime = creds.leaf_not_after().unix_seconds() - creds.leaf_not_before().unix_seconds();
    // 2h, plus the minute issued certificates are backdated for clock skew.
    assert_eq!(lifetime, 2 * 3600 + 60);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn init_refuses_to_overwrite_a_ca_and_issue_needs_one() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().to_str().unwrap();
    assert!(mesh(&["certs", "init", "--dir", ca]).status.success());
    let again = mesh(&["certs", "init", "--dir", ca]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already holds a CA; pass --force"));
    assert!(
        mesh(&["certs", "init", "--dir", ca, "--force"])
            .status
            .success()
    );

    let empty = tempfile::tempdir().unwrap();
    let issue = mesh(&[
        "certs",
        "issue",
        "--dir",
        empty.path().to_str().unwrap(),
        "--namespace",
        "a",
        "--service-account",
        "b",
        "--out",
        tmp.path().join("out").to_str().unwrap(),
    ]);
    assert!(!issue.status.success());
    assert!(
        text(&issue.stderr).contains("ca-cert.pem"),
        "{}",
        text(&issue.stderr)
    );

    let bad_ttl = mesh(&[
        "certs",
        "issue",
        "--dir",
        ca,
        "--namespace",
        "a",
        "--service-account",
        "b",
        "--out",
        "x",
        "--ttl",
        "soon",
    ]);
    assert!(!bad_ttl.status.success());
    assert!(
        text(&bad_ttl.stderr).contains("--ttl"),
        "{}",
        text(&bad_ttl.stderr)
    );
}
