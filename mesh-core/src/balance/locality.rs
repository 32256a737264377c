//! Locality-aware placement: which priority level each endpoint serves at, and with what weight.
//!
//! Follows Istio's `localityLbSetting`
//! (<https://istio.io/latest/docs/reference/config/networking/destination-rule/#LocalityLoadBalancerSetting>)
//! as Istio translates it for Envoy:
//!
//! - **distribute**: the first rule whose `from` matches the caller's locality gives each
//!   destination locality pattern a percentage; the localities a pattern matches share it in
//!   proportion to their endpoints' weights, and endpoints in localities no pattern matches get no
//!   traffic. Envoy then picks a locality by weight and an endpoint within it; we fold the two
//!   steps into one effective weight per endpoint (locality share × endpoint weight / locality
//!   weight), which gives the same long-run distribution.
//! - **failover** (only with outlier detection configured, as Istio requires, since without it
//!   nothing ever marks the near endpoints unhealthy): priority 0 for the caller's
//!   region/zone/subzone, 1 for its region/zone, 2 for its region, 3 for a region named by a
//!   `failover` rule from the caller's region, then every other region.
//! - **failoverPriority**: an ordered label list; an endpoint matching the caller on the first
//!   *k* labels (and not the next) gets priority `len - k`. The topology labels
//!   (`topology.kubernetes.io/region`, `…/zone`, `topology.istio.io/subzone`) compare localities.
//!   Combined with `failover`, label priority orders first and locality priority breaks ties.
//!
//! Priorities are then compacted to consecutive levels 0, 1, 2, ….
//!
//! **The control plane wins.** When a cluster's endpoints carry explicit priorities (any
//! [`Endpoint::priority`] other than 0) or the cluster uses the control plane's locality weights
//! ([`Cluster::uses_locality_weights`]), those are the levels and weights, and none of the above
//! is applied on top: istiod computes EDS priorities from `failover` and locality weights from
//! `distribute` itself, so applying them again here would count them twice.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Cluster, Endpoint, HealthStatus, Locality};

/// Where the caller runs: what locality-aware balancing compares endpoints with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientLocality {
    /// The caller's locality; empty disables locality-aware balancing.
    pub locality: Locality,
    /// The caller's labels, for `failoverPriority`.
    pub labels: BTreeMap<String, String>,
}

impl From<&crate::Workload> for ClientLocality {
    fn from(workload: &crate::Workload) -> Self {
        Self {
            locality: workload.locality.clone(),
            labels: workload.labels.clone(),
        }
    }
}

/// An endpoint's place in the balancer: its priority level and effective weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) priority: u32,
    pub(crate) weight: u32,
    /// Healthy in config (not `Unhealthy` nor `Draining`).
    pub(crate) eligible: bool,
}

const REGION_LABEL: &str = "topology.kubernetes.io/region";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const SUBZONE_LABEL: &str = "topology.istio.io/subzone";

/// Scale of the effective weights `distribute` produces (percent × this, split by weight).
const DISTRIBUTE_SCALE: u64 = 1_000;

/// Places every endpoint of `cluster`; `None` for an endpoint that gets no traffic.
pub(crate) fn place(cluster: &Cluster, client: &ClientLocality) -> Vec<Option<Placement>> {
    let endpoints = &cluster.endpoints;
    let eligible = |e: &Endpoint| e.health == HealthStatus::Healthy;
    let flat = || {
        endpoints
            .iter()
            .map(|e| {
                Some(Placement {
                    priority: 0,
                    weight: e.weight.max(1),
                    eligible: eligible(e),
                })
            })
            .collect()
    };
    if cluster.uses_locality_weights() || endpoints.iter().any(|e| e.priority != 0) {
        return control_plane(endpoints);
    }
    let setting = &cluster.locality_lb;
    if !setting.enabled || client.locality.is_empty() {
        return flat();
    }
    if !setting.distribute.is_empty() {
        let Some((_, to)) = setting
            .distribute
            .iter()
            .find(|(from, _)| locality_matches(&client.locality, from))
        else {
            return flat();
        };
        return distribute(endpoints, to)
            .into_iter()
            .zip(endpoints.iter())
            .map(|(w, e)| {
                w.map(|weight| Placement {
                    priority: 0,
                    weight,
                    eligible: eligible(e),
                })
            })
            .collect();
    }
    if cluster.outlier.is_none() {
        return flat();
    }
    let raw: Vec<u64> = endpoints
        .iter()
        .map(|e| {
            let locality = locality_priority(&e.locality, client, setting);
            if setting.failover_priority.is_empty() {
                locality
            } else {
                label_priority(e, client, &setting.failover_priority) * 8 + locality
            }
        })
        .collect();
    // Compact to consecutive levels.
    let distinct: BTreeSet<u64> = raw.iter().copied().collect();
    let level = |p: u64| distinct.range(..p).count() as u32;
    raw.iter()
        .zip(endpoints.iter())
        .map(|(&p, e)| {
            Some(Placement {
                priority: level(p),
                weight: e.weight.max(1),
                eligible: eligible(e),
            })
        })
        .collect()
}

