//! Resilience state machines: outlier detection, retry budgets, backoff, circuit breaking.
//!
//! All of them follow Envoy's semantics (so Istio's `outlierDetection`, `connectionPool` and
//! `retries` mean here what they mean in a sidecar), keep their counters in atomics shared by
//! every request of a cluster, and take time and randomness from the caller.
//!
//! - [`OutlierDetector`]: passive health checking on consecutive errors, ejecting endpoints
//!   from balancing for a growing time.
//! - [`RetryBudget`]: caps concurrent retries to a share of active requests, plus the
//!   `maxRetries` limit.
//! - [`Backoff`]: Envoy's fully jittered exponential backoff between retries.
//! - [`CircuitBreaker`]: the connection-pool limits, whose overflow is a 503 with flag `UO`.

mod backoff;
mod breaker;
mod outlier;
mod retry_budget;

pub use backoff::Backoff;
pub use breaker::{CircuitBreaker, Limit, Overflow, Permit, RequestPermit};
pub(crate) use outlier::HostOutlier;
pub use outlier::{EjectReason, Ejection, Outcome, OutlierDetector};
pub use retry_budget::{ActiveRequest, ActiveRetry, RetryBudget, RetryDenied};
