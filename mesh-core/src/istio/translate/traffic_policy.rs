//! DestinationRule traffic policies: validation into model parts, and Istio's merge of subset
//! and port-level settings.
//!
//! Merging follows Istio's `MergeTrafficPolicy`: a cluster's policy starts from the rule's
//! top-level policy, then the rule's `portLevelSettings` for the cluster's port, then the
//! subset's top-level fields, then the subset's `portLevelSettings` for the port. Each of
//! `loadBalancer`, `connectionPool`, `outlierDetection` and `tls` replaces the inherited value
//! whole.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::diag::{Field, Reporter};
use super::super::resources as r;
use super::parse_duration_at;
use crate::model::{
    ConnectionPool, HashKey, LbPolicy, LocalityFailover, LocalityLbSetting, OutlierDetection,
    TlsMode, UpstreamTls,
};

/// Ring size Istio gives Envoy's ring hash when none is set.
const DEFAULT_RING_SIZE: u64 = 1024;
/// Envoy's default Maglev table size.
const DEFAULT_MAGLEV_TABLE: u64 = 65537;

/// One level of policy, fields unset when the level does not give them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Policy {
    pub(crate) lb: Option<(LbPolicy, LocalityLbSetting)>,
    pub(crate) pool: Option<ConnectionPool>,
    pub(crate) outlier: Option<OutlierDetection>,
    pub(crate) tls: Option<UpstreamTls>,
}

impl Policy {
    /// Applies `over` on top of `self`: each part `over` gives replaces ours whole.
    pub(crate) fn overlay(&mut self, over: &Policy) {
        if over.lb.is_some() {
            self.lb.clone_from(&over.lb);
        }
        if over.pool.is_some() {
            self.pool.clone_from(&over.pool);
        }
        if over.outlier.is_some() {
            self.outlier.clone_from(&over.outlier);
        }
        if over.tls.is_some() {
            self.tls.clone_from(&over.tls);
        }
    }
}

/// A rule's or subset's policy: top level and per port.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LeveledPolicy {
    pub(crate) top: Policy,
    pub(crate) ports: BTreeMap<u16, Policy>,
}

impl LeveledPolicy {
    /// This level's policy for `port`, applied over `base`.
    pub(crate) fn apply(&self, base: &mut Policy, port: u16) {
        base.overlay(&self.top);
        if let Some(p) = self.ports.get(&port) {
            base.overlay(p);
        }
    }
}

/// Validates a `trafficPolicy` at `field`. `least_request` is what LEAST_REQUEST means for this
/// rule (PEAK_EWMA when the rule's annotation asks for it).
pub(crate) fn compile(
    tp: &r::TrafficPolicy,
    field: &Field,
    least_request: &LbPolicy,
    report: &mut Reporter<'_>,
) -> LeveledPolicy {
    report.unimplemented(&tp.tunnel, &field.key("tunnel"));
    report.unimplemented(&tp.proxy_protocol, &field.key("proxyProtocol"));
    report.unimplemented(&tp.retry_budget, &field.key("retryBudget"));
    let top = Policy {
        lb: tp
            .load_balancer
            .as_ref()
            .and_then(|lb| load_balancer(lb, &field.key("loadBalancer"), least_request, report)),
        pool: tp
            .connection_pool
            .as_ref()
            .map(|p| connection_pool(p, &field.key("connectionPool"), report)),
        outlier: tp
            .outlier_detection
            .as_ref()
            .map(|o| outlier(o, &field.key("outlierDetection"), report)),
        tls: tp.tls.as_ref().map(|t| tls(t, &field.key("tls"), report)),
    };
    let mut ports = BTreeMap::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let f = field.key("portLevelSettings").index(i);
        let Some(port) = port_number(
            pl.port.as_ref().and_then(|p| p.number),
            &f.key("port").key("number"),
            report,
        ) else {
            continue;
        };
        let policy = Policy {
            lb: pl
                .load_balancer
                .as_ref()
                .and_then(|lb| load_balancer(lb, &f.key("loadBalancer"), least_request, report)),
            pool: pl
                .connection_pool
                .as_ref()
                .map(|p| connection_pool(p, &f.key("connectionPool"), report)),
            outlier: pl
                .outlier_detection
                .as_ref()
                .map(|o| outlier(o, &f.key("outlierDetection"), report)),
            tls: pl.tls.as_ref().map(|t| tls(t, &f.key("tls"), report)),
        };
        if ports.insert(port, policy).is_some() {
            report.error(
                &f.key("port"),
                format!("port {port} has more than one portLevelSettings entry"),
            );
        }
    }
    LeveledPolicy { top, ports }
}

