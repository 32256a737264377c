//! Where a diagnostic points: the file, document and resource being read, and a sink that
//! collects every problem so one load reports all of them.

use std::path::PathBuf;

use crate::config::{Diagnostic, ResourceRef, Severity};

/// The document a resource came from. For a `kind: List`, `prefix` is `items[i].` so field paths
/// stay exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) file: PathBuf,
    pub(crate) document: usize,
    pub(crate) prefix: String,
}

impl Origin {
    /// A diagnostic about `field` (relative to the resource) of `resource` in this document.
    pub(crate) fn diag(
        &self,
        resource: Option<&ResourceRef>,
        severity: Severity,
        field: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let field = if field.is_empty() {
            self.prefix.trim_end_matches('.').to_owned()
        } else {
            format!("{}{field}", self.prefix)
        };
        let base = match severity {
            Severity::Error => Diagnostic::error(field, message),
            Severity::Warning => Diagnostic::warning(field, message),
        };
        Diagnostic {
            file: Some(self.file.clone()),
            document: Some(self.document),
            resource: resource.cloned(),
            ..base
        }
    }

    /// `file: doc N`, for messages that point at another document.
    pub(crate) fn describe(&self) -> String {
        format!("{}: doc {}", self.file.display(), self.document)
    }
}

/// Collects diagnostics in the order found.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Appends everything `other` collected.
    pub(crate) fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// The diagnostics by file and document (files in reading order, which is sorted), each
    /// document's in the order found.
    pub(crate) fn into_vec(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by(|a, b| (&a.file, a.document).cmp(&(&b.file, b.document)));
        self.items
    }

    /// A reporter for one resource.
    pub(crate) fn at<'a>(
        &'a mut self,
        origin: &'a Origin,
        resource: &'a ResourceRef,
    ) -> Reporter<'a> {
        Reporter {
            sink: self,
            origin,
            resource,
        }
    }
}

/// Reports problems of one resource; fields are given relative to the resource root
/// (`spec.http[0].timeout`).
pub(crate) struct Reporter<'a> {
    sink: &'a mut Diagnostics,
    origin: &'a Origin,
    resource: &'a ResourceRef,
}

impl Reporter<'_> {
    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        let d = self
            .origin
            .diag(Some(self.resource), Severity::Error, field, message);
        self.sink.push(d);
    }

    pub(crate) fn warn(&mut self, field: &str, message: impl Into<String>) {
        let d = self
            .origin
            .diag(Some(self.resource), Severity::Warning, field, message);
        self.sink.push(d);
    }

    /// The document reported on.
    pub(crate) fn origin(&self) -> &Origin {
        self.origin
    }

    /// The resource reported on.
    pub(crate) fn resource(&self) -> &ResourceRef {
        self.resource
    }

    /// Warns that an Istio field is present but not implemented by mesh.
    pub(crate) fn unimplemented<T>(&mut self, value: &Option<T>, field: &str) {
        if value.is_some() {
            self.warn(field, "not implemented; ignored");
        }
    }
}

/// Builds field paths: `Field::new("spec").key("http").index(0)` is `spec.http[0]`.
#[derive(Clone, Debug)]
pub(crate) struct Field(String);

impl Field {
    pub(crate) fn new(root: &str) -> Self {
        Self(root.to_owned())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            Self(key.to_owned())
        } else {
            Self(format!("{}.{key}", self.0))
        }
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }
}

impl std::ops::Deref for Field {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
