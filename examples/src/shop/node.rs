//! Starting one workload: its `Mesh` (own identity, the shared config directory) and its server.

use std::future::{Future, IntoFuture};
use std::path::Path;
use std::pin::Pin;

use mesh_core::{Mesh, MeshError};
use mesh_tonic::MeshChannel;
use mesh_tower::ServeOptions;
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::Telemetry;
use tokio::net::TcpListener;

use super::certs::identity_dir;
use super::plan::Service;
use super::{Error, checkout, frontend, inventory, payment};

/// A server, ready to be awaited or spawned.
pub type Server = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// What every workload of a process shares.
#[derive(Clone, Debug)]
pub struct Shared<'a> {
    /// The certificates directory ([`super::certs`]).
    pub certs: &'a Path,
    /// The Istio config directory ([`super::config`]).
    pub config: &'a Path,
    /// One telemetry for the process, so its service graph sees every edge.
    pub telemetry: Telemetry,
    /// Seed of the outbound clients' random choices (the canary pick among them).
    pub seed: u64,
}

/// `service`'s mesh: its workload, its identity files, the config directory (watched).
pub async fn mesh(shared: &Shared<'_>, service: Service) -> Result<Mesh, MeshError> {
    Mesh::builder()
        .workload(service.workload())
        .identity_files(identity_dir(shared.certs, service))
        .config_path(shared.config)
        .build()
        .await
}

/// An outbound client over `mesh` recording into the shared telemetry.
pub fn client(shared: &Shared<'_>, mesh: &Mesh, service: Service) -> MeshClient {
    MeshClient::builder(mesh.clone())
        .telemetry(shared.telemetry.clone())
        .seed(shared.seed.wrapping_add(service as u64))
        .build()
}

/// Serves `service` on `listener` under `mesh` until `shutdown` completes; its outbound calls
/// go through `client` (from [`client`]; keep a clone for the admin endpoint's `/clusters`).
pub fn serve(
    shared: &Shared<'_>,
    mesh: &Mesh,
    service: Service,
    client: MeshClient,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Server, Error> {
    let options = ServeOptions::new().telemetry(shared.telemetry.clone());
    let channel = MeshChannel::from_client(client);
    let server = match service {
        Service::Frontend => {
            let router = frontend::router(channel)?;
            let serve = mesh_tower::serve(mesh, listener, router)
                .options(options)
                .with_graceful_shutdown(shutdown);
            return Ok(serve.into_future());
        }
        Service::Checkout => {
            checkout::routes(checkout::CheckoutService::new(mesh.clone(), channel)?)
        }
        Service::Payment => payment::routes(),
        Service::InventoryV1 | Service::InventoryV2 => inventory::routes(service.version()),
        Service::Loadgen => return Err(Error::NotAServer),
    };
    let serve = mesh_tonic::serve(mesh, listener, server)
        .options(options)
        .with_graceful_shutdown(shutdown);
    Ok(serve.into_future())
}
