//! A mesh gRPC server configured the proxyless way, for the xDS interop suite: its workload and
//! identity come from the gRPC bootstrap file (`GRPC_XDS_BOOTSTRAP`, Istio's `grpc-agent` form
//! with a `file_watcher` certificate provider), and its server side (mutual-TLS mode and
//! authorization) from its inbound listener on the control plane the bootstrap names.
//!
//! Binds 127.0.0.1 on an ephemeral port, prints `PORT` on stdout, waits for the first complete
//! config, prints `ready`, then serves `grpc.health.v1.Health` (answering with an `x-version`
//! header carrying the first argument) until killed.
//!
//! `GRPC_XDS_BOOTSTRAP=bootstrap.json cargo run -p mesh-tests --bin xds-interop-mesh-server -- secure`
#![forbid(unsafe_code)]

use std::error::Error;
use std::io::Write;
use std::time::Duration;

use http::HeaderValue;
use mesh_xds::bootstrap::Bootstrap;
use mesh_xds::client::{XdsClient, XdsClientConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let version = std::env::args()
        .nth(1)
        .ok_or("usage: xds-interop-mesh-server VERSION")?;
    let bootstrap = Bootstrap::from_env()?;
    let mesh = bootstrap.mesh_builder().build().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("{}", addr.port());
    std::io::stdout().flush()?;

    let config = XdsClientConfig::from_bootstrap(&bootstrap).serving(addr);
    let xds = XdsClient::start(mesh.clone(), config);
    tokio::time::timeout(Duration::from_secs(60), xds.ready())
        .await
        .map_err(|_| "no complete config from the control plane within 60 s")?;
    println!("ready");
    std::io::stdout().flush()?;

    let header = HeaderValue::from_str(&version)?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let tagged = tower::ServiceBuilder::new()
        .map_response(move |mut r: http::Response<tonic::body::Body>| {
            r.headers_mut().insert("x-version", header.clone());
            r
        })
        .service(tonic::service::Routes::new(health).prepare());
    mesh_tower::serve(&mesh, listener, tagged).await?;
    Ok(())
}
