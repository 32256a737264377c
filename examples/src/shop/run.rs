//! The three ways to run: everything in this process ([`all`]), one workload ([`one`]), or only
//! writing the directories separate processes share ([`prepare`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_core::Mesh;
use mesh_tower::admin::{self, AdminState, PeerClient};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::{GraphWindow, ServiceGraph, Telemetry, install_prometheus};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::checkout::canary_weights;
use super::loadgen::{self, Load};
use super::lock::{self, ConfigLock};
use super::node::{self, Shared};
use super::plan::{Ports, Service};
use super::summary::Summary;
use super::{Args, Error, certs, config, verdict};

/// The port plan of separate processes when `--base-port` is not given.
const DEFAULT_BASE_PORT: u16 = 17000;
/// How long the load generator waits for the servers of separate processes to listen.
const WAIT_FOR_SERVERS: Duration = Duration::from_secs(30);
/// The config directory separate processes share when `--config` is not given.
const SHARED_CONFIG: &str = "shop-config";
/// The admin endpoint of a single-process run, when free.
const DEFAULT_ADMIN: &str = "127.0.0.1:15000";

/// The config directory of separate processes: `--config`, or `shop-config`.
fn shared_config(args: &Args) -> PathBuf {
    args.config
        .clone()
        .unwrap_or_else(|| PathBuf::from(SHARED_CONFIG))
}

/// Writes the config and certificates directories for separate processes.
pub fn prepare(args: &Args) -> Result<(), Error> {
    let certs_dir = args
        .certs
        .clone()
        .unwrap_or_else(|| PathBuf::from("shop-certs"));
    certs::prepare(&certs_dir)?;
    let ports = Ports::plan(fixed_base_port(args)?);
    let config_dir = shared_config(args);
    lock::check_free(&config_dir)?;
    report_config(&config_dir, &ports)?;
    eprintln!("shop: identities in {}", certs_dir.display());
    Ok(())
}

/// Every workload in this process, on free ports (or the `--base-port` plan), then the load;
/// an error when requests failed (after the summary).
pub async fn all(args: &Args) -> Result<(), Error> {
    // This run's config directory, which no other demo writes into while it runs.
    let config_temp;
    let (config_dir, _lock) = match &args.config {
        Some(dir) => (dir.clone(), Some(ConfigLock::acquire(dir)?)),
        None => {
            config_temp = tempfile::Builder::new()
                .prefix("shop-config-")
                .tempdir()
                .map_err(Error::io("temporary config directory"))?;
            (config_temp.path().to_path_buf(), None)
        }
    };
    let temp;
    let certs_dir = match &args.certs {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().map_err(Error::io("temporary directory"))?;
            temp.path().to_path_buf()
        }
    };
    certs::prepare(&certs_dir)?;
    let plan = Ports::plan(args.base_port.unwrap_or(0));
    let mut listeners = Vec::new();
    let mut ports = Ports::default();
    for (service, addr) in &plan.listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!("bind {} on {addr}", service.name())))?;
        let bound = listener.local_addr().map_err(Error::io("local address"))?;
        ports.listen.insert(*service, bound);
        listeners.push((*service, listener));
    }
    report_config(&config_dir, &ports)?;

    let shared = Shared {
        certs: &certs_dir,
        config: &config_dir,
        telemetry: telemetry(args.duration),
        seed: args.seed,
    };
    let mut workloads = Vec::new();
    for (service, listener) in listeners {
        let mesh = node::mesh(&shared, service).await?;
        let client = node::client(&shared, &mesh, service);
        tokio::spawn(node::serve(
            &shared,
            &mesh,
            service,
            client.clone(),
            listener,
            std::future::pending(),
        )?);
        workloads.push(Workload {
            service,
            mesh,
            client,
        });
    }
    let checkout = workloads
        .iter()
        .find(|w| w.service == Service::Checkout)
        .map(|w| w.mesh.clone())
        .ok_or(Error::Missing(Service::Checkout))?;
    watch_canary(&checkout);
    let loadgen_mesh = node::mesh(&shared, Service::Loadgen).await?;
    let client = node::client(&shared, &loadgen_mesh, Service::Loadgen);
    workloads.push(Workload {
        service: Service::Loadgen,
        mesh: loadgen_mesh,
        client: client.clone(),
    });

    let admin_addr = serve_admins(args, &shared, &workloads).await?;
    eprintln!(
        "shop: service map at http://{admin_addr}/ (also /metrics, /config_dump, /graph, /clusters, /workloads)"
    );

    let load = load(args);
    eprintln!(
        "shop: ready; {} rps for {}; Ctrl-C for the summary",
        load.rps,
        match load.duration {
            Some(d) => format!("{} s", d.as_secs()),
            None => "ever".to_owned(),
        }
    );
    eprintln!(
        "shop: edit the weights in {} while it runs; the split follows",
        config_dir.join(config::INVENTORY_FILE).display()
    );
    let start = Instant::now();
    let stats = loadgen::run(client, load, ctrl_c()).await;
    let graph = shared.telemetry.service_graph().snapshot(Instant::now());
    let summary = Summary::new(start.elapsed().as_secs_f64(), load.rps, &stats, &graph);
    print(args, &summary)?;
    verdict::check(&stats)
}