/// The control plane's own levels: each endpoint's [`Endpoint::priority`], compacted to
/// consecutive levels (a hand-built model may skip some; EDS decoding rejects gaps).
fn control_plane(endpoints: &[Endpoint]) -> Vec<Option<Placement>> {
    let distinct: BTreeSet<u32> = endpoints.iter().map(|e| e.priority).collect();
    endpoints
        .iter()
        .map(|e| {
            Some(Placement {
                priority: distinct.range(..e.priority).count() as u32,
                weight: e.weight.max(1),
                eligible: e.health == HealthStatus::Healthy,
            })
        })
        .collect()
}

/// Istio's locality pattern match: `region[/zone[/subzone]]`, each part literal or `*`; missing
/// parts match anything.
pub(crate) fn locality_matches(locality: &Locality, pattern: &str) -> bool {
    let mut parts = pattern.splitn(3, '/');
    let part_matches = |part: Option<&str>, value: &str, required: bool| match part {
        Some("*") => true,
        Some("") | None => !required,
        Some(p) => p == value,
    };
    let region = parts.next();
    let zone = parts.next();
    let subzone = parts.next();
    part_matches(region, &locality.region, true)
        && part_matches(zone, &locality.zone, false)
        && part_matches(subzone, &locality.subzone, false)
}

fn distribute(endpoints: &[Endpoint], to: &BTreeMap<String, u32>) -> Vec<Option<u32>> {
    // Weight of each locality present.
    let mut locality_weight: BTreeMap<&Locality, u64> = BTreeMap::new();
    for e in endpoints {
        *locality_weight.entry(&e.locality).or_default() += u64::from(e.weight.max(1));
    }
    // Share (percent × scale) each locality gets; a locality is claimed by the first pattern
    // (in name order) that matches it.
    let mut share: BTreeMap<&Locality, u64> = BTreeMap::new();
    for (pattern, percent) in to {
        let matched: Vec<(&Locality, u64)> = locality_weight
            .iter()
            .filter(|(l, _)| !share.contains_key(*l) && locality_matches(l, pattern))
            .map(|(l, w)| (*l, *w))
            .collect();
        let total: u64 = matched.iter().map(|(_, w)| w).sum();
        for (locality, weight) in matched {
            let s = (u64::from(*percent) * DISTRIBUTE_SCALE * weight).div_ceil(total.max(1));
            share.insert(locality, s);
        }
    }
    endpoints
        .iter()
        .map(|e| {
            let s = *share.get(&e.locality)?;
            if s == 0 {
                return None;
            }
            let lw = locality_weight
                .get(&e.locality)
                .copied()
                .unwrap_or(1)
                .max(1);
            let w = (s * u64::from(e.weight.max(1))).div_ceil(lw);
            Some(u32::try_from(w).unwrap_or(u32::MAX).max(1))
        })
        .collect()
}

fn locality_priority(
    endpoint: &Locality,
    client: &ClientLocality,
    setting: &crate::model::LocalityLbSetting,
) -> u64 {
    let c = &client.locality;
    if endpoint.region == c.region {
        if endpoint.zone == c.zone {
            if endpoint.subzone == c.subzone { 0 } else { 1 }
        } else {
            2
        }
    } else if setting
        .failover
        .iter()
        .any(|f| f.from == c.region && f.to == endpoint.region)
    {
        3
    } else {
        4
    }
}

fn label_priority(endpoint: &Endpoint, client: &ClientLocality, labels: &[String]) -> u64 {
    let value = |labels: &BTreeMap<String, String>, locality: &Locality, key: &str| {
        let from_locality = match key {
            REGION_LABEL => Some(locality.region.clone()),
            ZONE_LABEL => Some(locality.zone.clone()),
            SUBZONE_LABEL => Some(locality.subzone.clone()),
            _ => None,
        };
        labels
            .get(key)
            .cloned()
            .or(from_locality)
            .filter(|v| !v.is_empty())
    };
    let matched = labels
        .iter()
        .take_while(|key| {
            let mine = value(&client.labels, &client.locality, key);
            mine.is_some() && mine == value(&endpoint.labels, &endpoint.locality, key)
        })
        .count();
    (labels.len() - matched) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_istio() {
        let l = Locality::parse("us-east/us-east-1a/rack1");
        assert!(locality_matches(&l, "us-east"));
        assert!(locality_matches(&l, "us-east/*"));
        assert!(locality_matches(&l, "*"));
        assert!(locality_matches(&l, "us-east/us-east-1a/rack1"));
        assert!(locality_matches(&l, "us-east/us-east-1a/*"));
        assert!(!locality_matches(&l, "us-west/*"));
        assert!(!locality_matches(&l, "us-east/us-east-1b"));
        assert!(!locality_matches(&l, ""));
    }
}
