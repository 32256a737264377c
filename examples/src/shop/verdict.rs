//! Did the demo work? A run whose requests failed says so and exits 1, so a script or a CI job
//! running it (and a user who only looks at the exit status) sees a broken demo as broken.
//!
//! A request failed when the load generator counted it as failed: an order not answered 200,
//! or a direct call to payment that was not refused with `PERMISSION_DENIED` (the denials the
//! AuthorizationPolicy is meant to produce are not failures). A run that completed no order at
//! all failed too.

use super::Error;
use super::loadgen::LoadStats;

/// `Ok` when every request was answered as intended and at least one order completed.
pub fn check(stats: &LoadStats) -> Result<(), Error> {
    let failed: u64 = stats.failures.values().sum();
    if failed == 0 && stats.orders_ok > 0 {
        return Ok(());
    }
    let mut reasons: Vec<(&String, &u64)> = stats.failures.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut reasons: Vec<String> = reasons
        .iter()
        .take(3)
        .map(|(reason, n)| format!("{n} × {reason}"))
        .collect();
    if stats.orders_ok == 0 {
        reasons.push("no order completed".to_owned());
    }
    Err(Error::TrafficFailed {
        failed,
        sent: stats.sent,
        reasons: reasons.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_or_no_orders_fail_the_run() {
        let mut stats = LoadStats {
            sent: 10,
            orders_ok: 10,
            ..LoadStats::default()
        };
        assert!(check(&stats).is_ok());
        stats.failures.insert("503 from frontend".to_owned(), 2);
        let text = check(&stats)
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            text.contains("2 of 10") && text.contains("503 from frontend"),
            "{text}"
        );
        let none = LoadStats {
            sent: 5,
            ..LoadStats::default()
        };
        let text = check(&none)
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(text.contains("no order completed"), "{text}");
    }
}
