//! Backends for the xDS interop suite: one tonic gRPC server per version given on the command
//! line, each on 127.0.0.1 with an ephemeral port, serving `grpc.health.v1.Health` and
//! answering with an `x-version` header so clients can count where calls went.
//!
//! Prints `VERSION PORT` per server on stdout, then serves until killed.
//!
//! `cargo run -p mesh-tests --bin xds-interop-backends -- v1 v2`
#![forbid(unsafe_code)]

use std::error::Error;

use http::HeaderValue;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let versions: Vec<String> = std::env::args().skip(1).collect();
    if versions.is_empty() {
        return Err("usage: xds-interop-backends VERSION...".into());
    }
    let mut tasks = Vec::new();
    for version in versions {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{version} {}", listener.local_addr()?.port());
        let header = HeaderValue::from_str(&version)?;
        let (_reporter, health) = tonic_health::server::health_reporter();
        let tag =
            tower::util::MapResponseLayer::new(move |mut r: http::Response<tonic::body::Body>| {
                r.headers_mut().insert("x-version", header.clone());
                r
            });
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tasks.push(tokio::spawn(
            tonic::transport::Server::builder()
                .layer(tag)
                .add_service(health)
                .serve_with_incoming(incoming),
        ));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
