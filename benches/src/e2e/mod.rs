//! One call end to end, bare and through mesh, for the benchmarks that measure what a call
//! costs: the arms' configs ([`config`]), the gRPC ([`grpc`], [`greeter`]) and plain-HTTP
//! ([`http`]) clients and services, the bare servers ([`serve`]), the mesh side ([`mesh`]), and
//! one arm in one process with client and server on threads of their own ([`inproc`]), what the
//! instruction-count benchmark (`benches/call_instructions.rs`) runs.

pub mod config;
mod error;
pub mod greeter;
pub mod grpc;
pub mod http;
pub mod inproc;
pub mod mesh;
pub mod serve;

pub use config::*;
pub use error::E2eError;
