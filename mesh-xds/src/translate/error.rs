//! The error of one resource: which resource, which field, what is wrong.

use std::fmt;

use mesh_core::config::{Diagnostic, ResourceRef};

/// The four xDS resource types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// LDS Listener.
    Listener,
    /// RDS RouteConfiguration.
    RouteConfiguration,
    /// CDS Cluster.
    Cluster,
    /// EDS ClusterLoadAssignment.
    Endpoints,
}

impl ResourceKind {
    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Listener => "listener",
            ResourceKind::RouteConfiguration => "route",
            ResourceKind::Cluster => "cluster",
            ResourceKind::Endpoints => "endpoints",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invalid resource: `cluster outbound|9080|v1|reviews.default.svc.cluster.local: lb_policy:
/// CLUSTER_PROVIDED is not supported`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name}: {field}: {message}")]
pub struct XdsError {
    /// Resource type.
    pub kind: ResourceKind,
    /// Resource name.
    pub name: String,
    /// Field path inside the resource.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl XdsError {
    /// As a config diagnostic.
    pub fn to_diagnostic(&self) -> Diagnostic {
        Diagnostic {
            resource: Some(resource_ref(self.kind, &self.name)),
            ..Diagnostic::error(self.field.clone(), self.message.clone())
        }
    }
}

pub(crate) fn resource_ref(kind: ResourceKind, name: &str) -> ResourceRef {
    ResourceRef {
        kind: kind.as_str().to_owned(),
        namespace: String::new(),
        name: name.to_owned(),
    }
}

/// Collects what one resource's translation finds: the first error ends it; warnings gather.
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) kind: ResourceKind,
    pub(crate) name: String,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl Scope {
    pub(crate) fn new(kind: ResourceKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn error(&self, field: impl Into<String>, message: impl Into<String>) -> XdsError {
        XdsError {
            kind: self.kind,
            name: self.name.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            resource: Some(resource_ref(self.kind, &self.name)),
            ..Diagnostic::warning(field, message)
        });
    }

    /// Reports the fields still set in `residual` (the message with every implemented field
    /// cleared) as not implemented.
    pub(crate) fn unsupported<M: prost::Message + prost::Name>(
        &mut self,
        path: &str,
        residual: &M,
    ) {
        let fields = super::proto::set_field_numbers(residual);
        if fields.is_empty() {
            return;
        }
        let list = fields
            .iter()
            .map(|f| format!("#{f}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.warn(
            path,
            format!(
                "{} field(s) {list} not implemented; ignored",
                M::full_name()
            ),
        );
    }
}
