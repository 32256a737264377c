//! Upstream TLS: a cluster's `transport_socket` (UpstreamTlsContext) ↔ [`UpstreamTls`].
//!
//! Istio's ISTIO_MUTUAL is the workload identity: for Envoy, SDS secrets named `default` (the
//! certificate) and `ROOTCA` (the roots) from the sidecar agent's `sds-grpc` cluster; for proxyless gRPC, certificate-provider instances from
//! the bootstrap (instance `default`, certificate names `default` and `ROOTCA`). SIMPLE and MUTUAL
//! name files. Expected server identities are SAN matchers (exact URI SANs for SPIFFE IDs).

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiConfigSource, ApiVersion, ConfigSource, DataSource, GrpcService,
    TransportSocket, api_config_source, config_source::ConfigSourceSpecifier,
    data_source::Specifier, grpc_service, transport_socket::ConfigType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    SdsSecretConfig, SubjectAltNameMatcher, TlsCertificate, UpstreamTlsContext,
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use mesh_core::model::{TlsMode, UpstreamTls};

use super::NodeKind;
use super::error::{Scope, XdsError};
use super::proto::{pack, unpack};

/// Name of the TLS transport socket.
pub(crate) const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
/// Istio's certificate names.
pub const CERT_DEFAULT: &str = "default";
/// Istio's root-bundle name.
pub const CERT_ROOTCA: &str = "ROOTCA";

pub(crate) fn ads_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::Filename(path.to_owned())),
        ..Default::default()
    }
}

/// The cluster an Istio sidecar's bootstrap defines for its agent's SDS server.
pub(crate) const SDS_CLUSTER: &str = "sds-grpc";

/// A secret from the sidecar's agent, as istiod names it: over gRPC to the bootstrap's
/// `sds-grpc` cluster (the agent's socket), not over ADS (istiod serves no secrets).
fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource {
                    api_type: api_config_source::ApiType::Grpc as i32,
                    transport_api_version: ApiVersion::V3 as i32,
                    set_node_on_first_message_only: true,
                    grpc_services: vec![GrpcService {
                        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                            grpc_service::EnvoyGrpc {
                                cluster_name: SDS_CLUSTER.to_owned(),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
    }
}

fn provider(certificate_name: &str) -> CertificateProviderPluginInstance {
    CertificateProviderPluginInstance {
        instance_name: CERT_DEFAULT.to_owned(),
        certificate_name: certificate_name.to_owned(),
    }
}

fn san_matchers(sans: &[String]) -> Vec<SubjectAltNameMatcher> {
    sans.iter()
        .map(|s| SubjectAltNameMatcher {
            san_type: if s.contains("://") {
                SanType::Uri as i32
            } else {
                SanType::Dns as i32
            },
            matcher: Some(exact(s)),
            oid: String::new(),
        })
        .collect()
}

fn exact(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Exact(s.to_owned())),
        ignore_case: false,
    }
}

/// The workload identity as a TLS context: the certificate `default` and the roots `ROOTCA`, by
/// SDS for Envoy and from the bootstrap's certificate-provider instance for gRPC; `validation`
/// holds the other checks (SAN matchers).
pub(crate) fn identity_context(
    node: NodeKind,
    validation: CertificateValidationContext,
) -> CommonTlsContext {
    let mut common = CommonTlsContext::default();
    match node {
        NodeKind::Envoy => {
            common.tls_certificate_sds_secret_configs = vec![sds(CERT_DEFAULT)];
            common.validation_context_type =
                Some(ValidationContextType::CombinedValidationContext(
                    CombinedCertificateValidationContext {
                        default_validation_context: Some(validation),
                        validation_context_sds_secret_config: Some(sds(CERT_ROOTCA)),
                        ..Default::default()
                    },
                ));
        }
        NodeKind::ProxylessGrpc => {
            common.tls_certificate_provider_instance = Some(provider(CERT_DEFAULT));
            common.validation_context_type = Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    ca_certificate_provider_instance: Some(provider(CERT_ROOTCA)),
                    ..validation
                },
            ));
        }
    }
    common
}

/// Whether `common` names the workload identity's certificate (`default`, by SDS or a provider
/// instance).
pub(crate) fn names_identity_certificate(common: &CommonTlsContext) -> bool {
    common
        .tls_certificate_sds_secret_configs
        .iter()
        .any(|s| s.name == CERT_DEFAULT)
        || common
            .tls_certificate_provider_instance
            .as_ref()
            .is_some_and(|p| p.certificate_name == CERT_DEFAULT || p.certificate_name.is_empty())
}

