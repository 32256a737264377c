//! Splitting files into YAML documents and reading each document's header.
//!
//! Documents are split on separator lines the way Kubernetes' YAML reader does, before any YAML
//! parsing, so one malformed document cannot hide the others and indices are stable:
//!
//! - a separator is a line that starts with `---` followed only by spaces or a `#` comment;
//! - document `0` is the text before the first separator (possibly empty), and every separator
//!   starts the next document, so indices count empty documents too;
//! - a document holding only blanks and comments is skipped silently.
//!
//! Each document is parsed with serde-saphyr into a generic value; its `apiVersion`, `kind` and
//! `metadata` are read here, and the `spec` is left for the typed decoders.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::diag::{Diagnostics, Origin};
use crate::config::{ResourceRef, Severity};

/// The kinds mesh reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    ServiceEntry,
    WorkloadEntry,
    DestinationRule,
    VirtualService,
    PeerAuthentication,
    AuthorizationPolicy,
    /// `networking.istio.io Sidecar` (its `ingress` listeners).
    Sidecar,
    /// Kubernetes `v1 Service`.
    KubeService,
    /// Kubernetes `discovery.k8s.io EndpointSlice`.
    EndpointSlice,
    /// Kubernetes `v1 Endpoints` (legacy).
    Endpoints,
    /// Kubernetes `v1 Pod`.
    Pod,
    /// Kubernetes `v1 Node` (its labels give its pods' locality).
    Node,
    /// A Kubernetes Secret (`v1`), read for DestinationRule `tls.credentialName`.
    Secret,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::DestinationRule => "DestinationRule",
            Kind::VirtualService => "VirtualService",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::Sidecar => "Sidecar",
            Kind::KubeService => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Endpoints => "Endpoints",
            Kind::Pod => "Pod",
            Kind::Node => "Node",
            Kind::Secret => "Secret",
        }
    }

    /// Kubernetes core kinds: their fields are not under `spec` alone (EndpointSlice has none),
    /// so the whole object is kept, and fields mesh does not use are not reported.
    pub(crate) fn is_kubernetes(self) -> bool {
        matches!(
            self,
            Kind::KubeService | Kind::EndpointSlice | Kind::Endpoints | Kind::Pod | Kind::Node
        )
    }

    /// The kind for an `apiVersion` and `kind`, when mesh reads it.
    fn from_api(api_version: &str, kind: &str) -> Option<Self> {
        if api_version == "v1" {
            return match kind {
                "Service" => Some(Kind::KubeService),
                "Endpoints" => Some(Kind::Endpoints),
                "Pod" => Some(Kind::Pod),
                "Node" => Some(Kind::Node),
                "Secret" => Some(Kind::Secret),
                _ => None,
            };
        }
        let (group, version) = api_version.split_once('/')?;
        match group {
            "networking.istio.io" if matches!(version, "v1" | "v1beta1" | "v1alpha3") => {
                Some(match kind {
                    "ServiceEntry" => Kind::ServiceEntry,
                    "WorkloadEntry" => Kind::WorkloadEntry,
                    "DestinationRule" => Kind::DestinationRule,
                    "VirtualService" => Kind::VirtualService,
                    "Sidecar" => Kind::Sidecar,
                    _ => return None,
                })
            }
            "discovery.k8s.io"
                if matches!(version, "v1" | "v1beta1") && kind == "EndpointSlice" =>
            {
                Some(Kind::EndpointSlice)
            }
            "security.istio.io" if matches!(version, "v1" | "v1beta1") => Some(match kind {
                "PeerAuthentication" => Kind::PeerAuthentication,
                "AuthorizationPolicy" => Kind::AuthorizationPolicy,
                _ => return None,
            }),
            _ => None,
        }
    }
}

/// The top-level fields of a Kubernetes resource (`status` appears in kubectl output).
const TOP_LEVEL_KEYS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// The top-level fields of a Secret, which has no `spec`: they are its spec.
const SECRET_KEYS: [&str; 4] = ["data", "stringData", "type", "immutable"];

/// Resource metadata mesh reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metadata {
    pub(crate) name: Option<String>,
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) creation_timestamp: Option<String>,
}

/// One resource of a kind mesh reads, with its spec still generic.
#[derive(Debug)]
pub(crate) struct RawResource {
    pub(crate) origin: Origin,
    pub(crate) kind: Kind,
    pub(crate) resource: ResourceRef,
    pub(crate) metadata: Metadata,
    pub(crate) spec: Value,
}