/// Validates a required port number (1..=65535).
pub(crate) fn port_number(n: Option<u32>, field: &Field, report: &mut Reporter<'_>) -> Option<u16> {
    match n {
        None => {
            report.error(field, "port number is required");
            None
        }
        Some(n) => match u16::try_from(n) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                report.error(field, format!("port {n} is out of range 1..65535"));
                None
            }
        },
    }
}

fn load_balancer(
    lb: &r::LoadBalancerSettings,
    field: &Field,
    least_request: &LbPolicy,
    report: &mut Reporter<'_>,
) -> Option<(LbPolicy, LocalityLbSetting)> {
    report.unimplemented(&lb.warmup_duration_secs, &field.key("warmupDurationSecs"));
    report.unimplemented(&lb.warmup, &field.key("warmup"));
    let policy = match (&lb.simple, &lb.consistent_hash) {
        (Some(_), Some(_)) => {
            report.error(field, "simple and consistentHash are mutually exclusive");
            return None;
        }
        (Some(simple), None) => match simple {
            r::SimpleLb::Unspecified | r::SimpleLb::LeastConn | r::SimpleLb::LeastRequest => {
                least_request.clone()
            }
            r::SimpleLb::RoundRobin => LbPolicy::RoundRobin,
            r::SimpleLb::Random => LbPolicy::Random,
            r::SimpleLb::Passthrough => {
                report.warn(
                    &field.key("simple"),
                    "PASSTHROUGH is not implemented; LEAST_REQUEST is used",
                );
                least_request.clone()
            }
        },
        (None, Some(ch)) => consistent_hash(ch, &field.key("consistentHash"), report)?,
        (None, None) => least_request.clone(),
    };
    let locality = lb
        .locality_lb_setting
        .as_ref()
        .map(|l| locality_setting(l, &field.key("localityLbSetting"), report))
        .unwrap_or_default();
    Some((policy, locality))
}

fn consistent_hash(
    ch: &r::ConsistentHash,
    field: &Field,
    report: &mut Reporter<'_>,
) -> Option<LbPolicy> {
    let mut keys = Vec::new();
    if let Some(h) = &ch.http_header_name {
        keys.push(HashKey::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = &ch.http_cookie {
        let f = field.key("httpCookie");
        report.unimplemented(&c.attributes, &f.key("attributes"));
        let ttl = c
            .ttl
            .as_deref()
            .and_then(|t| parse_duration_at(t, &f.key("ttl"), report));
        match &c.name {
            Some(name) if !name.is_empty() => keys.push(HashKey::Cookie {
                name: name.clone(),
                path: c.path.clone(),
                ttl: ttl.filter(|t| !t.is_zero()),
            }),
            _ => {
                report.error(&f.key("name"), "cookie name is required");
                return None;
            }
        }
    }
    if ch.use_source_ip == Some(true) {
        keys.push(HashKey::SourceIp);
    }
    if let Some(q) = &ch.http_query_parameter_name {
        keys.push(HashKey::QueryParameter(q.clone()));
    }
    if keys.len() != 1 {
        report.error(
            field,
            "exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required",
        );
        return None;
    }
    let key = keys.remove(0);
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        report.error(field, "ringHash and maglev are mutually exclusive");
        return None;
    }
    if let Some(m) = &ch.maglev {
        let table_size = m.table_size.unwrap_or(DEFAULT_MAGLEV_TABLE);
        if !is_prime(table_size) {
            report.error(
                &field.key("maglev").key("tableSize"),
                format!("table size {table_size} must be a prime"),
            );
            return None;
        }
        return Some(LbPolicy::Maglev { key, table_size });
    }
    let minimum_ring_size = ch
        .ring_hash
        .as_ref()
        .and_then(|r| r.minimum_ring_size)
        .or(ch.minimum_ring_size)
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_RING_SIZE);
    Some(LbPolicy::RingHash {
        key,
        minimum_ring_size,
    })
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn locality_setting(
    l: &r::LocalityLbSetting,
    field: &Field,
    report: &mut Reporter<'_>,
) -> LocalityLbSetting {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        report.error(field, "distribute and failover are mutually exclusive");
    }
    let mut distribute = Vec::new();
    for (i, d) in l.distribute.iter().enumerate() {
        let f = field.key("distribute").index(i);
        let from = d.from.clone().unwrap_or_default();
        if from.is_empty() {
            report.error(&f.key("from"), "from is required");
        }
        let total: u64 = d.to.values().map(|&w| u64::from(w)).sum();
        if total != 100 {
            report.error(
                &f.key("to"),
                format!("weights sum to {total}, expected 100"),
            );
        }
        distribute.push((from, d.to.clone()));
    }
    let mut failover = Vec::new();
    for (i, fo) in l.failover.iter().enumerate() {
        let f = field.key("failover").index(i);
        match (&fo.from, &fo.to) {
            (Some(from), Some(to)) if from != to => failover.push(LocalityFailover {
                from: from.clone(),
                to: to.clone(),
            }),
            (Some(_), Some(_)) => report.error(&f, "from and to must differ"),
            _ => report.error(&f, "from and to are required"),
        }
    }
    LocalityLbSetting {
        enabled: l.enabled.unwrap_or(true),
        distribute,
        failover,
        failover_priority: l.failover_priority.clone(),
    }
}

