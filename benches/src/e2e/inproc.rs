//! One arm in one process, for instruction counts: the client on the calling thread, the server
//! on a thread of its own, each on a current-thread tokio runtime, so every instruction of a call
//! runs on one of two threads and a per-thread profiler (callgrind with `--separate-threads`)
//! gives the client's and the server's share apart.
//!
//! What is measured is delimited by two functions that never inline, for a profiler's
//! function toggle (callgrind `--toggle-collect`): [`InProcess::measured_calls`] on the client
//! thread runs the calls to completion, and [`measured_serving`] on the server thread drives
//! the server's runtime for as long as a [`Window`] is open. Set-up (certificates, handshakes,
//! warm-up calls) happens outside both.

use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

use super::E2eError;
use super::config::{SERVER_HTTP_YAML, SERVER_YAML, client_http_yaml, client_yaml};
use super::grpc::{self, GrpcClient};
use super::http::{HttpClient, echo_router};
use super::mesh::{Identities, client_mesh, greeter_id, mesh_client, server_mesh};
use super::serve::serve_tls_h2;

/// Calls made by [`InProcess::start`] before anything is measured: connections open, caches
/// (metric handles, peer metadata, service-graph edges) filled.
pub const WARM_UP_CALLS: usize = 20;

/// The arms, as `sidecar-tax` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// A′: tonic client over rustls mutual TLS → hyper HTTP/2 server with tonic routes.
    GrpcBare,
    /// B: tonic client over `MeshChannel` → `mesh_tonic::serve`.
    GrpcMesh,
    /// A′-http: hyper HTTP/2 client over rustls mutual TLS → hyper HTTP/2 server with an axum
    /// router.
    HttpBare,
    /// B-http: `MeshClient` → `mesh_tower::serve` with the same axum router.
    HttpMesh,
}

impl Arm {
    fn uses_mesh(self) -> bool {
        matches!(self, Self::GrpcMesh | Self::HttpMesh)
    }
}

#[derive(Clone, Debug)]
enum Client {
    Grpc(GrpcClient),
    Http(HttpClient),
}

/// One arm running in this process: its server thread and, on the caller's thread, its client.
#[derive(Debug)]
pub struct InProcess {
    arm: Arm,
    runtime: Runtime,
    client: Client,
    payload: Bytes,
    server: ServerThread,
}

impl InProcess {
    /// Starts `arm`'s server on its own thread and its client on the caller's, with one
    /// connection, and makes [`WARM_UP_CALLS`] calls of `payload_len` bytes each way. For the
    /// mesh arms a Prometheus recorder is installed (once per process), as an application
    /// would.
    pub fn start(arm: Arm, payload_len: usize) -> Result<Self, E2eError> {
        let identities = Identities::generate()?;
        if arm.uses_mesh() {
            // Installed once: a second arm in the same process finds it in place.
            let _ = mesh_tower::telemetry::install_prometheus();
        }
        let server = ServerThread::start(arm, &identities)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let addr = server.addr;
        let client = runtime.block_on(async {
            Ok::<_, E2eError>(match arm {
                Arm::GrpcBare => {
                    Client::Grpc(grpc::bare(addr, &identities.client, greeter_id()?).await?)
                }
                Arm::GrpcMesh => {
                    let mesh = client_mesh(&client_yaml(addr.port()))?;
                    Client::Grpc(grpc::mesh(mesh_client(&mesh, &identities.client, 1))?)
                }
                Arm::HttpBare => {
                    Client::Http(HttpClient::bare(addr, &identities.client, greeter_id()?).await?)
                }
                Arm::HttpMesh => {
                    let mesh = client_mesh(&client_http_yaml(addr.port()))?;
                    Client::Http(HttpClient::Mesh(mesh_client(&mesh, &identities.client, 1)))
                }
            })
        })?;
        let arm = Self {
            arm,
            runtime,
            client,
            payload: Bytes::from(vec![0x5a; payload_len]),
            server,
        };
        arm.calls(WARM_UP_CALLS)?;
        Ok(arm)
    }

    /// Which arm this is.
    pub fn arm(&self) -> Arm {
        self.arm
    }

    /// The server's thread.
    pub fn server(&self) -> &ServerThread {
        &self.server
    }

    /// `n` calls one after the other, not measured (warm-up).
    pub fn calls(&self, n: usize) -> Result<(), E2eError> {
        self.runtime.block_on(self.call_n(n))
    }

    /// `n` calls one after the other: the client's measured region. Never inlined, so a
    /// profiler can toggle on it.
    #[inline(never)]
    pub fn measured_calls(&self, n: usize) -> Result<(), E2eError> {
        self.runtime.block_on(self.call_n(n))
    }