/// One workload of a single-process run: its mesh and the client its calls go through.
struct Workload {
    service: Service,
    mesh: Mesh,
    client: MeshClient,
}

/// `namespace/name` of a workload, as its admin endpoint names it.
fn workload_name(mesh: &Mesh) -> String {
    let w = &mesh.context().workload;
    format!("{}/{}", w.namespace, w.name)
}

/// An admin endpoint per workload of a single-process run, each showing its own client's
/// `/clusters` and linking to the others: checkout's on `--admin` (or 127.0.0.1:15000), the
/// others on free ports. Returns checkout's address.
async fn serve_admins(
    args: &Args,
    shared: &Shared<'_>,
    workloads: &[Workload],
) -> Result<SocketAddr, Error> {
    let prometheus = install_prometheus().map_err(|e| Error::Metrics(e.to_string()))?;
    let mut bound = Vec::new();
    for w in workloads {
        let listener = if w.service == Service::Checkout {
            bind_admin(args.admin).await?
        } else {
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(Error::io(format!(
                    "bind the admin endpoint of {}",
                    w.service.name()
                )))?
        };
        let addr = listener.local_addr().map_err(Error::io("local address"))?;
        bound.push((w, listener, addr));
    }
    let links: Vec<(String, Option<http::Uri>)> = bound
        .iter()
        .map(|(w, _, addr)| {
            (
                workload_name(&w.mesh),
                format!("http://{addr}").parse().ok(),
            )
        })
        .collect();
    let mut checkout = None;
    for (i, (w, listener, addr)) in bound.into_iter().enumerate() {
        let mut state = AdminState::new()
            .graph(shared.telemetry.service_graph().clone())
            .prometheus(prometheus.clone())
            .clusters(w.client.clone());
        for (j, (name, uri)) in links.iter().enumerate() {
            if i != j
                && let Some(uri) = uri
            {
                state = state.sibling(name.clone(), uri.clone());
            }
        }
        tokio::spawn(admin::serve(w.mesh.clone(), listener, state));
        if w.service == Service::Checkout {
            checkout = Some(addr);
        } else {
            eprintln!(
                "shop: admin of {} at http://{addr}/",
                workload_name(&w.mesh)
            );
        }
    }
    checkout.ok_or(Error::Missing(Service::Checkout))
}

/// The admin listener: `--admin` as given (an error when taken), else 127.0.0.1:15000, or any
/// free port when another process (another demo) holds that one.
async fn bind_admin(addr: Option<SocketAddr>) -> Result<TcpListener, Error> {
    if let Some(addr) = addr {
        return TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!("bind the admin endpoint on {addr}")));
    }
    match TcpListener::bind(DEFAULT_ADMIN).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!("shop: {DEFAULT_ADMIN} is taken (another demo?); admin on a free port");
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(Error::io("bind the admin endpoint"))
        }
        Err(e) => Err(Error::io(format!(
            "bind the admin endpoint on {DEFAULT_ADMIN}"
        ))(e)),
    }
}

