//! `loadBalancer`: simple policies, consistent hashing (ring hash or Maglev) and locality
//! settings.

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::super::parse_duration_at;
use crate::model::{HashKey, LbPolicy, LocalityFailover, LocalityLbSetting, SlowStart};

/// Ring size Istio gives Envoy's ring hash when none is set.
const DEFAULT_RING_SIZE: u64 = 1024;
/// Envoy's default Maglev table size.
const DEFAULT_MAGLEV_TABLE: u64 = 65537;
/// Envoy's largest ring.
const MAX_RING_SIZE: u64 = 8_388_608;

pub(super) fn load_balancer(
    lb: &r::LoadBalancerSettings,
    field: &Field,
    least_request: &LbPolicy,
    report: &mut Reporter<'_>,
) -> Option<(LbPolicy, LocalityLbSetting)> {
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
        .unwrap_or_else(mesh_locality_default);
    Some((policy, locality))
}

/// Envoy's default `slow_start_config.min_weight_percent`, which istiod's `setWarmup` also uses.
const DEFAULT_WARMUP_MIN_PERCENT: f64 = 10.0;

/// `warmup` (or the older `warmupDurationSecs`): Envoy's slow start, as istiod sets it in
/// `applyRoundRobinLoadBalancer` / `applyLeastRequestLoadBalancer`
/// (pilot/pkg/networking/core/cluster_traffic_policy.go): `warmup` wins over
/// `warmupDurationSecs`; aggression defaults to 1.0 and the minimum weight to 10 % (`setWarmup`);
/// only ROUND_ROBIN and LEAST_REQUEST (also the default) take it; with RANDOM or a consistent
/// hash istiod drops it, so it is ignored here with a warning. Checks follow istiod's
/// `validateLoadBalancer` (pkg/config/validation/validation.go).
pub(super) fn warmup(
    lb: &r::LoadBalancerSettings,
    field: &Field,
    report: &mut Reporter<'_>,
) -> Option<SlowStart> {
    let (window, f, aggression, min_percent) = match (&lb.warmup, &lb.warmup_duration_secs) {
        (Some(w), _) => {
            let f = field.key("warmup");
            let Some(d) = &w.duration else {
                report.error(&f.key("duration"), "duration is required");
                return None;
            };
            let window = parse_duration_at(d, &f.key("duration"), report)?;
            let aggression = w.aggression.unwrap_or(1.0);
            if aggression.is_nan() || aggression <= 0.0 {
                report.error(&f.key("aggression"), "aggression should be greater than 0");
                return None;
            }
            let min_percent = w.minimum_percent.unwrap_or(DEFAULT_WARMUP_MIN_PERCENT);
            if !(0.0..=100.0).contains(&min_percent) {
                report.error(
                    &f.key("minimumPercent"),
                    "minimumPercent value should be between 0 and 100",
                );
                return None;
            }
            (window, f, aggression, min_percent)
        }
        (None, Some(d)) => {
            let f = field.key("warmupDurationSecs");
            let window = parse_duration_at(d, &f, report)?;
            (window, f, 1.0, DEFAULT_WARMUP_MIN_PERCENT)
        }
        (None, None) => return None,
    };
    if window < std::time::Duration::from_millis(1) {
        report.error(&f, "duration must be at least 1ms");
        return None;
    }
    let takes_warmup = lb.consistent_hash.is_none()
        && !matches!(
            lb.simple,
            Some(r::SimpleLb::Random | r::SimpleLb::Passthrough)
        );
    if !takes_warmup {
        report.warn(
            &f,
            "ignored: istiod applies warmup to ROUND_ROBIN and LEAST_REQUEST only",
        );
        return None;
    }
    Some(SlowStart {
        window,
        aggression,
        min_weight_percent: min_percent,
    })
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
        let policy = LbPolicy::Maglev {
            key,
            table_size: m.table_size.unwrap_or(DEFAULT_MAGLEV_TABLE),
        };
        if let Err(e) = crate::balance::check_lb_policy(&policy) {
            report.error(&field.key("maglev").key("tableSize"), e.to_string());
            return None;
        }
        return Some(policy);
    }
    let minimum_ring_size = ch
        .ring_hash
        .as_ref()
        .and_then(|r| r.minimum_ring_size)
        .or(ch.minimum_ring_size)
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_RING_SIZE);
    if minimum_ring_size > MAX_RING_SIZE {
        report.error(
            field,
            format!("minimum ring size {minimum_ring_size} is above {MAX_RING_SIZE}"),
        );
        return None;
    }
    Some(LbPolicy::RingHash {
        key,
        minimum_ring_size,
    })
}

/// Istio's mesh-wide default when a rule gives no `localityLbSetting`: enabled (it takes effect
/// only with outlier detection; see the cluster builder).
pub(crate) fn mesh_locality_default() -> LocalityLbSetting {
    LocalityLbSetting {
        enabled: true,
        ..LocalityLbSetting::default()
    }
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
