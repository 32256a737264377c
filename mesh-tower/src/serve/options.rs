//! The knobs of [`serve`](super::serve), with Envoy/Istio-like defaults.

use std::time::Duration;

use crate::telemetry::{AccessLogMode, Telemetry};
use crate::tls::DEFAULT_HANDSHAKE_TIMEOUT;

/// Limits, timeouts and telemetry of a server. Consuming builder; every default is documented
/// on its setter.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub(super) max_connections: usize,
    pub(super) max_header_list_size: u32,
    pub(super) max_concurrent_streams: u32,
    pub(super) max_pending_accept_reset_streams: usize,
    pub(super) max_local_error_reset_streams: usize,
    pub(super) handshake_timeout: Duration,
    pub(super) header_read_timeout: Duration,
    pub(super) drain_timeout: Duration,
    pub(super) telemetry: Telemetry,
    pub(super) seed: Option<u64>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_header_list_size: 60 * 1024,
            max_concurrent_streams: 1024,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            telemetry: Telemetry::new().access_log(AccessLogMode::Off),
            seed: None,
        }
    }
}

impl ServeOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections served at once (default 10 000). Further connections wait in the kernel's
    /// accept queue until one closes.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Largest request header block, in bytes (default 60 KiB, Envoy's
    /// `max_request_headers_kb`). HTTP/2 advertises it as `SETTINGS_MAX_HEADER_LIST_SIZE`;
    /// HTTP/1 bounds its read buffer by it (hyper's floor is 8 KiB).
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.max_header_list_size = bytes;
        self
    }

    /// HTTP/2 streams per connection at once (default 1024,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.max_concurrent_streams = max;
        self
    }

    /// HTTP/2 streams the client may reset before the server accepted them, before the
    /// connection is closed with `ENHANCE_YOUR_CALM` (default 20): hyper's protection against
    /// rapid-reset floods (CVE-2023-44487).
    pub fn max_pending_accept_reset_streams(mut self, max: usize) -> Self {
        self.max_pending_accept_reset_streams = max;
        self
    }

    /// HTTP/2 streams the server may reset because of client protocol errors, before the
    /// connection is closed (default 1024): hyper's protection against floods that make the
    /// server reset ("MadeYouReset", CVE-2025-8671).
    pub fn max_local_error_reset_streams(mut self, max: usize) -> Self {
        self.max_local_error_reset_streams = max;
        self
    }

    /// Bound on TLS detection plus handshake (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Bound on reading an HTTP/1 request's headers (default 30 s, hyper's), so a client that
    /// opens a connection and trickles bytes does not hold it.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long in-flight requests may run after graceful shutdown starts before their
    /// connections are closed (default 5 s, Istio's `terminationDrainDuration`).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Where finished requests are recorded. The default records Istio's metrics and the
    /// service graph with the access log off, as Istio's default profile does
    /// (`meshConfig.accessLogFile` unset); pass a [`Telemetry`] with
    /// [`AccessLogMode::All`] to log every request.
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Derives trace and request ids from `seed` (reproducible tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The connection limit.
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// The HTTP/2 rapid-reset limit.
    pub fn get_max_pending_accept_reset_streams(&self) -> usize {
        self.max_pending_accept_reset_streams
    }

    /// The HTTP/2 local-error reset limit.
    pub fn get_max_local_error_reset_streams(&self) -> usize {
        self.max_local_error_reset_streams
    }

    /// The HTTP/2 concurrent stream limit.
    pub fn get_max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams
    }

    /// The header list limit.
    pub fn get_max_header_list_size(&self) -> u32 {
        self.max_header_list_size
    }

    /// The drain deadline.
    pub fn get_drain_timeout(&self) -> Duration {
        self.drain_timeout
    }
}
