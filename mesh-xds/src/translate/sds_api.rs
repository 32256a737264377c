//! The protocol an Envoy node's SDS config sources speak to the `sds-grpc` cluster.
//!
//! istiod writes `api_type: GRPC` (state of the world) for the `sds-grpc` cluster, istio-agent's
//! SDS server. `mesh xds serve` serves SDS itself, both ways, so a node that speaks incremental
//! ADS gets `DELTA_GRPC` for its secrets too (Envoy takes any xDS type over either protocol):
//! [`sds_over_delta`] rewrites every SDS config source of a set of resources that names the
//! `sds-grpc` cluster. Other config sources are left as they are.

use envoy_types::pb::envoy::config::core::v3::{
    ConfigSource, TransportSocket, api_config_source::ApiType,
    config_source::ConfigSourceSpecifier, grpc_service::TargetSpecifier,
    transport_socket::ConfigType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, UpstreamTlsContext,
    common_tls_context::ValidationContextType,
};
use prost::{Message, Name};

use super::XdsResources;
use super::proto::pack;
use super::tls::SDS_CLUSTER;

/// Makes every SDS config source naming the `sds-grpc` cluster incremental (`DELTA_GRPC`), in
/// the clusters' and the listeners' TLS contexts.
pub fn sds_over_delta(resources: &mut XdsResources) {
    for c in &mut resources.clusters {
        if let Some(socket) = &mut c.transport_socket {
            rewrite::<UpstreamTlsContext>(socket, |t| t.common_tls_context.as_mut());
        }
        for m in &mut c.transport_socket_matches {
            if let Some(socket) = &mut m.transport_socket {
                rewrite::<UpstreamTlsContext>(socket, |t| t.common_tls_context.as_mut());
            }
        }
    }
    for l in &mut resources.listeners {
        for chain in l
            .filter_chains
            .iter_mut()
            .chain(l.default_filter_chain.as_mut())
        {
            if let Some(socket) = &mut chain.transport_socket {
                rewrite::<DownstreamTlsContext>(socket, |t| t.common_tls_context.as_mut());
            }
        }
    }
}

/// Rewrites the TLS context of type `T` in `socket` (left alone when it is another type).
fn rewrite<T: Message + Name + Default>(
    socket: &mut TransportSocket,
    common: impl Fn(&mut T) -> Option<&mut CommonTlsContext>,
) {
    let Some(ConfigType::TypedConfig(any)) = &mut socket.config_type else {
        return;
    };
    if any.type_url != T::type_url() {
        return;
    }
    let Ok(mut context) = T::decode(any.value.as_slice()) else {
        return;
    };
    let Some(common) = common(&mut context) else {
        return;
    };
    let mut changed = false;
    for s in &mut common.tls_certificate_sds_secret_configs {
        changed |= to_delta(s.sds_config.as_mut());
    }
    match &mut common.validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(c)) => {
            if let Some(s) = &mut c.validation_context_sds_secret_config {
                changed |= to_delta(s.sds_config.as_mut());
            }
        }
        Some(ValidationContextType::ValidationContextSdsSecretConfig(s)) => {
            changed |= to_delta(s.sds_config.as_mut());
        }
        _ => {}
    }
    if changed {
        *any = pack(&context);
    }
}

/// `DELTA_GRPC` for a state-of-the-world gRPC source to the `sds-grpc` cluster; whether it
/// changed.
fn to_delta(source: Option<&mut ConfigSource>) -> bool {
    let Some(ConfigSourceSpecifier::ApiConfigSource(api)) =
        source.and_then(|s| s.config_source_specifier.as_mut())
    else {
        return false;
    };
    let to_sds = api.grpc_services.iter().any(|g| {
        matches!(&g.target_specifier, Some(TargetSpecifier::EnvoyGrpc(e)) if e.cluster_name == SDS_CLUSTER)
    });
    if to_sds && api.api_type == ApiType::Grpc as i32 {
        api.api_type = ApiType::DeltaGrpc as i32;
        return true;
    }
    false
}
