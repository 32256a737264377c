//! The access log: one structured `tracing` event per request, target `mesh::access`, with the
//! fields an auditor asks for (who called whom, what, when, how it ended, how long it took),
//! its message the request in Istio's default text format (see `istio_text.rs`), so a
//! plain-text subscriber prints the line an Istio user knows, with the caller's workload and
//! the connection's principals as fields beside it.
//!
//! Events go through `tracing`, so the application's subscriber decides the format (JSON with
//! `tracing-subscriber`'s `json()` gives one object per line, as Envoy's JSON access log does)
//! and the destination. Enable or silence them with the target, e.g. `mesh::access=info`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use mesh_core::authz::normalize_path;
use mesh_core::telemetry::{RequestRecord, ResponseFlag};

/// The `tracing` target of access log events.
pub const ACCESS_LOG_TARGET: &str = "mesh::access";

/// Which requests are logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLogMode {
    /// None.
    Off,
    /// Failed requests only ([`RequestRecord::is_error`], or any response flag set).
    ErrorsOnly,
    /// Every request.
    #[default]
    All,
}

impl AccessLogMode {
    /// Whether `r` is logged in this mode.
    pub fn includes(self, r: &RequestRecord) -> bool {
        match self {
            AccessLogMode::Off => false,
            AccessLogMode::ErrorsOnly => r.is_error() || !r.response_flags.is_empty(),
            AccessLogMode::All => true,
        }
    }
}

/// Emits the access log event of `r` if `mode` includes it.
pub fn log_request(mode: AccessLogMode, r: &RequestRecord) {
    if !mode.includes(r) {
        return;
    }
    let flags = Flags(&r.response_flags);
    let status = r.response_code.unwrap_or(0);
    let line = super::istio_text_line(r);
    let upstream_host = (r.reporter == mesh_core::telemetry::Reporter::Source)
        .then_some(r.peer_address.as_deref())
        .flatten();
    tracing::info!(
        target: ACCESS_LOG_TARGET,
        start_time = %rfc3339(r.start),
        reporter = r.reporter.as_str(),
        method = %r.method,
        path = %log_path(&r.path),
        authority = %r.authority,
        protocol = r.protocol.as_str(),
        status,
        grpc_status = r.grpc_status.map(i64::from),
        response_flags = %flags,
        response_code_details = super::response_code_details(r),
        duration_ms = r.duration.as_millis() as u64,
        bytes_received = r.request_bytes,
        bytes_sent = r.response_bytes,
        upstream_cluster = r.upstream_cluster.as_ref().map(|c| c.as_str()),
        peer_address = r.peer_address.as_deref(),
        upstream_host,
        user_agent = r.details.user_agent.as_deref(),
        x_forwarded_for = r.details.forwarded_for.as_deref(),
        source_workload = r.source.name.as_deref(),
        source_namespace = r.source.namespace.as_deref(),
        destination_workload = r.destination.name.as_deref(),
        destination_namespace = r.destination.namespace.as_deref(),
        source_principal = r.source_principal.as_deref(),
        destination_principal = r.destination_principal.as_deref(),
        connection_security_policy = r.security.as_str(),
        request_id = r.request_id.as_deref(),
        trace_id = r.trace_id.as_deref(),
        "{line}"
    );
}

/// Response flags as the log shows them: `-` when none, else their codes joined by `,`.
/// Written only when the event is emitted.
struct Flags<'a>(&'a [ResponseFlag]);

impl fmt::Display for Flags<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((first, rest)) = self.0.split_first() else {
            return f.write_str("-");
        };
        f.write_str(first.code())?;
        for flag in rest {
            f.write_str(",")?;
            f.write_str(flag.code())?;
        }
        Ok(())
    }
}

/// The path as authorization saw it (percent-decoded where safe, dot segments and duplicate
/// slashes resolved), without query or fragment, so secrets in query strings stay out of logs.
pub fn log_path(raw: &str) -> String {
    let no_query = raw.split(['?', '#']).next().unwrap_or_default();
    match normalize_path(no_query) {
        Ok(n) => n.path().to_owned(),
        Err(_) => no_query.to_owned(),
    }
}

/// `2026-11-30T00:45:16.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
