//! `connectionPool`: the limits that make up the circuit breaker.

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::super::parse_duration_at;
use crate::model::ConnectionPool;

pub(super) fn connection_pool(
    p: &r::ConnectionPoolSettings,
    field: &Field,
    report: &mut Reporter<'_>,
) -> ConnectionPool {
    let mut pool = ConnectionPool::default();
    if let Some(tcp) = &p.tcp {
        let f = field.key("tcp");
        report.unimplemented(&tcp.tcp_keepalive, &f.key("tcpKeepalive"));
        report.unimplemented(
            &tcp.max_connection_duration,
            &f.key("maxConnectionDuration"),
        );
        report.unimplemented(&tcp.idle_timeout, &f.key("idleTimeout"));
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
        report.unimplemented(&http.use_client_protocol, &f.key("useClientProtocol"));
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
    }
    pool
}