/// The transport socket for `tls`, `None` for plaintext.
pub(crate) fn to_transport_socket(tls: &UpstreamTls, node: NodeKind) -> Option<TransportSocket> {
    let sans = &tls.subject_alt_names;
    let validation = CertificateValidationContext {
        trusted_ca: tls.ca_certificates.as_deref().map(file),
        match_typed_subject_alt_names: match node {
            NodeKind::Envoy => san_matchers(sans),
            NodeKind::ProxylessGrpc => Vec::new(),
        },
        // gRPC checks the untyped list only (A29); given typed matchers it checks nothing.
        match_subject_alt_names: match node {
            NodeKind::Envoy => Vec::new(),
            NodeKind::ProxylessGrpc => sans.iter().map(|s| exact(s)).collect(),
        },
        ..Default::default()
    };
    let common = match tls.mode {
        TlsMode::Disable => return None,
        TlsMode::IstioMutual => CommonTlsContext {
            alpn_protocols: vec!["istio".into()],
            ..identity_context(node, validation)
        },
        TlsMode::Simple | TlsMode::Mutual => CommonTlsContext {
            tls_certificates: match (&tls.client_certificate, &tls.private_key) {
                (Some(cert), Some(key)) => vec![TlsCertificate {
                    certificate_chain: Some(file(cert)),
                    private_key: Some(file(key)),
                    ..Default::default()
                }],
                _ => Vec::new(),
            },
            validation_context_type: Some(ValidationContextType::ValidationContext(validation)),
            ..Default::default()
        },
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: tls.sni.clone().unwrap_or_default(),
        ..Default::default()
    };
    Some(TransportSocket {
        name: TLS_SOCKET.to_owned(),
        config_type: Some(ConfigType::TypedConfig(pack(&context))),
    })
}

fn filename(
    d: &Option<DataSource>,
    scope: &Scope,
    field: &str,
) -> Result<Option<String>, XdsError> {
    match d.as_ref().and_then(|d| d.specifier.as_ref()) {
        None => Ok(None),
        Some(Specifier::Filename(f)) => Ok(Some(f.clone())),
        Some(_) => Err(scope.error(field, "only file data sources are supported")),
    }
}

fn read_sans(
    v: &CertificateValidationContext,
    scope: &Scope,
    path: &str,
) -> Result<Vec<String>, XdsError> {
    let mut sans = Vec::new();
    for (i, m) in v.match_typed_subject_alt_names.iter().enumerate() {
        match m.matcher.as_ref().and_then(|m| m.match_pattern.as_ref()) {
            Some(MatchPattern::Exact(s)) => sans.push(s.clone()),
            _ => {
                return Err(scope.error(
                    format!("{path}.match_typed_subject_alt_names[{i}]"),
                    "only exact SAN matchers are supported",
                ));
            }
        }
    }
    for (i, m) in v.match_subject_alt_names.iter().enumerate() {
        match &m.match_pattern {
            Some(MatchPattern::Exact(s)) => sans.push(s.clone()),
            _ => {
                return Err(scope.error(
                    format!("{path}.match_subject_alt_names[{i}]"),
                    "only exact SAN matchers are supported",
                ));
            }
        }
    }
    Ok(sans)
}

/// Reads a cluster's transport socket.
pub(crate) fn from_transport_socket(
    socket: Option<&TransportSocket>,
    scope: &mut Scope,
) -> Result<UpstreamTls, XdsError> {
    let Some(socket) = socket else {
        return Ok(UpstreamTls {
            mode: TlsMode::Disable,
            ..UpstreamTls::istio_mutual()
        });
    };
    let context: UpstreamTlsContext = match &socket.config_type {
        Some(ConfigType::TypedConfig(any)) => {
            unpack(any).map_err(|e| scope.error("transport_socket.typed_config", e))?
        }
        None => return Err(scope.error("transport_socket.typed_config", "missing")),
    };
    let path = "transport_socket.typed_config.common_tls_context";
    let common = context.common_tls_context.clone().unwrap_or_default();
    let identity_cert = names_identity_certificate(&common);
    let (validation, root_provider) = match &common.validation_context_type {
        None => (CertificateValidationContext::default(), false),
        Some(ValidationContextType::ValidationContext(v)) => {
            (v.clone(), v.ca_certificate_provider_instance.is_some())
        }
        Some(ValidationContextType::CombinedValidationContext(c)) => (
            c.default_validation_context.clone().unwrap_or_default(),
            c.validation_context_sds_secret_config.is_some()
                || c.validation_context_certificate_provider_instance.is_some(),
        ),
        Some(ValidationContextType::ValidationContextSdsSecretConfig(_)) => {
            (CertificateValidationContext::default(), true)
        }
        Some(_) => {
            return Err(scope.error(
                format!("{path}.validation_context_type"),
                "certificate providers by plugin are not supported; use a provider instance",
            ));
        }
    };
    let sans = read_sans(&validation, scope, &format!("{path}.validation_context"))?;
    let ca = filename(
        &validation.trusted_ca,
        scope,
        &format!("{path}.validation_context.trusted_ca"),
    )?;
    let (cert, key) = match common.tls_certificates.first() {
        Some(c) => (
            filename(
                &c.certificate_chain,
                scope,
                &format!("{path}.tls_certificates[0].certificate_chain"),
            )?,
            filename(
                &c.private_key,
                scope,
                &format!("{path}.tls_certificates[0].private_key"),
            )?,
        ),
        None => (None, None),
    };
    let mode = if identity_cert || root_provider {
        TlsMode::IstioMutual
    } else if cert.is_some() {
        TlsMode::Mutual
    } else {
        TlsMode::Simple
    };
    let mut residual = common;
    residual.tls_certificate_sds_secret_configs.clear();
    residual.tls_certificate_provider_instance = None;
    residual.validation_context_type = None;
    residual.tls_certificates.clear();
    residual.alpn_protocols.clear();
    scope.unsupported(path, &residual);
    Ok(UpstreamTls {
        mode,
        sni: (!context.sni.is_empty()).then_some(context.sni),
        subject_alt_names: sans,
        client_certificate: cert,
        private_key: key,
        ca_certificates: ca,
        credential: None,
    })
}
