//! The outbound side: `MeshClient`, every outbound call through mesh's routing, balancing,
//! resilience and mutual TLS.

mod attempt;
mod body;
mod classify;
mod connect;
mod deadline;
mod hash;
mod kept_head;
mod mirror;
mod passthrough;
mod plan;
mod pool;
mod prepare;
mod record;
mod replay;
mod route;
mod runtime;
mod send_body;
mod service;

pub use body::MeshBody;
pub use pool::UpstreamPeer;
pub use replay::{ReplayBody, ReplayError};
pub use service::{MeshClient, MeshClientBuilder};
