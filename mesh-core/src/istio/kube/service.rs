//! A Kubernetes Service as a mesh service: host, ports with their protocols, exportTo and
//! service accounts, as istiod's `ConvertService` (`pilot/pkg/serviceregistry/kube/conversion.go`).

use super::super::diag::{Field, Reporter};
use super::super::names;
use super::super::translate::Item;
use super::super::translate::services::{EndpointHost, Port, Service, ServiceEndpoint};
use super::types::{ServiceObject, ServicePort};
use crate::BuildContext;
use crate::model::{Locality, Protocol, Resolution};

const EXPORT_TO: &str = "networking.istio.io/exportTo";
const CANONICAL_SERVICE_ACCOUNTS: &str = "alpha.istio.io/canonical-serviceaccounts";
const KUBERNETES_SERVICE_ACCOUNTS: &str = "alpha.istio.io/kubernetes-serviceaccounts";

/// Ports whose unnamed traffic istiod treats as TCP rather than sniffing it: SMTP, DNS, MySQL,
/// MongoDB (`pkg/config/kube/conversion.go` `wellKnownPorts`).
const WELL_KNOWN_TCP_PORTS: [i64; 4] = [25, 53, 3306, 27017];

/// A port's protocol as istiod's `ConvertProtocol` decides it: UDP is UDP (`None`: mesh, like
/// the sidecar, carries no UDP); else `appProtocol` (with Kubernetes' `kubernetes.io/h2c`,
/// `/ws`, `/wss`), else the port name; `grpc-web` first, then the prefix before the first `-`;
/// an unknown prefix on a well-known port is TCP, elsewhere unspecified (sniffed).
pub(crate) fn convert_protocol(
    port: i64,
    name: &str,
    protocol: Option<&str>,
    app_protocol: Option<&str>,
) -> Option<Protocol> {
    if protocol == Some("UDP") {
        return None;
    }
    let name = match app_protocol {
        Some("kubernetes.io/h2c") => return Some(Protocol::Http2),
        Some("kubernetes.io/ws") => return Some(Protocol::Http),
        Some("kubernetes.io/wss") => return Some(Protocol::Tls),
        Some(app) => app,
        None => name,
    };
    if name
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("grpc-web"))
    {
        return Some(Protocol::Grpc);
    }
    let prefix = name.split('-').next().unwrap_or_default();
    Some(match Protocol::from_istio(prefix) {
        Some(p) => p,
        None if WELL_KNOWN_TCP_PORTS.contains(&port) => Protocol::Tcp,
        None => Protocol::Unspecified,
    })
}

fn port(p: &ServicePort, field: &Field, report: &mut Reporter<'_>) -> Option<Port> {
    let number = match p.port {
        Some(n) if (1..=65535).contains(&n) => n,
        Some(n) => {
            report.error(
                &field.key("port"),
                format!("port {n} is out of range 1..65535"),
            );
            return None;
        }
        None => {
            report.error(&field.key("port"), "required");
            return None;
        }
    };
    let name = p.name.clone().unwrap_or_default();
    let Some(protocol) = convert_protocol(
        number,
        &name,
        p.protocol.as_deref(),
        p.app_protocol.as_deref(),
    ) else {
        report.warn(
            &field.key("protocol"),
            "UDP port: not carried by mesh (nor by Istio's sidecar); skipped",
        );
        return None;
    };
    Some(Port {
        number: u16::try_from(number).ok()?,
        name,
        protocol,
        // Endpoints give the port to connect to by port name; without them the Service's own
        // port is called through its name (kube-proxy maps it to the target).
        target_port: None,
    })
}

/// Whether the Service is visible from `namespace` under its exportTo annotation (absent: to
/// all, the mesh default), as istiod's `initServiceRegistry` reads `*`, `.`, `~` and names.
pub(crate) fn visible(item: &Item<ServiceObject>, namespace: &str) -> bool {
    let Some(export_to) = item.metadata.annotations.get(EXPORT_TO) else {
        return true;
    };
    let own = item.resource.namespace.as_str();
    let entries: Vec<&str> = export_to.split(',').map(str::trim).collect();
    if entries.contains(&"*") {
        return true;
    }
    if entries.contains(&"~") {
        return false;
    }
    entries
        .iter()
        .any(|e| *e == namespace || (*e == "." && own == namespace))
}

