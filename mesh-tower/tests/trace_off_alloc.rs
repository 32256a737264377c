//! With tracing off, what the request path does for tracing allocates nothing: the server's and
//! the client's span start (one atomic load each) and the handler-context wrapper. Counted by
//! dhat's allocator in testing mode; runs without libtest's harness (`harness = false`) so the
//! measured loop is the process's only thread (see `benches/tests/record_alloc.rs`). The
//! profile goes to the temp dir, never the source tree.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use http::HeaderMap;
use mesh_tower::trace::{self, span};
use rand::SeedableRng;
use rand::rngs::SmallRng;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    tracing_off_costs_no_allocation();
    println!("test tracing_off_costs_no_allocation ... ok");
}

fn tracing_off_costs_no_allocation() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut headers = HeaderMap::new();
    let mut ctx = trace::inbound(&mut headers, &mut rng);
    let mut out = HeaderMap::new();
    let mut client_ctx = trace::outbound(&mut out, &mut rng);
    // Warm up: the first atomic load of a thread registers it with arc-swap (once per thread).
    assert!(span::start_server(&mut ctx, &headers, &mut rng).is_none());
    let _profiler = dhat::Profiler::builder()
        .testing()
        .file_name(
            std::env::temp_dir().join(format!("mesh-trace_off_alloc-{}.json", std::process::id())),
        )
        .build();
    let before = dhat::HeapStats::get();
    for _ in 0..1_000 {
        let server = span::start_server(&mut ctx, &headers, &mut rng);
        assert!(server.is_none());
        let n = span::in_context(server.as_ref(), || 1);
        assert_eq!(n, 1);
        assert!(span::start_client(&mut client_ctx, &mut out, &mut rng).is_none());
    }
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
}
