//! PLACEHOLDER until the rbac branch lands (not to be committed).
use super::NodeKind;
use super::error::{Scope, XdsError};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter::ConfigType,
};
use mesh_core::model::AuthzPolicy;
pub(crate) fn rbac_filters(_: &[AuthzPolicy], _: NodeKind) -> Vec<HttpFilter> {
    Vec::new()
}
pub(crate) fn decode_rbac_filters(
    _: &[HttpFilter],
    _: &str,
    _: &mut Scope,
) -> Result<Vec<AuthzPolicy>, XdsError> {
    Ok(Vec::new())
}
pub(crate) fn is_rbac(f: &HttpFilter) -> bool {
    matches!(&f.config_type, Some(ConfigType::TypedConfig(a)) if a.type_url.ends_with("envoy.extensions.filters.http.rbac.v3.RBAC"))
}
