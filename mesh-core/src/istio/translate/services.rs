//! ServiceEntries and WorkloadEntries: the services mesh knows, their ports and endpoints.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::super::diag::{Diagnostics, Field, Origin, Reporter};
use super::super::names;
use super::super::resources::{self as r, labels_match};
use super::Item;
use crate::BuildContext;
use crate::config::ResourceRef;
use crate::model::{Locality, Protocol, Resolution};

/// A declared service port.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Port {
    pub(crate) number: u16,
    pub(crate) name: String,
    pub(crate) protocol: Protocol,
    pub(crate) target_port: Option<u16>,
}

/// Where an endpoint is: an IP, a DNS name, or a unix domain socket path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EndpointHost {
    Ip(IpAddr),
    Dns(String),
    Unix(String),
}

/// An endpoint of a service, before ports are applied.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceEndpoint {
    pub(crate) host: EndpointHost,
    pub(crate) ports: BTreeMap<String, u16>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) weight: u32,
    pub(crate) locality: Locality,
    pub(crate) identity: Option<String>,
}

impl ServiceEndpoint {
    /// The port to connect to for service port `port` (by name, else targetPort, else number).
    pub(crate) fn port_for(&self, port: &Port) -> u16 {
        self.ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number)
    }
}

/// A service host declared by a ServiceEntry.
#[derive(Clone, Debug)]
pub(crate) struct Service {
    pub(crate) host: String,
    pub(crate) namespace: String,
    pub(crate) ports: Vec<Port>,
    pub(crate) mesh_internal: bool,
    pub(crate) resolution: Resolution,
    pub(crate) endpoints: Vec<ServiceEndpoint>,
    pub(crate) subject_alt_names: Vec<String>,
}