fn service_accounts(item: &Item<ServiceObject>, ctx: &BuildContext) -> Vec<String> {
    let annotations = &item.metadata.annotations;
    let split = |key: &str| -> Vec<String> {
        annotations
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut out = split(CANONICAL_SERVICE_ACCOUNTS);
    out.extend(
        split(KUBERNETES_SERVICE_ACCOUNTS)
            .iter()
            .map(|sa| names::spiffe_id(&ctx.settings.trust_domain, &item.resource.namespace, sa)),
    );
    out
}

/// The Service as mesh models it, without its endpoints (an ExternalName service has its
/// external name as its one DNS endpoint).
pub(crate) fn convert(
    item: &Item<ServiceObject>,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<Service> {
    let spec = &item.spec.spec;
    let ns = item.resource.namespace.as_str();
    let host = format!(
        "{}.{ns}.svc.{}",
        item.resource.name.to_ascii_lowercase(),
        ctx.settings.domain_suffix
    );
    if let Err(e) = names::validate_host(&host) {
        report.error("metadata.name", e);
        return None;
    }
    if spec.internal_traffic_policy.as_deref() == Some("Local") {
        // istiod keeps only the endpoints on the proxy's own node (`conversion.go` NodeLocal,
        // `endpoint_builder.go`); a mesh process has no node.
        report.warn(
            "spec.internalTrafficPolicy",
            "Local: istiod keeps only the endpoints on the caller's node; mesh knows no node, \
             so every endpoint is used",
        );
    }
    let f = Field::new("spec").key("ports");
    let ports: Vec<Port> = spec
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| port(p, &f.index(i), report))
        .collect();
    let external = spec
        .external_name
        .as_deref()
        .filter(|n| !n.is_empty() && spec.kind.as_deref() == Some("ExternalName"));
    let mut endpoints = Vec::new();
    if let Some(name) = external {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Err(e) = names::validate_host(&name) {
            report.error("spec.externalName", e);
            return None;
        }
        endpoints.push(ServiceEndpoint {
            host: EndpointHost::Dns(name),
            ports: Default::default(),
            labels: Default::default(),
            weight: 1,
            locality: Locality::default(),
            identity: None,
        });
    }
    Some(Service {
        host,
        namespace: ns.to_owned(),
        ports,
        mesh_internal: external.is_none(),
        resolution: Resolution::Dns,
        endpoints,
        subject_alt_names: service_accounts(item, ctx),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule of istio/istio `pkg/config/kube/conversion.go` `ConvertProtocol`, case by case.
    /// Port, name, `protocol`, `appProtocol`, and the expected protocol.
    type Case<'a> = (
        i64,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<Protocol>,
    );

    #[test]
    fn protocol_follows_istiods_convert_protocol() {
        let cases: [Case<'_>; 12] = [
            (8080, "http-web", None, None, Some(Protocol::Http)),
            (8080, "grpc", Some("TCP"), None, Some(Protocol::Grpc)),
            (8080, "grpc-web-x", None, None, Some(Protocol::Grpc)),
            (8080, "http2-x", None, None, Some(Protocol::Http2)),
            (8080, "web", None, None, Some(Protocol::Unspecified)),
            (8080, "", None, None, Some(Protocol::Unspecified)),
            (3306, "", None, None, Some(Protocol::Tcp)),
            (3306, "http", None, None, Some(Protocol::Http)),
            (8080, "http", Some("UDP"), None, None),
            (8080, "tcp-x", None, Some("HTTP"), Some(Protocol::Http)),
            (
                8080,
                "x",
                None,
                Some("kubernetes.io/h2c"),
                Some(Protocol::Http2),
            ),
            (
                8080,
                "x",
                None,
                Some("kubernetes.io/wss"),
                Some(Protocol::Tls),
            ),
        ];
        for (port, name, proto, app, want) in cases {
            assert_eq!(
                convert_protocol(port, name, proto, app),
                want,
                "{port} {name} {app:?}"
            );
        }
    }
}
