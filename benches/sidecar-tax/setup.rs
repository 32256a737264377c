//! Setting up a run: the dev CA and identities, the Istio configs (from
//! [`mesh_benches::e2e::config`], shared with the in-process benchmarks), and the child processes of
//! each arm (servers spawned from this binary with `--role server`, and Envoy).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use mesh_core::identity::CertificateAuthority;

use crate::error::BenchError;
use crate::server::ServerMode;

pub use mesh_benches::e2e::config::{
    CLIENT_SA, GREETER_SA, NAMESPACE, SERVER_HTTP_YAML, SERVER_YAML, TRUST_DOMAIN,
    client_http_yaml, client_yaml,
};

/// The server-side Istio config (PeerAuthentication and AuthorizationPolicy), in the run dir.
pub const MESH_SERVER_YAML: &str = "greeter.yaml";
/// The same for the plain-HTTP arm (the rule names the echo path).
pub const MESH_SERVER_HTTP_YAML: &str = "greeter-http.yaml";

/// Identities last this long (the run is far shorter).
const CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a child gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Writes the CA's identities for the client and the greeter (Istio's file layout, in
/// `dir/<service account>`) and the server's Istio config.
pub fn write_run_dir(dir: &Path) -> Result<(), BenchError> {
    let ca = CertificateAuthority::generate(TRUST_DOMAIN)?;
    for sa in [CLIENT_SA, GREETER_SA] {
        ca.issue(NAMESPACE, sa, CERT_TTL)?
            .write_istio_layout(dir.join(sa))?;
    }
    std::fs::write(dir.join(MESH_SERVER_YAML), SERVER_YAML)?;
    std::fs::write(dir.join(MESH_SERVER_HTTP_YAML), SERVER_HTTP_YAML)?;
    Ok(())
}

/// A child process of an arm, stopped when dropped.
#[derive(Debug)]
pub struct Process {
    /// What it is (`server`, `envoy (client side)`, …).
    pub name: String,
    /// Whether it is a proxy.
    pub proxy: bool,
    child: Child,
    /// The server's stdin: closing it stops the server.
    stdin: Option<ChildStdin>,
}

impl Process {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Envoy, or a server that did not stop: this child only, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns this binary as a server in `mode` and returns it with its port.
pub fn spawn_server(mode: ServerMode, dir: &Path) -> Result<(Process, u16), BenchError> {
    let exe = std::env::current_exe()?;
    let mode_arg = match mode {
        ServerMode::Plain => "plain",
        ServerMode::Tls => "tls",
        ServerMode::Mesh => "mesh",
        ServerMode::TlsHttp => "tls-http",
        ServerMode::MeshHttp => "mesh-http",
    };
    let mut child = Command::new(exe)
        .args(["--role", "server", "--mode", mode_arg, "--dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Child("server without stdout".into()))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| BenchError::Child(format!("{mode_arg} server said {line:?}")))?;
    let process = Process {
        name: format!("server ({mode_arg})"),
        proxy: false,
        child,
        stdin,
    };
    Ok((process, port))
}

/// A free port on 127.0.0.1 (bound, then released for Envoy to take).
pub fn free_port() -> Result<u16, BenchError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts Envoy with `bootstrap` (one worker, like a sidecar) and waits until it accepts on
/// `port`.
pub fn spawn_envoy(
    envoy: &Path,
    name: &str,
    bootstrap: &str,
    dir: &Path,
    port: u16,
) -> Result<Process, BenchError> {
    let config: PathBuf = dir.join(format!("{}.yaml", name.replace(' ', "-")));
    std::fs::File::create(&config)?.write_all(bootstrap.as_bytes())?;
    let log = std::fs::File::create(dir.join(format!("{}.log", name.replace(' ', "-"))))?;
    let child = Command::new(envoy)
        .arg("-c")
        .arg(&config)
        .args([
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| BenchError::Child(format!("cannot start {}: {e}", envoy.display())))?;
    let mut process = Process {
        name: name.to_owned(),
        proxy: true,
        child,
        stdin: None,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect(addr).is_ok() {
            return Ok(process);
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            return Err(BenchError::Child(format!(
                "{name} exited ({status}); see {}",
                dir.join(format!("{}.log", name.replace(' ', "-")))
                    .display()
            )));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Child(format!(
                "{name} did not listen on {port}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
