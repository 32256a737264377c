//! mesh-tower: mesh for hyper and axum.
//!
//! - [`inbound`]: the layers a server puts in front of the application: authorization first.
#![forbid(unsafe_code)]

pub mod inbound;
