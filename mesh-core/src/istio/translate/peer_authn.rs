//! PeerAuthentication: every policy validated, then the one mode that applies to this workload.
//!
//! Istio's precedence: a policy in the workload's namespace whose selector matches it, then a
//! namespace-wide policy (no selector) in the workload's namespace, then a mesh-wide policy (no
//! selector) in the root namespace, then PERMISSIVE. A mode of UNSET (or none) inherits from the
//! next less specific level. `portLevelMtls` needs a selector. When two policies sit at the same
//! level, the oldest (`metadata.creationTimestamp`, then name) wins and the others are reported.
//!
//! Every field is enforced (`selector`, `mtls.mode`, `portLevelMtls`) or, where a file asks
//! for something mesh cannot apply, reported as an error and read more strictly: a port-level
//! STRICT without a selector or on an unreadable port makes the whole policy STRICT.

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

/// The end of an error message about a port-level STRICT that cannot be applied.
fn closed(strict: bool) -> &'static str {
    if strict {
        "; its STRICT cannot be applied to that port, so the whole policy is read as STRICT (failing closed)"
    } else {
        ""
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
        // A port-level STRICT mesh cannot apply makes the whole policy STRICT (fail closed).
        let mut force_strict = false;
        if let Some(plm) = &spec.port_level_mtls {
            let no_selector = spec
                .selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty());
            let strict = |m: &r::MutualTls| mode(Some(m)) == Some(MtlsMode::Strict);
            if no_selector {
                force_strict |= plm.values().any(strict);
                report.error(
                    &f.key("portLevelMtls"),
                    format!(
                        "portLevelMtls requires a workload selector{}",
                        closed(plm.values().any(strict))
                    ),
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
                    _ => {
                        force_strict |= strict(m);
                        report.error(
                            &f.key("portLevelMtls").key(port),
                            format!(
                                "port {port:?} is not a port number 1..65535{}",
                                closed(strict(m))
                            ),
                        );
                    }
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
                mode: if force_strict {
                    Some(MtlsMode::Strict)
                } else {
                    mode(spec.mtls.as_ref())
                },
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::BuildContext;
    use crate::config::Severity;
    use crate::istio::diag::Diagnostics;
    use crate::istio::documents::read_documents;
    use crate::istio::translate::build;
    use crate::model::MtlsMode;

    fn resolve(yaml: &str) -> (crate::model::PeerAuthnPolicy, Vec<String>) {
        let mut diags = Diagnostics::default();
        let mut raw = Vec::new();
        read_documents(
            &[(PathBuf::from("pa.yaml"), yaml.to_owned())],
            "default",
            &mut diags,
            &mut raw,
        );
        let ctx = BuildContext::default();
        let built = build(raw, &ctx, &mut diags);
        let errors = diags
            .into_vec()
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.field)
            .collect();
        (built.inbound.peer_authentication, errors)
    }

    const HEAD: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: pa, namespace: default}\nspec:\n";

    /// One row per field: what mesh enforces, or the error and the stricter reading.
    /// istiod refuses `portLevelMtls` without a selector (`ValidatePeerAuthentication`).
    #[test]
    fn every_field_is_enforced_or_fails_closed() {
        // (name, spec, resolved mode, errors); no case leaves port modes.
        type Case = (
            &'static str,
            &'static str,
            MtlsMode,
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            ("mode", "  mtls: {mode: STRICT}\n", MtlsMode::Strict, &[]),
            (
                "mode unset",
                "  mtls: {mode: UNSET}\n",
                MtlsMode::Permissive,
                &[],
            ),
            (
                "disable",
                "  mtls: {mode: DISABLE}\n",
                MtlsMode::Disable,
                &[],
            ),
            (
                "selector + portLevelMtls",
                "  selector: {matchLabels: {app: x}}\n  mtls: {mode: STRICT}\n  portLevelMtls: {'8080': {mode: DISABLE}}\n",
                // The selector does not match this workload (no labels): nothing applies.
                MtlsMode::Permissive,
                &[],
            ),
            (
                "portLevelMtls without selector, STRICT port",
                "  mtls: {mode: PERMISSIVE}\n  portLevelMtls: {'8080': {mode: STRICT}}\n",
                MtlsMode::Strict,
                &["spec.portLevelMtls"],
            ),
            (
                "portLevelMtls without selector, DISABLE port",
                "  mtls: {mode: STRICT}\n  portLevelMtls: {'8080': {mode: DISABLE}}\n",
                MtlsMode::Strict,
                &["spec.portLevelMtls"],
            ),
            (
                "portLevelMtls bad port, STRICT",
                "  selector: {matchLabels: {}}\n  mtls: {mode: DISABLE}\n  portLevelMtls: {http: {mode: STRICT}}\n",
                MtlsMode::Strict,
                &["spec.portLevelMtls", "spec.portLevelMtls.http"],
            ),
        ];
        for (name, spec, mode, errors) in cases {
            let (policy, got) = resolve(&format!("{HEAD}{spec}"));
            assert_eq!(policy.mode, *mode, "{name}");
            assert!(policy.port_modes.is_empty(), "{name}");
            assert_eq!(got, *errors, "{name}");
        }
    }

    /// A workload-level policy's port modes apply (istiod's `portLevelMtls`).
    #[test]
    fn port_level_modes_with_a_selector_apply() {
        let yaml = format!(
            "{HEAD}  selector: {{matchLabels: {{app: web}}}}\n  mtls: {{mode: STRICT}}\n  portLevelMtls: {{'8080': {{mode: DISABLE}}}}\n"
        );
        let mut diags = Diagnostics::default();
        let mut raw = Vec::new();
        read_documents(
            &[(PathBuf::from("pa.yaml"), yaml)],
            "default",
            &mut diags,
            &mut raw,
        );
        let mut ctx = BuildContext::default();
        ctx.workload.labels.insert("app".into(), "web".into());
        let built = build(raw, &ctx, &mut diags);
        assert!(!diags.has_errors());
        let p = built.inbound.peer_authentication;
        assert_eq!(p.mode, MtlsMode::Strict);
        assert_eq!(p.port_modes.get(&8080), Some(&MtlsMode::Disable));
    }
}
