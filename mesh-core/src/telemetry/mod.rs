//! Telemetry vocabulary shared by the client and server sides: Envoy's response flags, and
//! (with the observability work) Istio's metric names and labels.

mod flags;

pub use flags::ResponseFlag;
