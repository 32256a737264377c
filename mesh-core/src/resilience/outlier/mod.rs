//! Outlier detection: passive health checking as Envoy does it
//! (<https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier>).
//!
//! - **Consecutive 5xx**: that many 5xx responses in a row eject the endpoint. Unless
//!   `split_external_local_origin_errors` is set, locally originated failures (connect failure,
//!   reset, timeout) count too, as a 503.
//! - **Consecutive gateway errors**: the same for 502, 503, 504 (and local failures unless
//!   split).
//! - **Consecutive local-origin failures**: when split, connect failures count on their own
//!   and a successful connection resets them.
//!
//! An endpoint is ejected if, counting it, ejected endpoints stay within `max_ejection_percent`
//! of the cluster, or if none is ejected yet (so one can always be). It stays out for
//! `base_ejection_time × k`, `k` growing by one with each ejection and capped so the time never
//! exceeds `max(base_ejection_time, max_ejection_time)`; every interval the endpoint spends
//! healthy lowers `k` by one again (Envoy's ejection-time backoff). Ejections end at the
//! [`OutlierDetector::sweep`] the caller runs every `interval`.
//!
//! `min_health_percent` is not a rule of the detector: Istio translates it into Envoy's panic
//! threshold, so it takes effect in the [`Balancer`](crate::balance::Balancer), which balances
//! over ejected endpoints too when too few are healthy.
//!
//! Concurrency: results are counted lock-free in per-endpoint atomics (a success writes only
//! if a counter is non-zero, so the common case is one load). Only when a counter reaches its
//! threshold does the detector take a per-cluster mutex, to decide the ejection against the
//! cluster's ejected count and update the endpoint's ejection record atomically; that happens
//! at most once per threshold crossing, and sweeps take the same mutex every interval.

mod detector;
mod host;

pub use detector::{EjectReason, Ejection, Outcome, OutlierDetector};
pub(crate) use host::HostOutlier;

#[cfg(test)]
mod tests;
