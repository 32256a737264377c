//! What one client may make the control plane hold or do.
//!
//! istiod caps a received message at 4 MiB (`ISTIO_GPRC_MAXRECVMSGSIZE`, applied as
//! `grpc.MaxRecvMsgSize` in `pilot/pkg/grpc/grpc.go` `ServerOptions`) and pings idle
//! connections every 30 s, closing them 10 s after an unanswered ping (`pkg/keepalive`
//! `DefaultOption`). mesh does the same, and bounds what istiod leaves open: streams per
//! connection (istiod allows 100 000; an ADS client needs one), and resource names a stream may
//! subscribe to per type, so a request within the size cap still cannot make a stream build and
//! keep millions of names. Responses waiting for a slow client are bounded by the stream's
//! outgoing queue ([`OUTGOING_QUEUE`]): a full queue stops the stream reading requests.
//!
//! A request over a limit ends its stream with `RESOURCE_EXHAUSTED`, as gRPC-Go reports an
//! oversized message; the size is checked from the message header, before its body is read.

use std::time::Duration;

/// Largest request message accepted, in bytes (istiod's `MaxRecvMsgSize`).
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Most resource names one stream may subscribe to for one type.
pub const MAX_RESOURCE_NAMES: usize = 10_000;

/// Most concurrent streams on one HTTP/2 connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 100;

/// Idle time after which the server pings a connection (istiod's keepalive `Time`).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long an unanswered keepalive ping waits before the connection is closed (istiod's
/// keepalive `Timeout`).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses queued for one stream before it stops reading the client's requests.
pub const OUTGOING_QUEUE: usize = 16;

/// The status for a request over a limit: RESOURCE_EXHAUSTED. tonic reports a message over the
/// decoding limit as OUT_OF_RANGE; it is mapped here so clients see what gRPC-Go servers
/// (istiod) send.
pub(super) fn exhausted(status: tonic::Status) -> tonic::Status {
    if status.code() == tonic::Code::OutOfRange && status.message().contains("too large") {
        tonic::Status::resource_exhausted(format!(
            "request larger than {MAX_REQUEST_BYTES} bytes: {}",
            status.message()
        ))
    } else {
        status
    }
}

/// The error for a subscription over [`MAX_RESOURCE_NAMES`].
pub(super) fn too_many_names(type_url: &str, names: usize) -> tonic::Status {
    tonic::Status::resource_exhausted(format!(
        "{names} resource names subscribed for {type_url}; at most {MAX_RESOURCE_NAMES} are served per stream"
    ))
}

/// TLS handshakes in progress at once on a secured control plane's port (each bounded by a
/// 10 s timeout); connections beyond wait in the kernel's accept queue, so silent or slow
/// clients cannot make the server hold unbounded handshake state.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
