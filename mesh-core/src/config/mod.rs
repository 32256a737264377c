//! Config diagnostics: every problem found while loading, named by file, document, resource and
//! field, so a user can go straight to the line that needs fixing.

mod diagnostic;

pub use diagnostic::{ConfigError, Diagnostic, ResourceRef, Severity};
