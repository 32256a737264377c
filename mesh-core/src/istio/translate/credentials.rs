//! DestinationRule `tls.credentialName`: the client certificate, key and CA a rule names by
//! Secret, resolved the way istio-agent's SDS serves them.
//!
//! Where a credential comes from, first found wins:
//! - a Kubernetes `Secret` (`apiVersion: v1`) in the config files, in the workload's namespace
//!   (Istio: "the secret must exist in the namespace of the proxy");
//! - the credentials folder ([`MeshSettings::credentials_dir`](crate::MeshSettings)), one
//!   sub-folder per name, `<dir>/<name>/<key>`, read when the snapshot is built.
//!
//! Keys are istiod's (`ExtractCertInfo` and `ExtractRoot`, pilot/pkg/credentials/kube/secrets.go):
//! certificate and key from `cert`/`key`, else `tls.crt`/`tls.key`; the CA from `cacert`, else
//! `ca.crt`. The CA is looked up in `<name>-cacert` first and, when no such Secret exists, in
//! `<name>` (`GetCaCert`), as the client's validation context asks for `<name>-cacert`
//! (`ApplyCustomSDSToClientCommonTLSContext`, pilot/pkg/security/model/authentication.go).
//!
//! A credential that is not found, or lacks a part its mode needs, is a warning; the cluster
//! keeps the credential's name and its connections fail rather than go out without TLS.
//!
//! One deliberate difference: istiod hands a *sidecar* a `credentialName` only from a rule with a
//! `workloadSelector`, and otherwise drops the rule's SIMPLE/MUTUAL TLS altogether
//! (`buildUpstreamClusterTLSContext`, pilot/pkg/networking/core/cluster_tls.go) because its
//! agent would have to fetch the Secret with privileges. mesh reads credentials locally, so it
//! applies them for every rule instead of sending plaintext where TLS was asked for.
//!
//! Secrets are secret: no message here quotes a value, only key names.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use super::super::diag::{Diagnostics, Field, Reporter};
use super::Item;
use super::destination_rule::RuleIndex;
use super::traffic_policy::LeveledPolicy;
use crate::BuildContext;
use crate::model::{TlsCredential, TlsMode, UpstreamTls};

/// istiod's key names.
const CERT_KEYS: [(&str, &str); 2] = [("cert", "key"), ("tls.crt", "tls.key")];
const CA_KEYS: [&str; 2] = ["cacert", "ca.crt"];
/// The suffix of the Secret holding a credential's CA (istiod's `SdsCaSuffix`).
const CA_SUFFIX: &str = "-cacert";

/// One Secret's decoded data.
type SecretData = BTreeMap<String, Vec<u8>>;

/// Decodes a Secret's `data` (base64) and `stringData` (text, winning over `data` as the API
/// server merges them). Values must be PEM text to be used, so non-UTF-8 values are refused.
fn read_secret(spec: &Value, report: &mut Reporter<'_>) -> SecretData {
    let mut out = SecretData::new();
    for (section, base64) in [("data", true), ("stringData", false)] {
        let Some(map) = spec.get(section).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(map) = map.as_object() else {
            report.error(section, "expected a mapping of key to value");
            continue;
        };
        for (key, value) in map {
            let field = Field::new(section).key(key);
            let Some(text) = value.as_str() else {
                report.error(&field, "expected a string");
                continue;
            };
            let bytes = if base64 {
                let compact: String = text.split_whitespace().collect();
                match base64::engine::general_purpose::STANDARD.decode(compact) {
                    Ok(b) => b,
                    Err(_) => {
                        report.error(&field, "not valid base64");
                        continue;
                    }
                }
            } else {
                text.as_bytes().to_vec()
            };
            out.insert(key.clone(), bytes);
        }
    }
    out
}

/// Credentials by name, for this workload.
#[derive(Default)]
pub(crate) struct Credentials {
    secrets: HashMap<String, SecretData>,
    dir: Option<std::path::PathBuf>,
}

impl Credentials {
    /// Indexes the Secrets of the workload's namespace.
    pub(crate) fn new(items: &[Item<Value>], ctx: &BuildContext, diags: &mut Diagnostics) -> Self {
        let mut secrets = HashMap::new();
        for item in items {
            let mut report = diags.at(&item.origin, &item.resource);
            let data = read_secret(&item.spec, &mut report);
            if item.resource.namespace == ctx.workload.namespace {
                secrets.insert(item.resource.name.clone(), data);
            }
        }
        Self {
            secrets,
            dir: ctx.settings.credentials_dir.clone(),
        }
    }