/// A document's text and the line it starts on (1-based).
#[derive(Clone, Copy)]
pub(crate) struct DocText<'a> {
    pub(crate) text: &'a str,
    pub(crate) first_line: usize,
}

fn is_separator(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| {
        let rest = rest.trim();
        rest.is_empty() || rest.starts_with('#')
    })
}

pub(crate) fn split(content: &str) -> Vec<DocText<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (n, line) in content.split_inclusive('\n').enumerate() {
        if is_separator(line.trim_end_matches(['\n', '\r'])) {
            docs.push(DocText {
                text: &content[start..offset],
                first_line,
            });
            start = offset + line.len();
            first_line = n + 2;
        }
        offset += line.len();
    }
    docs.push(DocText {
        text: &content[start..],
        first_line,
    });
    docs
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

/// Reads every document of `content`, reporting malformed and skipped ones, and returns the
/// resources mesh reads.
pub(crate) fn read_documents(
    inputs: &[(std::path::PathBuf, String)],
    default_namespace: &str,
    diags: &mut Diagnostics,
    out: &mut Vec<RawResource>,
) {
    // Every non-blank document of every file, in order.
    let docs: Vec<(&std::path::Path, usize, DocText<'_>)> = inputs
        .iter()
        .flat_map(|(file, content)| {
            split(content)
                .into_iter()
                .enumerate()
                .filter(|(_, doc)| !is_blank(doc.text))
                .map(move |(index, doc)| (file.as_path(), index, doc))
        })
        .collect();
    // Documents are independent, and YAML parsing is most of the cost of a large config: parse
    // them on every core, in contiguous chunks whose results are joined in order.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if workers < 2 || docs.len() < 64 {
        for (file, index, doc) in docs {
            read_document(file, index, doc, default_namespace, diags, out);
        }
        return;
    }
    let chunk = docs.len().div_ceil(workers);
    let results: Vec<(Diagnostics, Vec<RawResource>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = docs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let (mut d, mut o) = (Diagnostics::default(), Vec::new());
                    for (file, index, doc) in part {
                        read_document(file, *index, *doc, default_namespace, &mut d, &mut o);
                    }
                    (d, o)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(result) => result,
                // A panic in a parser thread is a bug; surface it where it happened.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    for (d, o) in results {
        diags.extend(d);
        out.extend(o);
    }
}

fn read_document(
    file: &std::path::Path,
    index: usize,
    doc: DocText<'_>,
    default_namespace: &str,
    diags: &mut Diagnostics,
    out: &mut Vec<RawResource>,
) {
    let origin = Origin {
        file: file.to_owned(),
        document: index,
        prefix: String::new(),
    };
    let value: Value = match serde_saphyr::from_str(doc.text) {
        Ok(v) => v,
        Err(e) => {
            let rendered = e.to_string();
            let reason = yaml_reason(&rendered);
            let message = match e.location() {
                Some(loc) if loc.line() > 0 => format!(
                    "malformed YAML at line {}, column {}: {reason}",
                    usize::try_from(loc.line())
                        .unwrap_or(usize::MAX)
                        .saturating_add(doc.first_line - 1),
                    loc.column()
                ),
                _ => format!("malformed YAML: {reason}"),
            };
            diags.push(origin.diag(None, Severity::Error, "", message));
            return;
        }
    };
    read_object(origin, value, default_namespace, diags, out);
}

/// serde-saphyr's message without its `error: line L column C:` prefix (the line is relative to
/// the document; the caller reports it relative to the file).
fn yaml_reason(rendered: &str) -> &str {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    let first = first.strip_prefix("error:").unwrap_or(first).trim_start();
    match first.strip_prefix("line ") {
        Some(rest) => rest
            .split_once(": ")
            .filter(|(pos, _)| pos.contains("column"))
            .map_or(first, |(_, reason)| reason),
        None => first,
    }
}

fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

