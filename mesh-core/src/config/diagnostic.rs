use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Loaded, but something is ignored or not implemented; reported, never silent.
    Warning,
    /// The config is refused.
    Error,
}

/// The resource a diagnostic is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ResourceRef {
    /// `kind`, e.g. `VirtualService`.
    pub kind: String,
    /// Namespace (after defaulting).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ResourceRef {
    /// `Kind namespace/name`, or `kind name` for resources without a namespace (xDS).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One problem: where it is and what is wrong.
///
/// Displays as `file: doc N Kind ns/name: field.path: message`, e.g.
/// `mesh/reviews.yaml: doc 2 VirtualService default/reviews: http[0].route[1].weight: weights sum
/// to 105, expected 100`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, when the input came from one.
    pub file: Option<PathBuf>,
    /// Index of the YAML document in the file, from 0.
    pub document: Option<usize>,
    /// The resource, once its kind and name are known.
    pub resource: Option<ResourceRef>,
    /// Field path inside the resource (`spec.http[0].route[1].weight`); empty for the whole
    /// document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// An error about `field`.
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, field, message)
    }

    /// A warning about `field`.
    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, field, message)
    }

    fn new(severity: Severity, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            file: None,
            document: None,
            resource: None,
            field: field.into(),
            message: message.into(),
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            sep = ": ";
        }
        if let Some(doc) = self.document {
            write!(f, "{sep}doc {doc}")?;
            sep = " ";
        }
        if let Some(r) = &self.resource {
            write!(f, "{sep}{r}")?;
            sep = ": ";
        } else if self.document.is_some() {
            sep = ": ";
        }
        if !self.field.is_empty() {
            write!(f, "{sep}{}", self.field)?;
            sep = ": ";
        }
        write!(f, "{sep}{}", self.message)
    }
}

/// A refused config: every error found (warnings are kept alongside for display).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ConfigError {
    /// All diagnostics, errors and warnings, in the order found.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    /// A refusal with one error that has no file or field (an internal failure).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            diagnostics: vec![Diagnostic::error("", message)],
        }
    }

    /// The errors alone.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors().count();
        write!(
            f,
            "config refused with {n} error{}",
            if n == 1 { "" } else { "s" }
        )?;
        for d in self.errors() {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_document_resource_and_field() {
        let d = Diagnostic {
            file: Some("mesh/reviews.yaml".into()),
            document: Some(2),
            resource: Some(ResourceRef {
                kind: "VirtualService".into(),
                namespace: "default".into(),
                name: "reviews".into(),
            }),
            ..Diagnostic::error(
                "spec.http[0].route[1].weight",
                "weights sum to 105, expected 100",
            )
        };
        assert_eq!(
            d.to_string(),
            "mesh/reviews.yaml: doc 2 VirtualService default/reviews: spec.http[0].route[1].weight: weights sum to 105, expected 100"
        );
        let d = Diagnostic {
            file: Some("a.yaml".into()),
            document: Some(0),
            ..Diagnostic::error("", "malformed YAML")
        };
        assert_eq!(d.to_string(), "a.yaml: doc 0: malformed YAML");
    }
}
