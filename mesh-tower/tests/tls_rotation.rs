//! Rotation under traffic: leaves rotate on both sides while long-lived HTTP/2 connections carry
//! requests, and not one request fails; new connections use the new certificates; after a root
//! change a peer holding only an old-root certificate is refused.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh_core::identity::{
    CertificateAuthority, ExpectedIdentities, IdentityFiles, IdentityWatcher, IssuedIdentity,
    PeerCertError,
};
use mesh_core::model::MtlsMode;
use mesh_tower::tls::{TlsAcceptor, TlsConnector, TlsError};
use support::*;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

const ROTATIONS: u32 = 20;
const CONNECTIONS: usize = 4;
/// Bound on any one wait (a rotation landing, traffic progressing).
const WAIT: Duration = Duration::from_secs(10);
/// Bound on the traffic loop, whatever happens.
const MAX_REQUESTS: u64 = 1_000_000;

struct Side {
    dir: tempfile::TempDir,
    watcher: IdentityWatcher,
    generation: u32,
}

impl Side {
    async fn new(issued: &IssuedIdentity) -> Self {
        let dir = tempfile::tempdir().unwrap();
        k8s_publish(dir.path(), 0, issued);
        let watcher = IdentityWatcher::builder(IdentityFiles::in_dir(dir.path()))
            .debounce(Duration::from_millis(10))
            .start()
            .await
            .unwrap();
        Self {
            dir,
            watcher,
            generation: 0,
        }
    }

    /// Publishes `issued` and waits until the watcher has swapped it in.
    async fn rotate(&mut self, issued: &IssuedIdentity) {
        let mut changes = self.watcher.subscribe();
        self.generation += 1;
        k8s_publish(self.dir.path(), self.generation, issued);
        timeout(WAIT, changes.changed())
            .await
            .expect("rotation not confirmed")
            .unwrap();
        assert_eq!(
            self.leaf(),
            first_der(&issued.cert_chain_pem),
            "the watcher holds the published leaf"
        );
    }

    fn leaf(&self) -> Vec<u8> {
        self.watcher.current().credentials().cert_chain()[0].to_vec()
    }
}

fn first_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn with_roots(mut issued: IssuedIdentity, cas: &[&CertificateAuthority]) -> IssuedIdentity {
    issued.roots_pem = cas.iter().map(|ca| ca.roots_pem()).collect();
    issued
}

/// Connects with the client side's current identity; the server leaf it saw, and an h2 client.
async fn connect(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
) -> Result<(Vec<u8>, H2), TlsError> {
    let tls = connector
        .connect(
            TcpStream::connect(addr).await.unwrap(),
            sni(),
            &ExpectedIdentities::any_in_trust_domain(),
        )
        .await?;
    let server_leaf = tls.stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    Ok((server_leaf, h2_client(tls.stream).await))
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Sends requests round-robin over `clients` until `stop` flips, publishing the success count.
fn spawn_traffic(
    mut clients: Vec<H2>,
    counts: Arc<Counts>,
    progress: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for i in 0..MAX_REQUESTS {
            if *stop.borrow() {
                return;
            }
            let client = &mut clients[i as usize % CONNECTIONS];
            match get(client, "/whoami").await {
                Ok((200, body)) if body == "cluster.local/ns/default/sa/productpage" => {
                    let ok = counts.ok.fetch_add(1, Ordering::Relaxed) + 1;
                    progress.send_replace(ok);
                }
                other => {
                    eprintln!("request failed: {other:?}");
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

/// Waits until the traffic loop has completed `n` more requests.
async fn traffic_advances(progress: &mut watch::Receiver<u64>, n: u64) {
    let from = *progress.borrow_and_update();
    timeout(WAIT, progress.wait_for(|ok| *ok >= from + n))
        .await
        .expect("traffic stalled")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_traffic_fails_no_request() {
    let ca1 = ca("cluster.local");
    let mut server = Side::new(&ca1.issue("default", "reviews", HOUR).unwrap()).await;
    let mut client = Side::new(&ca1.issue("default", "productpage", HOUR).unwrap()).await;
    let acceptor = TlsAcceptor::new(server.watcher.clone());
    let connector = TlsConnector::new(client.watcher.clone());
    let (addr, mut accept_errors) = spawn_server(acceptor, MtlsMode::Strict).await;

    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(connect(&connector, addr).await.unwrap().1);
    }
    let counts = Arc::new(Counts::default());
    let (progress_tx, mut progress) = watch::channel(0);
    let (stop_tx, stop) = watch::channel(false);
    let traffic = spawn_traffic(clients, counts.clone(), progress_tx, stop);

    for round in 0..ROTATIONS {
        traffic_advances(&mut progress, 10).await;
        if round % 2 == 0 {
            server
                .rotate(&ca1.issue("default", "reviews", HOUR).unwrap())
                .await;
        } else {
            client
                .rotate(&ca1.issue("default", "productpage", HOUR).unwrap())
                .await;
        }
        // A new connection presents and sees the new certificates.
        let (server_leaf, mut fresh) = connect(&connector, addr).await.unwrap();
        assert_eq!(server_leaf, server.leaf());
        assert_eq!(get(&mut fresh, "/whoami").await.unwrap().0, 200);
    }
    traffic_advances(&mut progress, 10).await;

    // Root rotation, the safe way: bundles carry both roots while leaves move over.
    let ca2 = ca("cluster.local");
    client
        .rotate(&with_roots(
            ca1.issue("default", "productpage", HOUR).unwrap(),
            &[&ca1, &ca2],
        ))
        .await;
    server
        .rotate(&with_roots(
            ca2.issue("default", "reviews", HOUR).unwrap(),
            &[&ca1, &ca2],
        ))
        .await;
    let (_, mut fresh) = connect(&connector, addr).await.unwrap();
    assert_eq!(get(&mut fresh, "/whoami").await.unwrap().0, 200);

    // The server drops the old root: a client still holding an old-root leaf is refused...
    server
        .rotate(&ca2.issue("default", "reviews", HOUR).unwrap())
        .await;
    let refused = connect(&connector, addr).await;
    if let Ok((_, mut conn)) = refused {
        // TLS 1.3: the client's half finished; the refusal shows on first use.
        assert!(get(&mut conn, "/whoami").await.is_err());
    }
    let err = timeout(WAIT, accept_errors.recv()).await.unwrap().unwrap();
    assert!(
        matches!(err, TlsError::PeerCertificate(PeerCertError::UntrustedCa)),
        "{err}"
    );
    // ...until it rotates to a new-root leaf.
    client
        .rotate(&with_roots(
            ca2.issue("default", "productpage", HOUR).unwrap(),
            &[&ca2],
        ))
        .await;
    let (_, mut fresh) = connect(&connector, addr).await.unwrap();
    assert_eq!(get(&mut fresh, "/whoami").await.unwrap().0, 200);

    // Long-lived connections made before any of this kept working throughout.
    traffic_advances(&mut progress, 10).await;
    stop_tx.send_replace(true);
    traffic.await.unwrap();
    let ok = counts.ok.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok >= 10 * u64::from(ROTATIONS), "only {ok} requests");
    assert_eq!(server.watcher.status().borrow().refused, 0);
    assert_eq!(client.watcher.status().borrow().refused, 0);
}
