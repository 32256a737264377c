//! Identity metrics, recorded through the `metrics` facade (the application picks the exporter).
//!
//! - `mesh_certificate_expiry_timestamp_seconds{kind="leaf"|"root", subject}`: Unix time at which
//!   each certificate expires. The leaf's `subject` is its SPIFFE ID (Istio leaves have an empty
//!   subject); a root's is its distinguished name. Leaves rotate on their own; roots do not, and
//!   rustls does not check a trust anchor's expiry, so a root that lapses breaks the mesh without
//!   a warning from TLS. Alert on `expiry - time() < 30d` for `kind="root"`.
//! - `mesh_identity_rotations_total`: accepted rotations.
//! - `mesh_identity_rotation_errors_total`: refused rotations (the previous identity kept serving).

use super::credentials::Credentials;

/// Gauge: expiry of the leaf and of each root, in seconds since the Unix epoch.
pub const CERTIFICATE_EXPIRY: &str = "mesh_certificate_expiry_timestamp_seconds";
/// Counter: accepted rotations.
pub const ROTATIONS: &str = "mesh_identity_rotations_total";
/// Counter: refused rotations.
pub const ROTATION_ERRORS: &str = "mesh_identity_rotation_errors_total";

/// Sets the expiry gauges for `credentials`.
pub fn record_expiry(credentials: &Credentials) {
    metrics::gauge!(
        CERTIFICATE_EXPIRY,
        "kind" => "leaf",
        "subject" => credentials.spiffe_id().to_string()
    )
    .set(credentials.leaf_not_after().unix_seconds() as f64);
    for root in credentials.roots() {
        metrics::gauge!(CERTIFICATE_EXPIRY, "kind" => "root", "subject" => root.subject.clone())
            .set(root.not_after.unix_seconds() as f64);
    }
}

pub(crate) fn record_rotation() {
    metrics::counter!(ROTATIONS).increment(1);
}

pub(crate) fn record_rotation_error() {
    metrics::counter!(ROTATION_ERRORS).increment(1);
}
