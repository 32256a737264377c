//! `exportTo`: which namespaces see a VirtualService, DestinationRule or ServiceEntry.
//!
//! Values are `*` (every namespace), `.` (the resource's own), `~` (none; ServiceEntry only) or
//! namespace names; validated as istiod's `validateExportTo` (pkg/config/validation) does. An
//! empty list takes the mesh-wide default of the kind ([`MeshSettings`]'s `default_*_export_to`,
//! MeshConfig's `defaultVirtualServiceExportTo` …), itself `*` when empty.
//!
//! [`MeshSettings`]: crate::MeshSettings

use std::collections::BTreeSet;

use super::super::diag::{Field, Reporter};

/// The namespaces a resource is exported to, `.` already replaced by its namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExportTo {
    /// `*`.
    pub(crate) public: bool,
    /// Namespace names (never `.`, `*` or `~`); `~` is an empty set that is not public.
    pub(crate) namespaces: BTreeSet<String>,
    /// Whether the resource gave `exportTo` itself (not the mesh default).
    pub(crate) explicit: bool,
}

impl ExportTo {
    /// Whether a workload in `namespace` sees the resource.
    pub(crate) fn visible_to(&self, namespace: &str) -> bool {
        self.public || self.namespaces.contains(namespace)
    }

    /// Only the resource's own namespace (`namespace`) sees it.
    pub(crate) fn private_to(&self, namespace: &str) -> bool {
        !self.public && self.namespaces.len() == 1 && self.namespaces.contains(namespace)
    }

    /// Every entry of `other` is one of `self` (istiod's `SupersetOf` on the entry sets, where
    /// `*` is an entry like the others).
    pub(crate) fn covers(&self, other: &ExportTo) -> bool {
        (self.public || !other.public) && other.namespaces.is_subset(&self.namespaces)
    }

    /// The same set of namespaces (or both public).
    pub(crate) fn same(&self, other: &ExportTo) -> bool {
        self.public == other.public && self.namespaces == other.namespaces
    }
}

/// A DNS-1123 label, as Kubernetes namespace names are.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Validates `values` of a resource in `namespace` (errors at `field[i]`) and resolves them,
/// or `defaults` when `values` is empty. `~` is allowed only when `allow_none` (ServiceEntry).
pub(crate) fn read(
    values: &[String],
    namespace: &str,
    defaults: &[String],
    allow_none: bool,
    field: &Field,
    report: &mut Reporter<'_>,
) -> ExportTo {
    if values.is_empty() {
        return resolve(defaults, namespace, false);
    }
    let mut seen = BTreeSet::new();
    for (i, v) in values.iter().enumerate() {
        let key = if v == "." { namespace } else { v.as_str() };
        if !seen.insert(key) {
            let message = if key != v {
                format!("duplicate entries in exportTo: . and current namespace {namespace}")
            } else {
                format!("duplicate entries in exportTo for entry {v}")
            };
            report.error(&field.index(i), message);
            continue;
        }
        match v.as_str() {
            "." | "*" => {}
            "~" if allow_none => {}
            "~" => report.error(
                &field.index(i),
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            ),
            other if !is_dns_label(other) => report.error(
                &field.index(i),
                "only .,*, or a valid DNS 1123 label is allowed as exportTo entry",
            ),
            _ => {}
        }
    }
    if values.len() > 1 && seen.contains("*") {
        report.error(
            field,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if values.len() > 1 && seen.contains("~") {
        report.error(
            field,
            "if ~ is specified in exportTo, nothing else can be specified",
        );
    }
    resolve(values, namespace, true)
}

fn resolve(values: &[String], namespace: &str, explicit: bool) -> ExportTo {
    let mut out = ExportTo {
        explicit,
        ..ExportTo::default()
    };
    if values.is_empty() {
        out.public = true;
        return out;
    }
    for v in values {
        match v.as_str() {
            "*" => out.public = true,
            "~" => {}
            "." => {
                out.namespaces.insert(namespace.to_owned());
            }
            ns => {
                out.namespaces.insert(ns.to_owned());
            }
        }
    }
    out
}
