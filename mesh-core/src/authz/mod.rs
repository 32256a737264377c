//! Authorization: Istio's AuthorizationPolicy evaluated in-process, and the request-path
//! normalisation that makes path rules safe to rely on.
//!
//! A server does three things per request, in this order:
//!
//! 1. [`normalize_path`] the request target (refusing malformed ones with 400), and from then on
//!    use the normalised form for both the policy and the application, so the two can never
//!    disagree about which path was asked for (the class of bypass behind CVE-2021-31920).
//! 2. Describe the request as an [`AuthzRequest`]: peer identity, addresses, authority, method,
//!    path, SNI and headers, all borrowed.
//! 3. [`evaluate`] the workload's policies ([`InboundPolicy::authorization`]) and act on the
//!    [`Decision`]: 403 / `PERMISSION_DENIED` when denied.
//!
//! Everything here is pure and allocation-free on the common path; the tower layer that wires it
//! into a server lives in `mesh-tower`.
//!
//! [`InboundPolicy::authorization`]: crate::model::InboundPolicy::authorization

mod decision;
mod evaluate;
mod path;
mod request;
#[cfg(test)]
mod tests;

pub use decision::{Decision, Reason, RuleRef, Verdict};
pub use evaluate::evaluate;
pub use path::{NormalizedPath, PathError, normalize_path};
pub use request::{AuthzRequest, HeaderLookup, NoHeaders, namespace_of};
