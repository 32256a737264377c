//! The knobs of [`serve`](super::serve), with defaults no weaker than Envoy's under Istio.
//!
//! Each setter names the Envoy field it mirrors. Where Envoy's default is unbounded (Envoy
//! leaves `request_headers_timeout` off, for instance) mesh picks a bound, because mesh runs
//! inside the process it protects: a pinned stream costs the application's own memory.

use std::time::Duration;

use crate::telemetry::{AccessLogMode, Telemetry};
use crate::tls::DEFAULT_HANDSHAKE_TIMEOUT;

/// Limits, timeouts and telemetry of a server. Consuming builder; every default is documented
/// on its setter.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub(super) max_connections: usize,
    pub(super) connection_high_water: usize,
    pub(super) max_header_list_size: u32,
    pub(super) max_concurrent_streams: u32,
    pub(super) max_pending_accept_reset_streams: usize,
    pub(super) max_local_error_reset_streams: usize,
    pub(super) initial_stream_window_size: u32,
    pub(super) initial_connection_window_size: u32,
    pub(super) max_send_buf_size: usize,
    pub(super) http2_keep_alive: Option<(Duration, Duration)>,
    pub(super) handshake_timeout: Duration,
    pub(super) header_read_timeout: Duration,
    pub(super) stream_idle_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) close_grace: Duration,
    pub(super) drain_timeout: Duration,
    pub(super) refusal_log_interval: Duration,
    pub(super) headers_with_underscores: HeadersWithUnderscores,
    pub(super) telemetry: Telemetry,
    pub(super) seed: Option<u64>,
}

/// What the server does with a request header whose name contains `_` (Envoy's
/// `common_http_protocol_options.headers_with_underscores_action`). Some frameworks read
/// `x_user` and `x-user` as one header (CGI turns both into `HTTP_X_USER`), so a header the
/// policy never looked at can stand in for one it did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadersWithUnderscores {
    /// Serve the request with the header (Envoy's default, kept by Istio for sidecars).
    #[default]
    Allow,
    /// Answer 400 before authorization (Envoy's `REJECT_REQUEST`; its edge guidance).
    RejectRequest,
    /// Remove the header before authorization and the application see it (`DROP_HEADER`).
    DropHeader,
}

