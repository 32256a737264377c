//! Instructions per call, client and server, counted by valgrind's callgrind (through
//! `gungraun`): one call bare (A′: rustls mutual TLS, no mesh) and through mesh (B: `MeshClient`
//! → `serve`), for gRPC (tonic) and for plain HTTP (hyper/axum), side by side.
//!
//! ```text
//! cargo install gungraun-runner --version 0.20.0 --locked
//! cargo bench -p mesh-benches --bench call_instructions
//! ```
//!
//! Each benchmark starts one arm in this process ([`InProcess`]: the server on a thread of its
//! own, the client on the benchmark's thread, one connection), warms it up, then makes
//! [`CALLS`] calls. Only the calls are counted: callgrind toggles collection on
//! `InProcess::measured_calls` (client thread) and `measured_serving` (server thread, open
//! while the calls run), so certificates, handshakes, warm-up and teardown are not. With
//! `--separate-threads=yes` (gungraun's default) the output has one part per thread: thread 1
//! is the client, the last thread the server (3 in the mesh arms, whose thread 2 is the
//! Prometheus recorder's upkeep and counts nothing); the summary line is both. Divide by [`CALLS`] for
//! instructions per call.
//!
//! Instruction counts do not depend on the machine's load, so a few hundred instructions per
//! call more or less show on shared cores. They do depend on the compiler, the dependencies'
//! versions and valgrind's; compare runs of one build environment.
// Benchmark set-up: a panic is a failed run. gungraun's macros generate public modules,
// constants and functions without docs.
#![allow(clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use gungraun::{
    Callgrind, EntryPoint, LibraryBenchmarkConfig, OutputFormat, library_benchmark,
    library_benchmark_group, main,
};
use mesh_benches::e2e::inproc::{Arm, InProcess};

/// Calls counted per benchmark.
const CALLS: usize = 100;

/// Payload bytes each way, as `sidecar-tax` sends.
const PAYLOAD: usize = 1024;

/// How long the server thread keeps its window open after the last response, to finish what
/// it does after sending it (telemetry on the response's end, stream clean-up).
const SERVER_SETTLE: Duration = Duration::from_millis(200);

fn start(arm: Arm) -> InProcess {
    InProcess::start(arm, PAYLOAD).expect("the arm starts and answers its warm-up calls")
}

#[library_benchmark(setup = start)]
#[bench::grpc_bare(Arm::GrpcBare)]
#[bench::grpc_mesh(Arm::GrpcMesh)]
#[bench::http_bare(Arm::HttpBare)]
#[bench::http_mesh(Arm::HttpMesh)]
fn calls(arm: InProcess) -> InProcess {
    let window = arm
        .server()
        .open_window()
        .expect("the server thread enters its window");
    arm.measured_calls(black_box(CALLS))
        .expect("every measured call succeeds");
    std::thread::sleep(SERVER_SETTLE);
    window.close();
    arm
}

library_benchmark_group!(name = one_call; benchmarks = calls);

main!(
    config = LibraryBenchmarkConfig::default()
        .tool(
            Callgrind::with_args([
                "--collect-atstart=no",
                "--toggle-collect=*InProcess*measured_calls*",
                "--toggle-collect=*measured_serving*",
            ])
            .entry_point(EntryPoint::None)
        )
        .output_format(OutputFormat::default().show_intermediate(true));
    library_benchmark_groups = one_call
);