fn read_object(
    origin: Origin,
    mut value: Value,
    default_namespace: &str,
    diags: &mut Diagnostics,
    out: &mut Vec<RawResource>,
) {
    if value.is_null() {
        return;
    }
    if !value.is_object() {
        diags.push(origin.diag(
            None,
            Severity::Error,
            "",
            "expected a Kubernetes resource (a mapping with apiVersion and kind)",
        ));
        return;
    }
    let api_version = str_field(&value, "apiVersion")
        .unwrap_or_default()
        .to_owned();
    let kind_name = str_field(&value, "kind").unwrap_or_default().to_owned();
    if kind_name.is_empty() || api_version.is_empty() {
        let missing = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        diags.push(origin.diag(None, Severity::Error, missing, "required"));
        return;
    }
    if kind_name == "List" {
        read_list(origin, &mut value, default_namespace, diags, out);
        return;
    }
    let Some(kind) = Kind::from_api(&api_version, &kind_name) else {
        // Read leniently: nothing of a skipped resource is checked.
        let meta = value.get("metadata");
        let text = |key: &str| meta.and_then(|m| str_field(m, key)).unwrap_or_default();
        let namespace = match text("namespace") {
            "" => default_namespace,
            ns => ns,
        };
        let resource = ResourceRef {
            kind: kind_name.clone(),
            namespace: namespace.to_owned(),
            name: text("name").to_owned(),
        };
        diags.push(origin.diag(
            Some(&resource),
            Severity::Warning,
            "",
            format!("{api_version} {kind_name} is not read by mesh; skipped"),
        ));
        return;
    };
    let metadata = match value.get_mut("metadata").map(Value::take) {
        None | Some(Value::Null) => Metadata::default(),
        Some(m) => match serde_path_to_error::deserialize::<_, Metadata>(m) {
            Ok(m) => m,
            Err(e) => {
                let field = match e.path().to_string().as_str() {
                    "." => "metadata".to_owned(),
                    path => format!("metadata.{path}"),
                };
                diags.push(origin.diag(None, Severity::Error, &field, e.inner().to_string()));
                return;
            }
        },
    };
    let namespace = metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default_namespace.to_owned());
    let resource = ResourceRef {
        kind: kind.as_str().to_owned(),
        namespace,
        name: metadata.name.clone().unwrap_or_default(),
    };
    if resource.name.is_empty() {
        diags.push(origin.diag(
            Some(&resource),
            Severity::Error,
            "metadata.name",
            "required",
        ));
        return;
    }
    if kind.is_kubernetes() {
        // The object without its metadata, read leniently by the `kube` module.
        out.push(RawResource {
            origin,
            kind,
            resource,
            metadata,
            spec: value,
        });
        return;
    }
    let is_secret = kind == Kind::Secret;
    if let Some(object) = value.as_object() {
        for key in object.keys() {
            let known = if is_secret {
                key != "spec" && TOP_LEVEL_KEYS.contains(&key.as_str())
                    || SECRET_KEYS.contains(&key.as_str())
            } else {
                TOP_LEVEL_KEYS.contains(&key.as_str())
            };
            if !known {
                diags.push(origin.diag(Some(&resource), Severity::Error, key, "unknown field"));
            }
        }
    }
    let spec = if is_secret {
        let mut spec = serde_json::Map::new();
        for key in SECRET_KEYS {
            if let Some(v) = value.get_mut(key) {
                spec.insert(key.to_owned(), v.take());
            }
        }
        Value::Object(spec)
    } else {
        value
            .get_mut("spec")
            .map(Value::take)
            .unwrap_or(Value::Null)
    };
    out.push(RawResource {
        origin,
        kind,
        resource,
        metadata,
        spec,
    });
}

fn read_list(
    origin: Origin,
    value: &mut Value,
    default_namespace: &str,
    diags: &mut Diagnostics,
    out: &mut Vec<RawResource>,
) {
    let items = match value.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            diags.push(origin.diag(
                None,
                Severity::Error,
                "items",
                "expected a list of resources",
            ));
            return;
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let origin = Origin {
            prefix: format!("{}items[{i}].", origin.prefix),
            ..origin.clone()
        };
        read_object(origin, item, default_namespace, diags, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_kubernetes() {
        let docs = split("a: 1\n---\n--- # c\nb: 2\n---x\n");
        let texts: Vec<_> = docs.iter().map(|d| (d.text, d.first_line)).collect();
        assert_eq!(texts, vec![("a: 1\n", 1), ("", 3), ("b: 2\n---x\n", 4)]);
        let docs = split("---\na: 1\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].text, "");
        assert_eq!(docs[1].first_line, 2);
    }
}