fn connection_pool(
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

fn outlier(
    o: &r::OutlierDetectionSettings,
    field: &Field,
    report: &mut Reporter<'_>,
) -> OutlierDetection {
    let mut od = OutlierDetection::default();
    if let Some(n) = o.consecutive_5xx_errors {
        od.consecutive_5xx = n;
    }
    if let Some(n) = o.consecutive_errors {
        report.warn(
            &field.key("consecutiveErrors"),
            "deprecated; read as consecutiveGatewayErrors",
        );
        if o.consecutive_gateway_errors.is_none() {
            od.consecutive_gateway_errors = n;
        }
    }
    if let Some(n) = o.consecutive_gateway_errors {
        od.consecutive_gateway_errors = n;
    }
    if let Some(n) = o.consecutive_local_origin_failures {
        od.consecutive_local_origin_failures = n;
    }
    if let Some(b) = o.split_external_local_origin_errors {
        od.split_external_local_origin_errors = b;
    }
    let duration =
        |v: &Option<String>, name: &str, report: &mut Reporter<'_>| -> Option<Duration> {
            let d = parse_duration_at(v.as_deref()?, &field.key(name), report)?;
            if d < Duration::from_millis(1) {
                report.error(&field.key(name), "must be at least 1ms");
                return None;
            }
            Some(d)
        };
    if let Some(d) = duration(&o.interval, "interval", report) {
        od.interval = d;
    }
    if let Some(d) = duration(&o.base_ejection_time, "baseEjectionTime", report) {
        od.base_ejection_time = d;
        od.max_ejection_time = od.max_ejection_time.max(d);
    }
    for (value, name, target) in [
        (
            o.max_ejection_percent,
            "maxEjectionPercent",
            &mut od.max_ejection_percent,
        ),
        (
            o.min_health_percent,
            "minHealthPercent",
            &mut od.min_health_percent,
        ),
    ] {
        if let Some(p) = value {
            if p > 100 {
                report.error(&field.key(name), format!("{p} is outside 0..100"));
            } else {
                *target = p;
            }
        }
    }
    od
}

fn tls(t: &r::ClientTlsSettings, field: &Field, report: &mut Reporter<'_>) -> UpstreamTls {
    report.unimplemented(&t.credential_name, &field.key("credentialName"));
    report.unimplemented(&t.insecure_skip_verify, &field.key("insecureSkipVerify"));
    report.unimplemented(&t.ca_crl, &field.key("caCrl"));
    let mode = match t.mode {
        None | Some(r::TlsModeSetting::Disable) => TlsMode::Disable,
        Some(r::TlsModeSetting::Simple) => TlsMode::Simple,
        Some(r::TlsModeSetting::Mutual) => TlsMode::Mutual,
        Some(r::TlsModeSetting::IstioMutual) => TlsMode::IstioMutual,
    };
    if mode == TlsMode::Mutual {
        if t.client_certificate.is_none() {
            report.error(&field.key("clientCertificate"), "required with mode MUTUAL");
        }
        if t.private_key.is_none() {
            report.error(&field.key("privateKey"), "required with mode MUTUAL");
        }
    }
    if mode == TlsMode::IstioMutual
        && (t.client_certificate.is_some()
            || t.private_key.is_some()
            || t.ca_certificates.is_some())
    {
        report.error(
            field,
            "ISTIO_MUTUAL uses the workload's identity; certificate files must not be set",
        );
    }
    UpstreamTls {
        mode,
        sni: t.sni.clone(),
        subject_alt_names: t.subject_alt_names.clone(),
        client_certificate: t.client_certificate.clone(),
        private_key: t.private_key.clone(),
        ca_certificates: t.ca_certificates.clone(),
    }
}