/// Default [`ServeOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connection_high_water: DEFAULT_MAX_CONNECTIONS / 10 * 9,
            max_header_list_size: 60 * 1024,
            max_concurrent_streams: 100,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            initial_stream_window_size: 64 * 1024,
            initial_connection_window_size: 1024 * 1024,
            max_send_buf_size: 64 * 1024,
            http2_keep_alive: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: Duration::from_secs(30),
            stream_idle_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(3600),
            close_grace: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(5),
            refusal_log_interval: Duration::from_secs(10),
            headers_with_underscores: HeadersWithUnderscores::Allow,
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

    /// Connections served at once (default 10 000, Envoy's overload manager
    /// `envoy.resource_monitors.global_downstream_max_connections` as commonly set). At the
    /// cap further connections wait in the kernel's accept queue; the high-water mark
    /// ([`ServeOptions::connection_high_water`]) makes room before that by closing idle
    /// connections. Also sets the high-water mark to 90 % of `max`.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self.connection_high_water = (self.max_connections / 10 * 9).max(1);
        self
    }

    /// Open connections above which each new connection closes the connection that has been
    /// idle (no request in flight) the longest (default 90 % of
    /// [`ServeOptions::max_connections`]), so idle connections cannot monopolise the cap: the
    /// counterpart of Envoy's overload action `envoy.overload_actions.close_idle_connections`
    /// / reduced `idle_timeout` under pressure. Clamped to the connection cap.
    pub fn connection_high_water(mut self, connections: usize) -> Self {
        self.connection_high_water = connections.clamp(1, self.max_connections);
        self
    }

    /// Largest request header block, in bytes (default 60 KiB, Envoy's
    /// `max_request_headers_kb`). HTTP/2 advertises it as `SETTINGS_MAX_HEADER_LIST_SIZE`;
    /// HTTP/1 bounds its read buffer by it (hyper's floor is 8 KiB).
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.max_header_list_size = bytes;
        self
    }

    /// HTTP/2 streams per connection at once (default 100, `SETTINGS_MAX_CONCURRENT_STREAMS`;
    /// Envoy's `http2_protocol_options.max_concurrent_streams` as its edge guidance sets it).
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

    /// HTTP/2 flow-control window the server grants each request stream, bounding what one
    /// stream buffers (default 64 KiB, Envoy's `http2_protocol_options.initial_stream_window_size`
    /// in its edge guidance).
    pub fn initial_stream_window_size(mut self, bytes: u32) -> Self {
        self.initial_stream_window_size = bytes;
        self
    }

    /// HTTP/2 flow-control window the server grants a connection, bounding what one
    /// connection buffers of request bodies (default 1 MiB, Envoy's
    /// `http2_protocol_options.initial_connection_window_size` in its edge guidance, and its
    /// `per_connection_buffer_limit_bytes`).
    pub fn initial_connection_window_size(mut self, bytes: u32) -> Self {
        self.initial_connection_window_size = bytes;
        self
    }

    /// Most response bytes buffered per HTTP/2 stream while the client's window is closed
    /// (default 64 KiB; hyper's `max_send_buf_size`, the counterpart of Envoy's per-stream
    /// buffer limit).
    pub fn max_send_buf_size(mut self, bytes: usize) -> Self {
        self.max_send_buf_size = bytes.max(1);
        self
    }

    /// HTTP/2 keep-alive: send a PING every `interval` and close the connection when none is
    /// answered within `timeout` (default off, as Istio leaves Envoy's
    /// `http2_protocol_options.connection_keepalive` unset; idle and dead connections are
    /// closed by [`ServeOptions::idle_timeout`] and the high-water mark).
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.http2_keep_alive = Some((interval, timeout));
        self
    }

    /// Bound on TLS detection plus handshake (default 10 s, Envoy's
    /// `transport_socket_connect_timeout` / TLS inspector timeout under Istio).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Bound on receiving a request's headers (default 30 s; Envoy's
    /// `request_headers_timeout`, which Envoy leaves off). Applies to each HTTP/1 request, and
    /// to the first request of every connection from the moment it is accepted (after TLS), so
    /// a client that connects and sends nothing, or only an HTTP/2 preface, is closed.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// A request (HTTP/2 stream, or HTTP/1 exchange) that makes no progress in either
    /// direction for this long is reset (default 5 min, Envoy's `stream_idle_timeout`). A
    /// stream stuck behind a zero flow-control window, a client that stops reading its
    /// response, or a request body that stops arriving all count as no progress.
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }

    /// A connection with no request in flight for this long is closed (default 1 h, Envoy's
    /// `common_http_protocol_options.idle_timeout`): HTTP/2 gets a GOAWAY, HTTP/1 is closed.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// After a connection is asked to close (idle, evicted, stalled), how long it has to
    /// finish before it is dropped (default 1 s, Envoy's `delayed_close_timeout`).
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// How long in-flight requests may run after graceful shutdown starts before their
    /// connections are closed (default 5 s, Istio's `terminationDrainDuration`).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Refused connections are counted in `mesh_inbound_connections_refused_total{reason}`
    /// always, and logged at most once per reason per `interval` with the number refused
    /// since (default 10 s), so refusals cannot be turned into log amplification.
    pub fn refusal_log_interval(mut self, interval: Duration) -> Self {
        self.refusal_log_interval = interval;
        self
    }

    /// What to do with request headers whose name contains an underscore (default
    /// [`HeadersWithUnderscores::Allow`], Envoy's
    /// `common_http_protocol_options.headers_with_underscores_action` as Istio leaves it for
    /// sidecars; Istio's `connectionSettings.httpHeadersWithUnderscoresAction`).
    pub fn headers_with_underscores(mut self, action: HeadersWithUnderscores) -> Self {
        self.headers_with_underscores = action;
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

    /// The connection high-water mark.
    pub fn get_connection_high_water(&self) -> usize {
        self.connection_high_water
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

    /// The stream idle timeout.
    pub fn get_stream_idle_timeout(&self) -> Duration {
        self.stream_idle_timeout
    }

    /// The connection idle timeout.
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The drain deadline.
    pub fn get_drain_timeout(&self) -> Duration {
        self.drain_timeout
    }
}
