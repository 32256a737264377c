//! `mesh certs issue --dns NAME`: a client outside the mesh (curl, a plain gRPC client) verifies
//! a mesh server by host name. Real parts only: the `mesh` binary mints the identities, a
//! `mesh_tower::serve` server presents one on 127.0.0.1, and a plain rustls client (webpki's
//! host-name check, as curl and gRPC clients make it) connects with the CA's root.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::convert::Infallible;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mesh_core::identity::provider;
use mesh_core::{Mesh, Workload};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn mesh(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mesh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issues `shop/<sa>` into `dir/<sa>` with the given `--dns` names.
fn issue(dir: &Path, sa: &str, dns: &[&str]) {
    let (ca, out) = (dir.join("ca"), dir.join(sa));
    let mut args = vec![
        "certs",
        "issue",
        "--dir",
        ca.to_str().unwrap(),
        "--namespace",
        "shop",
        "--service-account",
        sa,
        "--out",
        out.to_str().unwrap(),
    ];
    for name in dns {
        args.extend(["--dns", name]);
    }
    mesh(&args);
}

/// A mesh server with the identity in `certs`, answering `hello` to every request.
async fn server(certs: &Path) -> std::net::SocketAddr {
    let mesh = Mesh::builder()
        .workload(Workload::new("shop", "checkout"))
        .identity_files(certs)
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hello = tower::service_fn(|_request| async {
        Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
            Bytes::from_static(b"hello"),
        )))
    });
    tokio::spawn(mesh_tower::serve(&mesh, listener, hello).into_future());
    addr
}

/// GET / over TLS to `addr`, verifying the server as `name` against the CA's root (and
/// presenting `client`'s certificate, as `curl --cert` does: mesh servers require one).
async fn get(
    dir: &Path,
    client: &str,
    addr: std::net::SocketAddr,
    name: &str,
) -> Result<String, String> {
    let mut roots = RootCertStore::empty();
    let root = CertificateDer::from_pem_file(dir.join("ca/root-cert.pem")).unwrap();
    roots.add(root).unwrap();
    let chain = CertificateDer::pem_file_iter(dir.join(client).join("cert-chain.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join(client).join("key.pem")).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_string(&mut response))
        .await
        .expect("the server answers")
        .map_err(|e| e.to_string())?;
    Ok(response)
}

#[tokio::test]
async fn dns_names_let_a_plain_tls_client_verify_a_mesh_server_by_host_name() {
    let dir = tempfile::tempdir().unwrap();
    mesh(&[
        "certs",
        "init",
        "--dir",
        dir.path().join("ca").to_str().unwrap(),
    ]);
    issue(dir.path(), "checkout", &["checkout.shop.test", "localhost"]);
    issue(dir.path(), "curl", &[]);

    let addr = server(&dir.path().join("checkout")).await;
    for name in ["checkout.shop.test", "localhost"] {
        let response = get(dir.path(), "curl", addr, name).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("hello"), "{response}");
    }
    // A name the certificate does not carry is refused by the client's host-name check.
    let err = get(dir.path(), "curl", addr, "payment.shop.test")
        .await
        .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}

/// Without `--dns` (what `mesh certs issue` minted before the flag), a host-name check fails:
/// the certificate carries only its SPIFFE ID.
#[tokio::test]
async fn without_dns_names_the_host_name_check_fails() {
    let dir = tempfile::tempdir().unwrap();
    mesh(&[
        "certs",
        "init",
        "--dir",
        dir.path().join("ca").to_str().unwrap(),
    ]);
    issue(dir.path(), "checkout", &[]);
    let addr = server(&dir.path().join("checkout")).await;
    let err = get(dir.path(), "checkout", addr, "localhost")
        .await
        .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}

#[test]
fn an_invalid_dns_name_is_refused_with_its_value() {
    let dir = tempfile::tempdir().unwrap();
    mesh(&[
        "certs",
        "init",
        "--dir",
        dir.path().join("ca").to_str().unwrap(),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["certs", "issue", "--dir"])
        .arg(dir.path().join("ca"))
        .args(["--namespace", "shop", "--service-account", "a", "--out"])
        .arg(dir.path().join("a"))
        .args(["--dns", "not a name"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"not a name\" is not a valid DNS name"),
        "{stderr}"
    );
}