    /// The Secret `name`, from the config files or the credentials folder.
    fn secret(&self, name: &str) -> Option<SecretData> {
        if let Some(s) = self.secrets.get(name) {
            return Some(s.clone());
        }
        let dir = self.dir.as_deref()?;
        // A name is one path segment: never let it climb out of the folder.
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return None;
        }
        read_folder(&dir.join(name))
    }

    /// Fills in `credential`'s parts, returning what is missing for `mode`.
    fn resolve(&self, credential: &mut TlsCredential, mode: TlsMode) -> Result<(), String> {
        let name = credential.name.clone();
        let main = self.secret(&name);
        let ca_secret = self.secret(&format!("{name}{CA_SUFFIX}"));
        if main.is_none() && ca_secret.is_none() {
            return Err(format!(
                "credential {name:?} not found (no Secret {name} in namespace, nor in the credentials folder)"
            ));
        }
        if let Some(data) = &main {
            for (cert, key) in CERT_KEYS {
                if let (Some(c), Some(k)) = (text(data, cert), text(data, key)) {
                    credential.cert_chain = Some(c);
                    credential.private_key = Some(k);
                    break;
                }
            }
        }
        // `GetCaCert`: the -cacert Secret when it exists, else the credential's own.
        let ca_source = ca_secret.as_ref().or(main.as_ref());
        credential.ca_certificates =
            ca_source.and_then(|data| CA_KEYS.iter().find_map(|k| text(data, k)));
        if mode == TlsMode::Mutual && credential.cert_chain.is_none() {
            return Err(format!(
                "credential {name:?} has no client certificate and key (keys cert/key or tls.crt/tls.key)"
            ));
        }
        if credential.ca_certificates.is_none() {
            return Err(format!(
                "credential {name:?} has no CA certificate (key cacert or ca.crt in {name}{CA_SUFFIX} or {name})"
            ));
        }
        Ok(())
    }
}

/// A non-empty UTF-8 value.
fn text(data: &SecretData, key: &str) -> Option<Arc<str>> {
    let v = data.get(key).filter(|v| !v.is_empty())?;
    std::str::from_utf8(v).ok().map(Arc::from)
}

/// A credentials sub-folder as Secret data: each known key's file, if present.
fn read_folder(dir: &Path) -> Option<SecretData> {
    if !dir.is_dir() {
        return None;
    }
    let mut data = SecretData::new();
    for key in CERT_KEYS.iter().flat_map(|(c, k)| [*c, *k]).chain(CA_KEYS) {
        if let Ok(bytes) = std::fs::read(dir.join(key)) {
            data.insert(key.to_owned(), bytes);
        }
    }
    Some(data)
}

/// Resolves every `credentialName` of every rule, warning at the rule's field when a credential
/// is missing or incomplete.
pub(crate) fn resolve(rules: &mut RuleIndex, credentials: &Credentials, diags: &mut Diagnostics) {
    for rule in &mut rules.rules {
        let mut report = diags.at(&rule.origin, &rule.resource);
        let spec = Field::new("spec");
        resolve_levels(
            &mut rule.policy,
            &spec.key("trafficPolicy"),
            credentials,
            &mut report,
        );
        for (i, subset) in rule.subsets.iter_mut().enumerate() {
            let f = spec.key("subsets").index(i).key("trafficPolicy");
            resolve_levels(&mut subset.policy, &f, credentials, &mut report);
        }
    }
}

fn resolve_levels(
    policy: &mut LeveledPolicy,
    field: &Field,
    credentials: &Credentials,
    report: &mut Reporter<'_>,
) {
    let mut levels: Vec<(String, &mut Option<UpstreamTls>)> =
        vec![(field.key("tls").to_string(), &mut policy.top.tls)];
    for (port, p) in policy.ports.iter_mut() {
        levels.push((
            format!("{field}.portLevelSettings[port {port}].tls"),
            &mut p.tls,
        ));
    }
    for (path, tls) in levels {
        let Some(tls) = tls.as_mut() else { continue };
        let mode = tls.mode;
        let Some(credential) = tls.credential.as_mut() else {
            continue;
        };
        if let Err(problem) = credentials.resolve(credential, mode) {
            report.warn(
                &format!("{path}.credentialName"),
                format!("{problem}; connections to this destination will fail"),
            );
        }
    }
}
