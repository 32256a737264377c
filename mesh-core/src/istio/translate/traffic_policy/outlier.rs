//! `outlierDetection` (passive health checking, Istio's fields onto Envoy's semantics) and
//! `retryBudget`: the two guards against a failing upstream being made worse.

use std::time::Duration;

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::super::parse_duration_at;
use crate::model::{OutlierDetection, RetryBudget};

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

/// `retryBudget`: Istio's defaults are Envoy's, 20 % with at least 3 concurrent retries. The
/// model keeps whole percents; a fraction is rounded.
pub(super) fn retry_budget(
    b: &r::RetryBudgetSettings,
    field: &Field,
    report: &mut Reporter<'_>,
) -> RetryBudget {
    report.unimplemented(&b.budget_interval, &field.key("budgetInterval"));
    let mut budget = RetryBudget::default();
    if let Some(p) = b.percent {
        if (0.0..=100.0).contains(&p) {
            // In range, so it fits.
            budget.budget_percent = p.round() as u32;
        } else {
            report.error(&field.key("percent"), format!("{p} is outside 0..100"));
        }
    }
    if let Some(n) = b.min_retry_concurrency {
        budget.min_retry_concurrency = n;
    }
    budget
}
