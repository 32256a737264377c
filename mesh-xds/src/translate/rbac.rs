//! Authorization on inbound listeners: Envoy RBAC HTTP filters ↔ the model's
//! [`AuthzPolicy`] list, both ways, with no I/O.
//!
//! istiod (and `mesh xds serve`) put authorization in the HTTP connection manager's filters:
//! a DENY filter, then an ALLOW filter, then (Envoy only) a LOG filter for AUDIT policies, one
//! RBAC policy per AuthorizationPolicy rule. [`rbac_filters`] writes that; [`decode_rbac_filters`]
//! reads it back, from our encoding or from istiod's, and refuses (with the field path) every
//! matcher the model cannot express rather than approximating it: a guess could let through
//! what the control plane meant to deny.
//!
//! Model → RBAC → model gives back the same policies in a canonical order: DENY, ALLOW, AUDIT,
//! each sorted by name; within a rule, the `when` conditions read on the source side
//! (`source.*`, request headers, keys mesh does not evaluate) come before those on the
//! destination side (`destination.*`, `connection.sni`); a `/32` (`/128`) condition value comes
//! back as the bare address.

mod decode;
mod encode;
mod leaves;
mod matchers;
#[cfg(test)]
mod tests;
mod tree;

use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter::ConfigType,
};
use mesh_core::model::AuthzPolicy;
use prost::Name;

use super::NodeKind;
use super::error::{Scope, XdsError};

/// The DENY filter's name, as istiod writes it.
pub(crate) const DENY_FILTER: &str = "envoy.filters.http.rbac.DENY";
/// The ALLOW filter's name.
pub(crate) const ALLOW_FILTER: &str = "envoy.filters.http.rbac";
/// The AUDIT (LOG) filter's name.
pub(crate) const AUDIT_FILTER: &str = "envoy.filters.http.rbac.AUDIT";
/// The dynamic-metadata namespace istiod's authentication filter writes (JWT claims).
const ISTIO_AUTHN: &str = "istio_authn";
/// The metadata key of a request's JWT principal.
const REQUEST_PRINCIPAL: &str = "request.auth.principal";
/// The filter-state key holding the peer's identity on Envoy sidecars.
const PEER_PRINCIPAL_STATE: &str = "io.istio.peer_principal";

/// HTTP filters enforcing `policies`, as istiod writes them for proxyless gRPC: a DENY filter
/// named `envoy.filters.http.rbac.DENY` when any DENY policy exists, then an ALLOW filter named
/// `envoy.filters.http.rbac` when any ALLOW policy exists (even if every ALLOW policy has no
/// rules: an ALLOW filter whose policies match nothing denies everything, which is what an
/// ALLOW policy without rules means). AUDIT policies become a LOG filter
/// `envoy.filters.http.rbac.AUDIT` for [`NodeKind::Envoy`] only; gRPC cannot take LOG, so for
/// [`NodeKind::ProxylessGrpc`] they are left out.
///
/// Each rule is the RBAC policy `"{policy.name}-{rule_index}"`; a policy without rules is one
/// entry named after it that matches nothing, so its name survives the trip.
pub(crate) fn rbac_filters(policies: &[AuthzPolicy], node: NodeKind) -> Vec<HttpFilter> {
    encode::rbac_filters(policies, node)
}

/// Reads every RBAC filter among `filters` (recognised by the typed_config type URL
/// `type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC`; other filters are skipped,
/// the caller handles them) into policies: DENY first, then ALLOW, then AUDIT (action LOG).
/// `path` is the field path of the filter list for error messages, e.g.
/// `filter_chains[0].filters[0].typed_config.http_filters`; errors name the filter index and the
/// field inside the RBAC tree. Settings that do not change the verdict (shadow rules, audit
/// loggers, stat prefixes) are warnings in `scope`.
pub(crate) fn decode_rbac_filters(
    filters: &[HttpFilter],
    path: &str,
    scope: &mut Scope,
) -> Result<Vec<AuthzPolicy>, XdsError> {
    decode::decode_rbac_filters(filters, path, scope)
}

/// Whether `f` is an RBAC filter (by its typed config's type URL).
pub(crate) fn is_rbac(f: &HttpFilter) -> bool {
    matches!(&f.config_type, Some(ConfigType::TypedConfig(any)) if any.type_url == HttpRbac::type_url())
}
