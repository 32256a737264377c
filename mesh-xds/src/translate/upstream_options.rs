//! CDS fields for three DestinationRule settings, both ways, as istiod writes them:
//!
//! - `loadBalancer.warmup` → the `slow_start_config` of `round_robin_lb_config` or
//!   `least_request_lb_config` (`applyRoundRobinLoadBalancer`, `applyLeastRequestLoadBalancer`,
//!   `setWarmup`, pilot/pkg/networking/core/cluster_traffic_policy.go);
//! - `connectionPool.tcp.tcpKeepalive` → `upstream_connection_options.tcp_keepalive`, times in
//!   whole seconds (`setKeepAliveSettings`, pilot/pkg/networking/core/cluster.go);
//! - `connectionPool.http.http2KeepAlive` → `connection_keepalive` of the HTTP/2 protocol
//!   options, only for clusters that speak HTTP/2 (`applyConnectionPool`).
//!
//! Reading them back gives a mesh client the same behaviour from an istiod (or mesh) control
//! plane as from the Istio files.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::UpstreamConnectionOptions;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    LbConfig, LbPolicy as XdsLb, LeastRequestLbConfig, RoundRobinLbConfig, SlowStartConfig,
};
use envoy_types::pb::envoy::config::core::v3::{
    Http2ProtocolOptions, KeepaliveSettings, RuntimeDouble, TcpKeepalive as XdsTcpKeepalive,
};
use envoy_types::pb::envoy::r#type::v3::Percent as XdsPercent;
use mesh_core::model::{Http2Keepalive, LbPolicy, SlowStart, TcpKeepalive};

use super::error::{Scope, XdsError};
use super::proto::{duration_from, duration_to, u32v};

/// Envoy's `slow_start_config` defaults when a field is unset.
const ENVOY_DEFAULT_AGGRESSION: f64 = 1.0;
const ENVOY_DEFAULT_MIN_WEIGHT_PERCENT: f64 = 10.0;

/// The runtime key given with the aggression (Envoy requires one; none is ever set, so the
/// default value is what applies).
const AGGRESSION_RUNTIME_KEY: &str = "mesh.slow_start.aggression";

fn slow_start_config(s: &SlowStart) -> SlowStartConfig {
    SlowStartConfig {
        slow_start_window: Some(duration_to(s.window)),
        aggression: Some(RuntimeDouble {
            default_value: s.aggression,
            runtime_key: AGGRESSION_RUNTIME_KEY.to_owned(),
        }),
        min_weight_percent: Some(XdsPercent {
            value: s.min_weight_percent,
        }),
    }
}

/// The `lb_config` carrying `slow_start` for a cluster sent with `lb_policy`; `None` for the
/// policies Envoy gives no slow start.
pub(super) fn slow_start_to_xds(slow_start: &SlowStart, lb_policy: i32) -> Option<LbConfig> {
    let config = Some(slow_start_config(slow_start));
    match XdsLb::try_from(lb_policy).ok()? {
        XdsLb::RoundRobin => Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
            slow_start_config: config,
        })),
        XdsLb::LeastRequest => Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
            slow_start_config: config,
            ..Default::default()
        })),
        _ => None,
    }
}

/// The slow start of a cluster's `lb_config`, for the policy `lb` it was decoded to. Envoy's
/// rules: an unset or zero window is no slow start; aggression defaults to 1.0 and must be above
/// 0; the minimum weight defaults to 10 %.
pub(super) fn slow_start_from_xds(
    lb_config: Option<&LbConfig>,
    lb: &LbPolicy,
    scope: &mut Scope,
) -> Result<Option<SlowStart>, XdsError> {
    let (config, field) = match lb_config {
        Some(LbConfig::RoundRobinLbConfig(c)) => (
            c.slow_start_config.as_ref(),
            "round_robin_lb_config.slow_start_config",
        ),
        Some(LbConfig::LeastRequestLbConfig(c)) => (
            c.slow_start_config.as_ref(),
            "least_request_lb_config.slow_start_config",
        ),
        _ => return Ok(None),
    };
    let Some(config) = config else {
        return Ok(None);
    };
    let window = match &config.slow_start_window {
        None => return Ok(None),
        Some(d) => duration_from(d)
            .ok_or_else(|| scope.error(format!("{field}.slow_start_window"), "negative"))?,
    };
    if window.is_zero() {
        return Ok(None);
    }
    let aggression = config
        .aggression
        .as_ref()
        .map_or(ENVOY_DEFAULT_AGGRESSION, |a| a.default_value);
    if !(aggression > 0.0 && aggression.is_finite()) {
        return Err(scope.error(format!("{field}.aggression"), "must be greater than 0"));
    }
    let min_weight_percent = config
        .min_weight_percent
        .as_ref()
        .map_or(ENVOY_DEFAULT_MIN_WEIGHT_PERCENT, |p| p.value);
    if !(0.0..=100.0).contains(&min_weight_percent) {
        return Err(scope.error(
            format!("{field}.min_weight_percent"),
            "must be within 0..=100",
        ));
    }
    if !matches!(
        lb,
        LbPolicy::RoundRobin | LbPolicy::LeastRequest | LbPolicy::PeakEwma
    ) {
        scope.warn(
            field,
            "slow start applies to ROUND_ROBIN and LEAST_REQUEST only; ignored",
        );
        return Ok(None);
    }
    Ok(Some(SlowStart {
        window,
        aggression,
        min_weight_percent,
    }))
}

