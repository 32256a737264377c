//! The server roles, each a child process of the benchmark so its CPU and memory are its own:
//! the same greeter over h2c (arms A and C), over plain rustls mutual TLS (A′), or behind mesh's
//! inbound stack (B); and the plain-HTTP echo application (an axum router) over plain rustls
//! mutual TLS (A′-http) or behind `mesh_tower::serve` (B-http).
//!
//! A server binds 127.0.0.1:0, prints `listening <port>` on stdout, and serves until its stdin
//! closes (the benchmark exiting, however it exits).

use std::io::Write as _;
use std::path::Path;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_benches::e2e::http::echo_router;
use mesh_benches::e2e::serve::serve_tls_h2;
use mesh_core::identity::{Credentials, IdentityFiles, TlsIdentity};
use mesh_core::{Mesh, Workload};
use rustls_pki_types::UnixTime;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tower::ServiceExt as _;

use crate::error::BenchError;
use crate::setup::{GREETER_SA, MESH_SERVER_HTTP_YAML, MESH_SERVER_YAML, NAMESPACE};
use mesh_benches::e2e::greeter::routes;

/// How a server role serves the greeter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerMode {
    /// HTTP/2 over cleartext TCP.
    Plain,
    /// HTTP/2 over rustls with client certificates required (no mesh).
    Tls,
    /// mesh's inbound stack: mTLS by PeerAuthentication, authorization, telemetry.
    Mesh,
    /// The echo application over HTTP/2 on rustls with client certificates required (no mesh).
    TlsHttp,
    /// The echo application behind `mesh_tower::serve`, with the same policies as `Mesh`.
    MeshHttp,
}

/// Runs a server role until stdin closes. `dir` holds the identities and configs written by
/// the benchmark.
pub fn run(mode: ServerMode, dir: &Path) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {port}")?;
        out.flush()?;
        drop(out);
        let serve = async {
            match mode {
                ServerMode::Plain => serve_plain(listener, routes()).await,
                ServerMode::Tls => serve_tls(listener, server_identity(dir)?, routes()).await,
                ServerMode::Mesh => {
                    let mesh = server_mesh(dir, MESH_SERVER_YAML).await?;
                    mesh_tonic::serve(&mesh, listener, routes())
                        .options(serve_options())
                        .await?;
                    Ok(())
                }
                ServerMode::TlsHttp => {
                    let config = server_identity(dir)?.server_config();
                    serve_tls_h2(listener, config, echo_router()).await?;
                    Ok(())
                }
                ServerMode::MeshHttp => {
                    let mesh = server_mesh(dir, MESH_SERVER_HTTP_YAML).await?;
                    mesh_tower::serve(&mesh, listener, echo_router())
                        .options(serve_options())
                        .await?;
                    Ok(())
                }
            }
        };
        tokio::select! {
            result = serve => result,
            () = stdin_closed() => Ok(()),
        }
    })
}

/// The greeter's mesh, with a Prometheus recorder installed: STRICT mutual TLS and the
/// authorization policy of `config` (a file in `dir`), the greeter's identity.
async fn server_mesh(dir: &Path, config: &str) -> Result<Mesh, BenchError> {
    mesh_tower::telemetry::install_prometheus()?;
    Mesh::builder()
        .workload(Workload::new(NAMESPACE, GREETER_SA))
        .identity(server_identity(dir)?)
        .config_path(dir.join(config))
        .watch(false)
        .build()
        .await
        .map_err(BenchError::config)
}

/// mesh's server options in every mesh arm: access log off (Istio's default).
fn serve_options() -> mesh_tower::ServeOptions {
    let telemetry = mesh_tower::telemetry::Telemetry::new()
        .access_log(mesh_tower::telemetry::AccessLogMode::Off);
    mesh_tower::ServeOptions::new().telemetry(telemetry)
}

/// Resolves when stdin reaches end of file or fails.
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// The greeter's identity, from the Istio file layout under `dir/greeter`.
pub fn server_identity(dir: &Path) -> Result<TlsIdentity, BenchError> {
    identity(&dir.join(GREETER_SA))
}

/// A workload identity from the Istio file layout in `dir`.
pub fn identity(dir: &Path) -> Result<TlsIdentity, BenchError> {
    let credentials = Credentials::load(&IdentityFiles::in_dir(dir), UnixTime::now())?;
    Ok(TlsIdentity::new(credentials)?)
}

async fn serve_plain(listener: TcpListener, routes: Routes) -> Result<(), BenchError> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let routes = routes.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            serve_h2(tcp, routes).await;
        });
    }
}

async fn serve_tls(
    listener: TcpListener,
    identity: TlsIdentity,
    routes: Routes,
) -> Result<(), BenchError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config());
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, routes) = (acceptor.clone(), routes.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            if let Ok(tls) = acceptor.accept(tcp).await {
                serve_h2(tls, routes).await;
            }
        });
    }
}

/// Serves HTTP/2 on one connection until the client closes it.
async fn serve_h2<IO>(io: IO, routes: Routes)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| routes.clone().oneshot(request));
    let _ = http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}
