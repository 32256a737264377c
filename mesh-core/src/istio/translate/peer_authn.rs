//! PeerAuthentication: every policy validated, then the one mode that applies to this workload.
//!
//! Istio's precedence: a policy in the workload's namespace whose selector matches it, then a
//! namespace-wide policy (no selector) in the workload's namespace, then a mesh-wide policy (no
//! selector) in the root namespace, then PERMISSIVE. A mode of UNSET (or none) inherits from the
//! next less specific level. `portLevelMtls` needs a selector. When two policies sit at the same
//! level, the oldest (`metadata.creationTimestamp`, then name) wins and the others are reported.

use std::collections::BTreeMap;

use super::super::diag::{Diagnostics, Field};
use super::super::resources::{self as r, labels_match};
use super::Item;
use crate::BuildContext;
use crate::model::{MtlsMode, PeerAuthnPolicy};

struct Checked<'a> {
    item: &'a Item<r::PeerAuthenticationSpec>,
    mode: Option<MtlsMode>,
    ports: BTreeMap<u16, MtlsMode>,
}

fn mode(m: Option<&r::MutualTls>) -> Option<MtlsMode> {
    match m.and_then(|m| m.mode)? {
        r::MtlsModeSetting::Unset => None,
        r::MtlsModeSetting::Disable => Some(MtlsMode::Disable),
        r::MtlsModeSetting::Permissive => Some(MtlsMode::Permissive),
        r::MtlsModeSetting::Strict => Some(MtlsMode::Strict),
    }
}

/// Validates every PeerAuthentication and resolves the policy for `ctx.workload`.
pub(crate) fn resolve(
    items: &[Item<r::PeerAuthenticationSpec>],
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> PeerAuthnPolicy {
    // Levels: 0 workload, 1 namespace, 2 mesh.
    let mut levels: [Vec<Checked<'_>>; 3] = Default::default();
    for item in items {
        let mut report = diags.at(&item.origin, &item.resource);
        let f = Field::new("spec");
        let spec = &item.spec;
        let mut ports = BTreeMap::new();
        if let Some(plm) = &spec.port_level_mtls {
            if spec
                .selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty())
            {
                report.error(
                    &f.key("portLevelMtls"),
                    "portLevelMtls requires a workload selector",
                );
            }
            // istio/istio validation.go ValidatePeerAuthentication: "port level mTLS, if
            // defined, must have at least one element".
            if plm.is_empty() {
                report.error(
                    &f.key("portLevelMtls"),
                    "portLevelMtls, if defined, must have at least one port",
                );
            }
            for (port, m) in plm {
                match port.parse::<u16>() {
                    Ok(p) if p > 0 => {
                        if let Some(mode) = mode(Some(m)) {
                            ports.insert(p, mode);
                        }
                    }
                    _ => report.error(
                        &f.key("portLevelMtls").key(port),
                        format!("port {port:?} is not a port number 1..65535"),
                    ),
                }
            }
        }
        let ns = item.resource.namespace.as_str();
        let selector = spec
            .selector
            .as_ref()
            .filter(|s| !s.match_labels.is_empty());
        let level = match selector {
            Some(s)
                if ns == ctx.workload.namespace
                    && labels_match(&s.match_labels, &ctx.workload.labels) =>
            {
                Some(0)
            }
            Some(_) => None,
            None if ns == ctx.workload.namespace => Some(1),
            None if ns == ctx.settings.root_namespace => Some(2),
            None => None,
        };
        if let Some(level) = level {
            levels[level].push(Checked {
                item,
                mode: mode(spec.mtls.as_ref()),
                ports,
            });
        }
    }
    let mut chosen: Vec<Checked<'_>> = Vec::new();
    for level in &mut levels {
        level.sort_by(|a, b| {
            let key = |c: &Checked<'_>| {
                (
                    c.item
                        .metadata
                        .creation_timestamp
                        .clone()
                        .unwrap_or_default(),
                    c.item.resource.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut it = level.drain(..);
        if let Some(winner) = it.next() {
            for loser in it {
                diags.at(&loser.item.origin, &loser.item.resource).warn(
                    "",
                    format!(
                        "{} also applies at the same level and is older (or first by name); this policy is ignored",
                        winner.item.resource
                    ),
                );
            }
            chosen.push(winner);
        }
    }
    // The most specific policy that sets a mode decides it (and is named as the source).
    let decider = chosen.iter().find(|c| c.mode.is_some()).or(chosen.first());
    let mode = decider.and_then(|c| c.mode).unwrap_or(MtlsMode::Permissive);
    let port_modes = chosen
        .first()
        .filter(|c| {
            c.item
                .spec
                .selector
                .as_ref()
                .is_some_and(|s| !s.match_labels.is_empty())
        })
        .map(|c| c.ports.clone())
        .unwrap_or_default();
    PeerAuthnPolicy {
        mode,
        port_modes,
        source: decider.map(|c| format!("{}/{}", c.item.resource.namespace, c.item.resource.name)),
    }
}