/// `upstream_connection_options` for `keepalive`.
pub(super) fn tcp_keepalive_to_xds(keepalive: &TcpKeepalive) -> UpstreamConnectionOptions {
    let secs = |d: Option<Duration>| d.and_then(|d| u32v(u32::try_from(d.as_secs()).ok()?));
    UpstreamConnectionOptions {
        tcp_keepalive: Some(XdsTcpKeepalive {
            keepalive_probes: keepalive.probes.and_then(u32v),
            keepalive_time: secs(keepalive.time),
            keepalive_interval: secs(keepalive.interval),
        }),
        ..Default::default()
    }
}

/// The TCP keep-alive of `options` (an empty `tcp_keepalive` is SO_KEEPALIVE with the system's
/// settings); the other fields are reported as not implemented.
pub(super) fn tcp_keepalive_from_xds(
    options: Option<&UpstreamConnectionOptions>,
    scope: &mut Scope,
) -> Option<TcpKeepalive> {
    let options = options?;
    let mut residual = *options;
    residual.tcp_keepalive = None;
    scope.unsupported("upstream_connection_options", &residual);
    let k = options.tcp_keepalive.as_ref()?;
    Some(TcpKeepalive {
        probes: k.keepalive_probes.as_ref().map(|v| v.value),
        time: k
            .keepalive_time
            .as_ref()
            .map(|v| Duration::from_secs(v.value.into())),
        interval: k
            .keepalive_interval
            .as_ref()
            .map(|v| Duration::from_secs(v.value.into())),
    })
}

/// HTTP/2 options carrying `keepalive`.
pub(super) fn http2_options(keepalive: Option<&Http2Keepalive>) -> Http2ProtocolOptions {
    Http2ProtocolOptions {
        connection_keepalive: keepalive.map(|k| KeepaliveSettings {
            interval: Some(duration_to(k.interval)),
            timeout: Some(duration_to(k.timeout)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The PING keep-alive of HTTP/2 options at `field`. Envoy PINGs only with a non-zero
/// `interval`; `timeout` is required with it. The jitter is not applied (hyper PINGs on the
/// interval); `connection_idle_interval` is reported as not implemented.
pub(super) fn http2_keepalive_from_xds(
    options: &Http2ProtocolOptions,
    field: &str,
    scope: &mut Scope,
) -> Result<Option<Http2Keepalive>, XdsError> {
    let Some(k) = &options.connection_keepalive else {
        return Ok(None);
    };
    let field = format!("{field}.connection_keepalive");
    let mut residual = *k;
    residual.interval = None;
    residual.timeout = None;
    residual.interval_jitter = None;
    scope.unsupported(&field, &residual);
    let get = |d: &Option<envoy_types::pb::google::protobuf::Duration>, name: &str| {
        d.as_ref()
            .map(|d| {
                duration_from(d).ok_or_else(|| scope.error(format!("{field}.{name}"), "negative"))
            })
            .transpose()
    };
    let interval = get(&k.interval, "interval")?.filter(|d| !d.is_zero());
    let timeout = get(&k.timeout, "timeout")?;
    match (interval, timeout) {
        (None, _) => Ok(None),
        (Some(_), None) => {
            Err(scope.error(format!("{field}.timeout"), "required with an interval"))
        }
        (Some(interval), Some(timeout)) => Ok(Some(Http2Keepalive { interval, timeout })),
    }
}