impl Service {
    pub(crate) fn port(&self, number: u16) -> Option<&Port> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// Reads Istio's port protocol, falling back to the name prefix (`http-web`, `grpc`, …) as
/// Istio's protocol selection does.
fn protocol(port: &r::ServicePort, field: &Field, report: &mut Reporter<'_>) -> Protocol {
    // An empty protocol is Istio's "sniff" (pkg/config/validation ValidateProtocol): like an
    // absent one. A library client sees the request the application made, which is HTTP.
    if let Some(p) = port.protocol.as_deref().filter(|p| !p.is_empty()) {
        return match Protocol::from_istio(p) {
            Some(p) => p,
            None => {
                report.error(&field.key("protocol"), format!("unknown protocol {p:?}"));
                Protocol::Unspecified
            }
        };
    }
    let name = port.name.as_deref().unwrap_or_default();
    let prefix = name.split('-').next().unwrap_or_default();
    Protocol::from_istio(prefix).unwrap_or(Protocol::Unspecified)
}

fn endpoint(
    spec: &r::WorkloadEntrySpec,
    namespace: &str,
    default_sa: Option<&str>,
    resolution: Resolution,
    field: &Field,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<ServiceEndpoint> {
    let address = spec.address.as_deref().unwrap_or_default();
    let network = spec.network.as_deref().unwrap_or_default();
    let host = if address.is_empty() && !network.is_empty() {
        // istiod accepts it (`validateWorkloadEntry`: "address is unset with network", a
        // warning): the endpoint is reached through its network's east-west gateway. mesh has
        // no gateways, i.e. multi-network is not enabled, and then istiod drops an endpoint
        // without an address (`filterIstioEndpoint`, pilot/pkg/xds/endpoints/endpoint_builder.go).
        // An endpoint *with* an address keeps it: with no gateways `EndpointsByNetworkFilter`
        // (ep_filters.go) returns every endpoint whatever its network.
        report.warn(
            &field.key("address"),
            format!(
                "address is unset with network {network:?}: reachable only through that network's gateway, and mesh has none; endpoint dropped"
            ),
        );
        return None;
    } else if address.is_empty() {
        report.error(&field.key("address"), "address is required");
        return None;
    } else if let Ok(ip) = address.parse::<IpAddr>() {
        EndpointHost::Ip(ip)
    } else if let Some(path) = address.strip_prefix("unix://") {
        // istiod's `ValidateUnixAddress` and `validateWorkloadEntry`: an absolute path to a
        // file, or an abstract socket `@name`; no ports.
        if path.is_empty()
            || !(path.starts_with('@') || path.starts_with('/') && !path.ends_with('/'))
        {
            report.error(
                &field.key("address"),
                format!("{path:?} is not an absolute path to a file"),
            );
            return None;
        }
        if !spec.ports.is_empty() {
            report.error(
                &field.key("ports"),
                format!("unix endpoint {address} must not include ports"),
            );
            return None;
        }
        EndpointHost::Unix(path.to_owned())
    } else if resolution == Resolution::Dns {
        if let Err(e) = names::validate_host(address) {
            report.error(&field.key("address"), e);
            return None;
        }
        EndpointHost::Dns(address.to_ascii_lowercase())
    } else {
        report.error(
            &field.key("address"),
            format!("{address:?} is not an IP address (host names need resolution DNS)"),
        );
        return None;
    };
    let mut ports = BTreeMap::new();
    for (name, &n) in &spec.ports {
        let f = field.key("ports").key(name);
        // validation.go ValidatePortName: a DNS-1123 label.
        if !names::is_dns1123_label(name) {
            report.error(&f, format!("invalid port name {name:?}"));
            continue;
        }
        match u16::try_from(n) {
            Ok(p) if p > 0 => {
                ports.insert(name.clone(), p);
            }
            _ => report.error(&f, format!("port {n} is out of range 1..65535")),
        }
    }
    let weight = match spec.weight {
        Some(0) | None => 1,
        Some(w) => w,
    };
    let sa = spec.service_account.as_deref().or(default_sa);
    Some(ServiceEndpoint {
        host,
        ports,
        labels: spec.labels.clone(),
        weight,
        locality: spec
            .locality
            .as_deref()
            .map(Locality::parse)
            .unwrap_or_default(),
        identity: sa.map(|sa| names::spiffe_id(&ctx.settings.trust_domain, namespace, sa)),
    })
}

/// Validated WorkloadEntries by namespace, as endpoints for workload selectors.
pub(crate) fn index_workload_entries(
    entries: &[Item<r::WorkloadEntrySpec>],
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> HashMap<String, Vec<ServiceEndpoint>> {
    let mut by_ns: HashMap<String, Vec<ServiceEndpoint>> = HashMap::new();
    for item in entries {
        let mut report = diags.at(&item.origin, &item.resource);
        let ns = &item.resource.namespace;
        // A WorkloadEntry may name its host by DNS whatever the selecting ServiceEntry's
        // resolution, as Istio allows.
        if let Some(ep) = endpoint(
            &item.spec,
            ns,
            Some("default"),
            Resolution::Dns,
            &Field::new("spec"),
            ctx,
            &mut report,
        ) {
            by_ns.entry(ns.clone()).or_default().push(ep);
        }
    }
    by_ns
}

/// Validates `ports`: numbers in range and unique, names present and unique, protocols known.
fn read_ports(specs: &[r::ServicePort], field: &Field, report: &mut Reporter<'_>) -> Vec<Port> {
    let mut ports: Vec<Port> = Vec::new();
    for (i, p) in specs.iter().enumerate() {
        let pf = field.index(i);
        let number = super::traffic_policy::port_number(p.number, &pf.key("number"), report);
        let target_port = match p.target_port {
            None => None,
            Some(t) => super::traffic_policy::port_number(Some(t), &pf.key("targetPort"), report),
        };
        let name = p.name.clone().unwrap_or_default();
        if name.is_empty() {
            report.error(&pf.key("name"), "port name is required");
        }
        let protocol = protocol(p, &pf, report);
        let Some(number) = number else { continue };
        if ports.iter().any(|q| q.number == number) {
            report.error(
                &pf.key("number"),
                format!("port {number} is declared twice"),
            );
            continue;
        }
        if !name.is_empty() && ports.iter().any(|q| q.name == name) {
            report.error(&pf.key("name"), format!("port name {name:?} is used twice"));
        }
        ports.push(Port {
            number,
            name,
            protocol,
            target_port,
        });
    }
    ports
}

/// Where a service host was declared, to name the first declaration in conflicts.
struct Declared {
    origin: Origin,
    resource: ResourceRef,
}

/// Validates ServiceEntries into services keyed by host.
pub(crate) fn build_services(
    entries: &[Item<r::ServiceEntrySpec>],
    workloads: &HashMap<String, Vec<ServiceEndpoint>>,
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Service> {
    let mut services = BTreeMap::new();
    let mut declared: HashMap<String, Declared> = HashMap::new();
    for item in entries {
        let mut report = diags.at(&item.origin, &item.resource);
        let spec = &item.spec;
        let ns = item.resource.namespace.as_str();
        let f = Field::new("spec");
        let export_to = super::export_to::read(
            &spec.export_to,
            ns,
            &ctx.settings.default_service_export_to,
            true,
            &f.key("exportTo"),
            &mut report,
        );
        if spec.hosts.is_empty() {
            report.error(&f.key("hosts"), "at least one host is required");
        }
        // `ports` is optional in Istio (ValidateServiceEntry checks only the ports given).
        if spec.ports.is_empty() {
            report.warn(
                &f.key("ports"),
                "no ports: mesh routes nothing to these hosts; requests for them follow the \
                 outbound traffic policy (ALLOW_ANY passes them through)",
            );
        }
        for (i, a) in spec.addresses.iter().enumerate() {
            if mesh_address(a).is_none() {
                report.error(
                    &f.key("addresses").index(i),
                    format!("{a:?} is not an IP address or CIDR block"),
                );
            }
        }
        if !spec.addresses.is_empty() {
            report.warn(
                &f.key("addresses"),
                "not used: mesh routes by host name (authority), not by destination address",
            );
        }
        let resolution = match spec.resolution {
            None | Some(r::SeResolution::None) => Resolution::None,
            Some(r::SeResolution::Static) => Resolution::Static,
            Some(r::SeResolution::Dns | r::SeResolution::DnsRoundRobin) => Resolution::Dns,
        };
        let mesh_internal = spec.location == Some(r::SeLocation::MeshInternal);
        // Istio's ServiceEntry validation (validation.go, and the CRD's rules as exercised by
        // pkg/config/validation/testdata/crds/serviceentry-invalid.yaml).
        if !matches!(resolution, Resolution::None | Resolution::Static) {
            for (i, a) in spec.addresses.iter().enumerate() {
                if a.contains('/') {
                    report.error(
                        &f.key("addresses").index(i),
                        "CIDR addresses are allowed only for NONE/STATIC resolution types",
                    );
                }
            }
        }
        if spec.resolution == Some(r::SeResolution::DnsRoundRobin) && spec.endpoints.len() > 1 {
            report.error(
                &f.key("endpoints"),
                "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
            );
        }
        if let Some(sel) = &spec.workload_selector {
            for (k, v) in &sel.labels {
                if v.contains('*') {
                    report.error(
                        &f.key("workloadSelector").key("labels").key(k),
                        "wildcard is not supported in selector",
                    );
                }
            }
        }
        let ports = read_ports(&spec.ports, &f.key("ports"), &mut report);
        if resolution == Resolution::None && !spec.endpoints.is_empty() {
            report.error(
                &f.key("endpoints"),
                "endpoints are not allowed with resolution NONE",
            );
        }
        let mut endpoints = Vec::new();
        for (i, e) in spec.endpoints.iter().enumerate() {
            let ef = f.key("endpoints").index(i);
            if let Some(ep) = endpoint(e, ns, None, resolution, &ef, ctx, &mut report) {
                endpoints.push(ep);
            }
        }
        if let Some(sel) = &spec.workload_selector {
            if !spec.endpoints.is_empty() {
                report.error(
                    &f.key("workloadSelector"),
                    "workloadSelector and endpoints are mutually exclusive",
                );
            }
            endpoints.extend(
                workloads
                    .get(ns)
                    .into_iter()
                    .flatten()
                    .filter(|w| labels_match(&sel.labels, &w.labels))
                    .cloned(),
            );
        }
        if resolution == Resolution::Static
            && spec.workload_selector.is_none()
            && spec.endpoints.is_empty()
        {
            report.warn(
                &f.key("endpoints"),
                "resolution STATIC with no endpoints: calls will find no healthy upstream",
            );
        }
        for (i, host) in spec.hosts.iter().enumerate() {
            let hf = f.key("hosts").index(i);
            if let Err(e) = names::validate_host(host) {
                report.error(&hf, e);
                continue;
            }
            let host = names::resolve_host(host, ns, &ctx.settings);
            if host == "*" {
                report.error(&hf, "a ServiceEntry host must not be *");
                continue;
            }
            if host.starts_with('*') && resolution == Resolution::Dns && endpoints.is_empty() {
                report.error(&hf, "a wildcard host with resolution DNS needs endpoints");
                continue;
            }
            if !export_to.visible_to(&ctx.workload.namespace) {
                // Not exported to this workload's namespace: istiod leaves it out of the
                // sidecar's services (PushContext.servicesExportedToNamespace).
                continue;
            }
            if let Some(first) = declared.get(&host) {
                report.warn(
                    &hf,
                    format!(
                        "{host} is already declared by {} ({}); this declaration is ignored",
                        first.resource,
                        first.origin.describe()
                    ),
                );
                continue;
            }
            declared.insert(
                host.clone(),
                Declared {
                    origin: item.origin.clone(),
                    resource: item.resource.clone(),
                },
            );
            let mesh_internal =
                mesh_internal || host.ends_with(&format!(".svc.{}", ctx.settings.domain_suffix));
            services.insert(
                host.clone(),
                Service {
                    host,
                    namespace: ns.to_owned(),
                    ports: ports.clone(),
                    mesh_internal,
                    resolution,
                    endpoints: endpoints.clone(),
                    subject_alt_names: spec.subject_alt_names.clone(),
                },
            );
        }
    }
    services
}

/// An IP address or CIDR block as ServiceEntry `addresses` take them.
fn mesh_address(a: &str) -> Option<()> {
    crate::model::IpBlock::parse(a).map(|_| ())
}
