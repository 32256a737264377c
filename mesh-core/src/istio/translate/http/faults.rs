//! Fault injection (`http[].fault`) and the percentages Istio writes two ways.

use std::time::Duration;

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::super::parse_duration_at;
use crate::model::{AbortStatus, FaultAbort, FaultDelay, FaultPolicy, Percent};

/// A percentage at `field.<name>.value`, else the legacy integer at `field.<legacy_name>`, else
/// 100 %.
pub(super) fn percentage(
    p: &Option<r::Percentage>,
    legacy: Option<i64>,
    field: &Field,
    (name, legacy_name): (&str, &str),
    report: &mut Reporter<'_>,
) -> Option<Percent> {
    if let Some(p) = p {
        let value = p.value.unwrap_or(0.0);
        return match Percent::from_percent(value) {
            Some(p) => Some(p),
            None => {
                report.error(
                    &field.key(name).key("value"),
                    format!("percentage {value} is outside 0..100"),
                );
                None
            }
        };
    }
    if let Some(v) = legacy {
        return match Percent::from_percent(v as f64) {
            Some(p) if (0..=100).contains(&v) => Some(p),
            _ => {
                report.error(
                    &field.key(legacy_name),
                    format!("percentage {v} is outside 0..100"),
                );
                None
            }
        };
    }
    Some(Percent::ALL)
}

pub(super) fn fault(
    x: &r::HttpFaultInjection,
    f: &Field,
    report: &mut Reporter<'_>,
) -> Option<FaultPolicy> {
    let delay = match &x.delay {
        None => None,
        Some(d) => {
            let df = f.key("delay");
            report.unimplemented(&d.exponential_delay, &df.key("exponentialDelay"));
            let percentage = percentage(
                &d.percentage,
                d.percent,
                &df,
                ("percentage", "percent"),
                report,
            );
            match d.fixed_delay.as_deref() {
                None => {
                    report.error(&df.key("fixedDelay"), "fixedDelay is required");
                    None
                }
                Some(t) => {
                    let fixed_delay = parse_duration_at(t, &df.key("fixedDelay"), report);
                    if fixed_delay.is_some_and(|d| d < Duration::from_millis(1)) {
                        report.error(&df.key("fixedDelay"), "must be at least 1ms");
                    }
                    Some(FaultDelay {
                        fixed_delay: fixed_delay?,
                        percentage: percentage?,
                    })
                }
            }
        }
    };
    let abort = match &x.abort {
        None => None,
        Some(a) => {
            let af = f.key("abort");
            report.unimplemented(&a.http2_error, &af.key("http2Error"));
            let percentage = percentage(&a.percentage, None, &af, ("percentage", ""), report);
            let status = match (a.http_status, a.grpc_status.as_deref()) {
                (Some(_), Some(_)) => {
                    report.error(&af, "httpStatus and grpcStatus are mutually exclusive");
                    None
                }
                (Some(s @ 200..=599), None) => Some(AbortStatus::Http(s as u16)),
                (Some(s), None) => {
                    report.error(
                        &af.key("httpStatus"),
                        format!("status {s} is outside 200..599"),
                    );
                    None
                }
                (None, Some(name)) => match grpc_code(name) {
                    Some(c) => Some(AbortStatus::Grpc(c)),
                    None => {
                        report.error(
                            &af.key("grpcStatus"),
                            format!("unknown gRPC status {name:?}"),
                        );
                        None
                    }
                },
                (None, None) => {
                    if a.http2_error.is_none() {
                        report.error(&af, "one of httpStatus, grpcStatus is required");
                    }
                    None
                }
            };
            status
                .zip(percentage)
                .map(|(status, percentage)| FaultAbort { status, percentage })
        }
    };
    (delay.is_some() || abort.is_some()).then_some(FaultPolicy { delay, abort })
}

/// gRPC status codes by name, in any case (and as numbers).
fn grpc_code(name: &str) -> Option<u16> {
    crate::telemetry::grpc_status_code(&name.to_ascii_uppercase())
        .or_else(|| name.parse::<u16>().ok().filter(|&c| c <= 16))
}