/// One workload alone, on the `--base-port` plan; the servers run until Ctrl-C, the load
/// generator for `--duration` and then prints the summary of every process' graph.
pub async fn one(args: &Args, service: Service) -> Result<(), Error> {
    let certs_dir = args
        .certs
        .clone()
        .unwrap_or_else(|| PathBuf::from("shop-certs"));
    if !certs::identity_dir(&certs_dir, service).exists() {
        return Err(Error::NotPrepared(certs_dir));
    }
    let base = fixed_base_port(args)?;
    let ports = Ports::plan(base);
    let config_dir = shared_config(args);
    lock::check_free(&config_dir)?;
    config::write(&config_dir, &ports).map_err(Error::io(format!(
        "write the config into {}",
        config_dir.display()
    )))?;
    let shared = Shared {
        certs: &certs_dir,
        config: &config_dir,
        telemetry: telemetry(args.duration),
        seed: args.seed,
    };
    let mesh = node::mesh(&shared, service).await?;
    let admin_addr = Ports::admin(base, service);
    let admin_listener = TcpListener::bind(admin_addr)
        .await
        .map_err(Error::io(format!(
            "bind the admin endpoint on {admin_addr}"
        )))?;
    let peers: Vec<http::Uri> = Service::ALL
        .iter()
        .filter(|s| **s != service)
        .filter_map(|s| format!("http://{}", Ports::admin(base, *s)).parse().ok())
        .collect();
    let client = node::client(&shared, &mesh, service);
    let state = AdminState::new()
        .graph(shared.telemetry.service_graph().clone())
        .prometheus(install_prometheus().map_err(|e| Error::Metrics(e.to_string()))?)
        .clusters(client.clone())
        .peers(peers.clone());
    tokio::spawn(admin::serve(mesh.clone(), admin_listener, state));
    eprintln!(
        "shop: {} admin and service map at http://{admin_addr}/",
        service.name()
    );

    if service == Service::Loadgen {
        wait_for_servers(&ports).await?;
        let load = load(args);
        eprintln!("shop: ready; {} rps", load.rps);
        let start = Instant::now();
        let stats = loadgen::run(client, load, ctrl_c()).await;
        let local = shared.telemetry.service_graph().snapshot(Instant::now());
        let graph = PeerClient::default().merged(local, &peers).await;
        let summary = Summary::new(start.elapsed().as_secs_f64(), load.rps, &stats, &graph);
        print(args, &summary)?;
        return verdict::check(&stats);
    }
    let Some(addr) = ports.listen.get(&service).copied() else {
        return Err(Error::NotAServer);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("bind {} on {addr}", service.name())))?;
    if service == Service::Checkout {
        watch_canary(&mesh);
    }
    eprintln!("shop: {} serving on {addr}; Ctrl-C to stop", service.name());
    node::serve(&shared, &mesh, service, client, listener, ctrl_c())?
        .await
        .map_err(Error::io(format!("serve {}", service.name())))
}

/// The port plan's base for separate processes: `--base-port`, 17000 by default, never 0.
fn fixed_base_port(args: &Args) -> Result<u16, Error> {
    match args.base_port.unwrap_or(DEFAULT_BASE_PORT) {
        0 => Err(Error::NoPortPlan),
        base => Ok(base),
    }
}

/// Writes the config directory and says what it did.
fn report_config(dir: &Path, ports: &Ports) -> Result<(), Error> {
    let written = config::write(dir, ports).map_err(Error::io(format!(
        "write the config into {}",
        dir.display()
    )))?;
    for path in &written.written {
        eprintln!("shop: wrote {}", path.display());
    }
    for path in &written.kept {
        eprintln!("shop: kept {}", path.display());
    }
    eprintln!("shop: listening {}", config::describe(ports));
    Ok(())
}

/// One telemetry with a service graph covering the whole run (for the summary), at most an hour.
fn telemetry(duration: u64) -> Telemetry {
    let seconds = if duration == 0 {
        3600
    } else {
        duration.min(3600) + 5
    };
    let window = GraphWindow {
        slot: Duration::from_secs(1),
        slots: u32::try_from(seconds).unwrap_or(3600),
    };
    Telemetry::new()
        .graph(ServiceGraph::new(window))
        .access_log(mesh_tower::telemetry::AccessLogMode::Off)
}

fn load(args: &Args) -> Load {
    Load {
        rps: args.rps.max(1),
        duration: (args.duration > 0).then(|| Duration::from_secs(args.duration)),
    }
}

/// Prints a line whenever checkout's mesh swaps in a config with other canary weights.
fn watch_canary(mesh: &Mesh) {
    let mut changes = mesh.subscribe();
    let mut last = canary_weights(&mesh.snapshot());
    if let Some((v1, v2)) = last {
        eprintln!("shop: canary weights v1={v1} v2={v2}");
    }
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let weights = canary_weights(&changes.borrow_and_update());
            if weights != last {
                match weights {
                    Some((v1, v2)) => eprintln!("shop: canary weights now v1={v1} v2={v2}"),
                    None => eprintln!("shop: no route to inventory in the config"),
                }
                last = weights;
            }
        }
    });
}

/// Waits until every server of the plan accepts connections (bounded).
async fn wait_for_servers(ports: &Ports) -> Result<(), Error> {
    let deadline = Instant::now() + WAIT_FOR_SERVERS;
    for (service, addr) in &ports.listen {
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::Io {
                        what: format!("{} on {addr} not listening", service.name()),
                        source: e,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM (Kubernetes): servers drain, the load generator prints its
/// summary.
async fn ctrl_c() {
    mesh_examples::shutdown_signal().await;
}

fn print(args: &Args, summary: &Summary) -> Result<(), Error> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        print!("{}", summary.text());
    }
    Ok(())
}
