//! `connectionPool`: the limits that make up the circuit breaker.

use std::time::Duration;

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::super::parse_duration_at;
use crate::model::{ConnectionPool, Http2Keepalive, TcpKeepalive};

pub(super) fn connection_pool(
    p: &r::ConnectionPoolSettings,
    field: &Field,
    report: &mut Reporter<'_>,
) -> ConnectionPool {
    let mut pool = ConnectionPool::default();
    if let Some(tcp) = &p.tcp {
        let f = field.key("tcp");
        if let Some(ka) = &tcp.tcp_keepalive {
            pool.tcp_keepalive = Some(tcp_keepalive(ka, &f.key("tcpKeepalive"), report));
        }
        // istiod's `validateConnectionPool` (pkg/config/validation/validation.go): at least
        // 1 ms; `applyConnectionPool` sets it as the HTTP protocol options'
        // max_connection_duration.
        if let Some(t) = &tcp.max_connection_duration {
            pool.max_connection_duration = at_least_1ms(t, &f.key("maxConnectionDuration"), report);
        }
        // `applyConnectionPool`: the HTTP idle timeout when `http.idleTimeout` is unset; 0s
        // disables it (the one value under 1 ms `validateConnectionPool` lets through).
        if let Some(t) = &tcp.idle_timeout
            && let Some(d) = parse_duration_at(t, &f.key("idleTimeout"), report)
        {
            if !d.is_zero() && d < Duration::from_millis(1) {
                report.error(&f.key("idleTimeout"), "must be at least 1ms");
            }
            pool.idle_timeout = Some(d).filter(|d| !d.is_zero());
        }
        if let Some(n) = tcp.max_connections.filter(|&n| n > 0) {
            pool.max_connections = n;
        }
        if let Some(t) = &tcp.connect_timeout
            && let Some(d) = parse_duration_at(t, &f.key("connectTimeout"), report)
        {
            if d.is_zero() {
                report.error(&f.key("connectTimeout"), "must be greater than 0");
            }
            pool.connect_timeout = d;
        }
    }
    if let Some(http) = &p.http {
        let f = field.key("http");
        report.unimplemented(&http.max_concurrent_streams, &f.key("maxConcurrentStreams"));
        if let Some(n) = http.http1_max_pending_requests.filter(|&n| n > 0) {
            pool.max_pending_requests = n;
        }
        if let Some(n) = http.http2_max_requests.filter(|&n| n > 0) {
            pool.max_requests = n;
        }
        if let Some(n) = http.max_requests_per_connection {
            pool.max_requests_per_connection = n;
        }
        if let Some(n) = http.max_retries.filter(|&n| n > 0) {
            pool.max_retries = n;
        }
        if let Some(t) = &http.idle_timeout {
            pool.idle_timeout =
                parse_duration_at(t, &f.key("idleTimeout"), report).filter(|d| !d.is_zero());
        }
        pool.h2_upgrade = http.h2_upgrade_policy == Some(r::H2UpgradePolicy::Upgrade);
        // istiod: `validateConnectionPool` refuses it with UPGRADE; `shouldH2Upgrade` then does
        // not upgrade and `applyConnectionPool` sets `setUseDownstreamProtocol`, over an HTTP/2
        // port's protocol too (cluster_traffic_policy.go).
        if http.use_client_protocol == Some(true) {
            if pool.h2_upgrade {
                report.error(
                    &f.key("useClientProtocol"),
                    "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
                );
            }
            pool.use_client_protocol = true;
            pool.h2_upgrade = false;
        }
        if let Some(ka) = &http.http2_keep_alive {
            pool.http2_keepalive = http2_keepalive(ka, &f.key("http2KeepAlive"), report);
        }
    }
    pool
}

/// A duration Istio validates with `agent.ValidateDuration`: at least 1 ms.
fn at_least_1ms(value: &str, field: &Field, report: &mut Reporter<'_>) -> Option<Duration> {
    let d = parse_duration_at(value, field, report)?;
    if d < Duration::from_millis(1) {
        report.error(field, "must be at least 1ms");
        return None;
    }
    Some(d)
}

/// `tcp.tcpKeepalive`: SO_KEEPALIVE with the given probe settings, the OS defaults for the
/// others (istiod's `setKeepAliveSettings`, pilot/pkg/networking/core/cluster.go). Envoy takes
/// whole seconds; istiod truncates, so a sub-second value is rounded down here too (at least 1 s,
/// the kernel's minimum).
fn tcp_keepalive(ka: &r::TcpKeepalive, field: &Field, report: &mut Reporter<'_>) -> TcpKeepalive {
    let seconds = |v: &Option<String>, name: &str, report: &mut Reporter<'_>| {
        let d = at_least_1ms(v.as_deref()?, &field.key(name), report)?;
        Some(Duration::from_secs(d.as_secs().max(1)))
    };
    TcpKeepalive {
        probes: ka.probes.filter(|&n| n > 0),
        time: seconds(&ka.time, "time", report),
        interval: seconds(&ka.interval, "interval", report),
    }
}

/// `http.http2KeepAlive`: both durations are required (istiod's `validateConnectionPool`,
/// pkg/config/validation/validation.go); applied to HTTP/2 connections only, as istiod sets it
/// only on clusters with HTTP/2 protocol options.
fn http2_keepalive(
    ka: &r::Http2KeepAlive,
    field: &Field,
    report: &mut Reporter<'_>,
) -> Option<Http2Keepalive> {
    let mut get = |v: &Option<String>, name: &str| match v {
        None => {
            report.error(
                &field.key(name),
                format!("http2 keepalive {name} is required"),
            );
            None
        }
        Some(v) => at_least_1ms(v, &field.key(name), report),
    };
    let interval = get(&ka.interval, "interval");
    let timeout = get(&ka.timeout, "timeout");
    Some(Http2Keepalive {
        interval: interval?,
        timeout: timeout?,
    })
}
