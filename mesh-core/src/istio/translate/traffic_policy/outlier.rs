//! `outlierDetection`: passive health checking, Istio's fields onto Envoy's semantics.

use std::time::Duration;

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::super::parse_duration_at;
use crate::model::OutlierDetection;

pub(super) fn outlier(
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