    async fn call_n(&self, n: usize) -> Result<(), E2eError> {
        for _ in 0..n {
            let echoed = match &self.client {
                Client::Grpc(client) => grpc::say_hello(client, self.payload.clone()).await?,
                Client::Http(client) => client.echo(self.payload.clone()).await?,
            };
            if echoed != self.payload.len() {
                return Err(E2eError::Call(format!(
                    "{echoed} bytes echoed, {} sent",
                    self.payload.len()
                )));
            }
        }
        // Let the client's connection task finish what the last response left (stream
        // bookkeeping, window updates) inside the region that measured it.
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

enum Command {
    Window {
        entered: std_mpsc::Sender<()>,
        stop: oneshot::Receiver<()>,
    },
}

/// The server's thread: a current-thread runtime serving the arm, idle (not measured) except
/// while a [`Window`] is open. Stops when dropped.
#[derive(Debug)]
pub struct ServerThread {
    addr: SocketAddr,
    commands: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Window")
    }
}

/// An open measurement window on the server thread; [`Window::close`] ends it.
#[derive(Debug)]
pub struct Window {
    stop: oneshot::Sender<()>,
}

impl Window {
    /// Ends the window: the server thread leaves [`measured_serving`] once it has handled what
    /// is ready.
    pub fn close(self) {
        let _ = self.stop.send(());
    }
}

impl ServerThread {
    fn start(arm: Arm, identities: &Identities) -> Result<Self, E2eError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (commands, mut receiver) = mpsc::unbounded_channel();
        let (ready, started) = std_mpsc::channel::<Result<(), E2eError>>();
        let identity = identities.greeter.clone();
        let thread = std::thread::Builder::new()
            .name("server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e.into()));
                        return;
                    }
                };
                let spawned = runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let config = identity.server_config();
                    match arm {
                        Arm::GrpcBare => {
                            tokio::spawn(serve_tls_h2(listener, config, super::greeter::routes()));
                        }
                        Arm::HttpBare => {
                            tokio::spawn(serve_tls_h2(listener, config, echo_router()));
                        }
                        Arm::GrpcMesh => {
                            let mesh = server_mesh(&identity, SERVER_YAML).await?;
                            tokio::spawn(
                                mesh_tonic::serve(&mesh, listener, super::greeter::routes())
                                    .options(serve_options())
                                    .into_future(),
                            );
                        }
                        Arm::HttpMesh => {
                            let mesh = server_mesh(&identity, SERVER_HTTP_YAML).await?;
                            tokio::spawn(
                                mesh_tower::serve(&mesh, listener, echo_router())
                                    .options(serve_options())
                                    .into_future(),
                            );
                        }
                    }
                    Ok::<_, E2eError>(())
                });
                let failed = spawned.is_err();
                let _ = ready.send(spawned);
                if failed {
                    return;
                }
                while let Some(Command::Window { entered, stop }) =
                    runtime.block_on(receiver.recv())
                {
                    measured_serving(&runtime, &entered, stop);
                }
            })?;
        match started.recv() {
            Ok(Ok(())) => Ok(Self {
                addr,
                commands: Some(commands),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(E2eError::Call("the server thread stopped".into())),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a measurement window: returns once the server thread is inside
    /// [`measured_serving`].
    pub fn open_window(&self) -> Result<Window, E2eError> {
        let (entered, inside) = std_mpsc::channel();
        let (stop, stopped) = oneshot::channel();
        let sent = self.commands.as_ref().map(|c| {
            c.send(Command::Window {
                entered,
                stop: stopped,
            })
        });
        if !matches!(sent, Some(Ok(()))) || inside.recv().is_err() {
            return Err(E2eError::Call("the server thread stopped".into()));
        }
        Ok(Window { stop })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        // The server thread's loop ends when its command channel closes.
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The server's measured region: drives the server's runtime until `stop`. Never inlined, so a
/// profiler can toggle on it.
#[inline(never)]
pub fn measured_serving(
    runtime: &Runtime,
    entered: &std_mpsc::Sender<()>,
    stop: oneshot::Receiver<()>,
) {
    let _ = entered.send(());
    let _ = runtime.block_on(stop);
}

/// The server options of the mesh arms, as `sidecar-tax` runs them: access log off.
fn serve_options() -> mesh_tower::ServeOptions {
    mesh_tower::ServeOptions::new().telemetry(
        mesh_tower::telemetry::Telemetry::new()
            .access_log(mesh_tower::telemetry::AccessLogMode::Off),
    )
}
