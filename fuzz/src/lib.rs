//! mesh-fuzz: a fuzzing harness for mesh that runs on stable Rust.
//!
//! Every input mesh takes from a file, a peer or the network has a [`Target`](driver::Target):
//! Istio YAML, xDS resources, PEM files and certificate chains, a connection's first bytes, and
//! HTTP/2 frames into a real server (see [`targets`]). Inputs are generated from seeds (the
//! project's fixtures, `fuzz/corpus/`, and `../shared/istio-samples` when present) by
//! structure-aware mutators ([`tree`] for YAML documents, [`wire`] for protobuf, [`der`] for
//! certificates, HTTP/2 frames built from their vocabulary) and byte-level ones ([`mutate`]).
//! The [`driver`] runs them with a seeded RNG, catches panics, groups crashes by location and
//! saves the inputs that caused them.
//!
//! libFuzzer (cargo-fuzz) needs nightly; `bolero` and `arbitrary` derive inputs from raw bytes
//! but would not mutate our seed documents structurally, which is where the bugs are. So the
//! engine here is small and plain: a seeded `rand` generator, coverage-blind, fast enough for a
//! million inputs per target. `fuzz/README.md` says how to run it.
#![forbid(unsafe_code)]

pub mod corpus;
pub mod der;
pub mod driver;
pub mod frame;
pub mod mutate;
pub mod targets;
pub mod tree;
pub mod wire;
