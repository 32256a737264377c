//! DestinationRule traffic policies: validation into model parts, and Istio's merge of subset
//! and port-level settings.
//!
//! Merging follows Istio's `MergeTrafficPolicy`: a cluster's policy starts from the rule's
//! top-level policy, then the rule's `portLevelSettings` for the cluster's port, then the
//! subset's top-level fields, then the subset's `portLevelSettings` for the port. Each of
//! `loadBalancer`, `connectionPool`, `outlierDetection`, `tls` and `retryBudget` replaces the
//! inherited value whole (so a subset policy without a retry budget keeps the rule's).

mod connection_pool;
mod load_balancer;
mod outlier;
mod tls;

use std::collections::BTreeMap;

use super::super::diag::{Field, Reporter};
use super::super::resources as r;
use crate::model::{
    ConnectionPool, LbPolicy, LocalityLbSetting, OutlierDetection, RetryBudget, SlowStart,
    UpstreamTls,
};
use connection_pool::connection_pool;
pub(crate) use load_balancer::mesh_locality_default;
use load_balancer::{load_balancer, warmup};
use outlier::{outlier, retry_budget};
use tls::tls;

/// One level of policy, fields unset when the level does not give them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Policy {
    pub(crate) lb: Option<(LbPolicy, LocalityLbSetting)>,
    pub(crate) pool: Option<ConnectionPool>,
    pub(crate) outlier: Option<OutlierDetection>,
    pub(crate) tls: Option<UpstreamTls>,
    pub(crate) retry_budget: Option<RetryBudget>,
    /// `loadBalancer.warmup`, replaced together with `lb` (both come from `loadBalancer`).
    pub(crate) warmup: Option<SlowStart>,
}

impl Policy {
    /// Applies `over` on top of `self`: each part `over` gives replaces ours whole.
    pub(crate) fn overlay(&mut self, over: &Policy) {
        if over.lb.is_some() {
            self.lb.clone_from(&over.lb);
            self.warmup.clone_from(&over.warmup);
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
        if over.retry_budget.is_some() {
            self.retry_budget.clone_from(&over.retry_budget);
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
        retry_budget: tp
            .retry_budget
            .as_ref()
            .map(|b| retry_budget(b, &field.key("retryBudget"), report)),
        warmup: tp
            .load_balancer
            .as_ref()
            .and_then(|lb| warmup(lb, &field.key("loadBalancer"), report)),
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
            // Port-level settings have no retry budget.
            retry_budget: None,
            warmup: pl
                .load_balancer
                .as_ref()
                .and_then(|lb| warmup(lb, &f.key("loadBalancer"), report)),
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
