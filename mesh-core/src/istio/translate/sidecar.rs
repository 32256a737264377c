//! Sidecar: every resource validated as istiod validates it (pkg/config/validation
//! `ValidateSidecar`), then the one that applies to this workload, and its `ingress` listeners.
//!
//! Which Sidecar applies is istiod's rule (pilot/pkg/model/push_context.go
//! `doGetSidecarScope`): in the workload's namespace, the oldest whose `workloadSelector`
//! matches its labels, else the oldest without a selector; else the oldest without a selector
//! in the root namespace. Age is `metadata.creationTimestamp`, then name.
//!
//! What mesh does with it: the `ingress` listeners become [`IngressListener`]s, from which a
//! control plane builds a proxy's inbound listeners (`mesh xds serve`). Fields mesh does not
//! implement are warnings: `egress`, `outboundTrafficPolicy` (the workload sees every exported
//! service and keeps [`MeshSettings::outbound_traffic_policy`](crate::MeshSettings)),
//! `inboundConnectionPool`, `ingress[].connectionPool`. An ingress listener whose traffic mesh
//! cannot serve as asked (`ingress[].tls`: the application's own TLS; a TCP or TLS protocol;
//! no `defaultEndpoint`) is left out with a warning rather than served differently.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use super::super::diag::{Diagnostics, Field, Reporter};
use super::super::resources::{self as r, labels_match};
use super::{Item, order};
use crate::BuildContext;
use crate::model::{CaptureMode, DefaultEndpoint, IngressListener, Protocol};

/// Validates every Sidecar and returns the ingress listeners of the one that applies to
/// `ctx.workload`, in port order.
pub(crate) fn resolve(
    items: &[Item<r::SidecarSpec>],
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> Vec<IngressListener> {
    let mut checked: Vec<(&Item<r::SidecarSpec>, Vec<IngressListener>)> = Vec::new();
    for item in items {
        let listeners = check(item, &mut diags.at(&item.origin, &item.resource));
        checked.push((item, listeners));
    }
    let ns = ctx.workload.namespace.as_str();
    // Levels: 0 selector matching, 1 namespace-wide, 2 root namespace.
    let level = |item: &Item<r::SidecarSpec>| {
        let own = item.resource.namespace == ns;
        match selector(item) {
            Some(labels) if own && labels_match(labels, &ctx.workload.labels) => Some(0),
            Some(_) => None,
            None if own => Some(1),
            None if item.resource.namespace == ctx.settings.root_namespace => Some(2),
            None => None,
        }
    };
    for wanted in 0..3 {
        let at_level = order::by_creation(
            checked
                .iter()
                .map(|(item, _)| *item)
                .filter(|item| level(item) == Some(wanted)),
            diags,
        );
        let Some(winner) = at_level.first() else {
            continue;
        };
        for loser in &at_level[1..] {
            diags.at(&loser.origin, &loser.resource).warn(
                "",
                format!(
                    "{} also applies to this workload and is older (or first by name); this Sidecar is ignored",
                    winner.resource
                ),
            );
        }
        return checked
            .into_iter()
            .find(|(item, _)| std::ptr::eq(*item, *winner))
            .map(|(_, listeners)| listeners)
            .unwrap_or_default();
    }
    Vec::new()
}

/// Validates one Sidecar; its ingress listeners mesh can serve, in port order.
fn check(item: &Item<r::SidecarSpec>, report: &mut Reporter<'_>) -> Vec<IngressListener> {
    let spec = &item.spec;
    let f = Field::new("spec");
    if let Some(selector) = &spec.workload_selector {
        let at = f.key("workloadSelector").key("labels");
        for (k, v) in &selector.labels {
            if k.is_empty() {
                report.error(
                    &at,
                    format!("empty key is not supported in selector: {k}={v}"),
                );
            }
            if k.contains('*') || v.contains('*') {
                report.error(
                    &at,
                    format!("wildcard is not supported in selector: {k}={v}"),
                );
            }
        }
        if selector.labels.is_empty() {
            report.warn(
                &f.key("workloadSelector"),
                "workload selector specified without labels: the Sidecar applies to every workload in the namespace",
            );
        }
    }
    if spec.ingress.is_empty()
        && spec.egress.is_none()
        && spec.outbound_traffic_policy.is_none()
        && spec.inbound_connection_pool.is_none()
    {
        report.error("spec", "empty configuration provided");
    }
    report.unimplemented(&spec.egress, &f.key("egress"));
    report.unimplemented(
        &spec.outbound_traffic_policy,
        &f.key("outboundTrafficPolicy"),
    );
    report.unimplemented(
        &spec.inbound_connection_pool,
        &f.key("inboundConnectionPool"),
    );
    let mut ports = BTreeSet::new();
    let mut out = Vec::new();
    for (i, ingress) in spec.ingress.iter().enumerate() {
        let at = f.key("ingress").index(i);
        let Some(ingress) = ingress else {
            report.error(&at, "ingress may not be null");
            continue;
        };
        let sidecar = format!("{}/{}", item.resource.namespace, item.resource.name);
        if let Some(l) = listener(ingress, &at, sidecar, &mut ports, report) {
            out.push(l);
        }
    }
    out.sort_by_key(|l| l.port);
    out
}

/// One ingress listener, validated; `None` when it is invalid or mesh leaves it out.
fn listener(
    ingress: &r::IngressListenerSpec,
    at: &Field,
    sidecar: String,
    ports: &mut BTreeSet<u32>,
    report: &mut Reporter<'_>,
) -> Option<IngressListener> {
    report.unimplemented(&ingress.connection_pool, &at.key("connectionPool"));
    let Some(port) = &ingress.port else {
        report.error(&at.key("port"), "port is required for ingress listeners");
        return None;
    };
    let mut valid = true;
    let port_at = at.key("port");
    if port.target_port.is_some() {
        report.error(
            &port_at.key("targetPort"),
            "targetPort has no impact on Sidecars",
        );
        valid = false;
    }
    let name = port.name.clone().unwrap_or_default();
    if !name.is_empty() && !is_dns_label(&name) {
        report.error(&port_at.key("name"), format!("invalid port name: {name}"));
        valid = false;
    }
    let number = match port.number.map(u16::try_from) {
        Some(Ok(n)) if n > 0 => Some(n),
        // Missing, zero or past 65535.
        _ => {
            report.error(
                &port_at.key("number"),
                "port number must be in the range 1..65535",
            );
            None
        }
    };
    if let Some(n) = port.number
        && !ports.insert(n)
    {
        report.error(
            &port_at.key("number"),
            "ports on IP bound listeners must be unique",
        );
        valid = false;
    }
    let protocol = match port.protocol.as_deref().unwrap_or_default() {
        "" => Some(Protocol::Unspecified),
        p => match Protocol::from_istio(p) {
            Some(p) => Some(p),
            None => {
                report.error(
                    &port_at.key("protocol"),
                    format!("unsupported protocol: {p}"),
                );
                None
            }
        },
    };
    let bind = match ingress.bind.as_deref().unwrap_or_default() {
        "" => Some(None),
        b => match b.parse::<IpAddr>() {
            Ok(ip) => Some(Some(ip)),
            Err(_) => {
                report.error(&at.key("bind"), format!("{b:?} is not a valid IP address"));
                None
            }
        },
    };
    let endpoint = match ingress.default_endpoint.as_deref() {
        None | Some("") => Some(None),
        Some(e) => default_endpoint(e, &at.key("defaultEndpoint"), report).map(Some),
    };
    let (Some(port), Some(protocol), Some(bind), Some(endpoint), true) =
        (number, protocol, bind, endpoint, valid)
    else {
        return None;
    };
    if ingress.tls.is_some() {
        report.warn(
            &at.key("tls"),
            "TLS with the application's own certificate is not implemented; this listener is left out",
        );
        return None;
    }
    if matches!(protocol, Protocol::Tcp | Protocol::Tls) {
        report.warn(
            &port_at.key("protocol"),
            "only HTTP protocols (HTTP, HTTP2, GRPC, GRPC-Web, or none) are implemented on ingress listeners; this listener is left out",
        );
        return None;
    }
    let Some(default_endpoint) = endpoint else {
        report.warn(
            &at.key("defaultEndpoint"),
            "no defaultEndpoint: istiod forwards to the original destination, which needs traffic interception mesh does not do; this listener is left out",
        );
        return None;
    };
    Some(IngressListener {
        port,
        protocol,
        name,
        bind,
        capture_mode: match ingress.capture_mode {
            None | Some(r::CaptureModeSetting::Default) => CaptureMode::Default,
            Some(r::CaptureModeSetting::Iptables) => CaptureMode::Iptables,
            Some(r::CaptureModeSetting::None) => CaptureMode::None,
        },
        default_endpoint,
        sidecar,
    })
}

/// `defaultEndpoint`: `127.0.0.1:<port>`, `0.0.0.0:<port>`, `[::1]:<port>`, `[::]:<port>` or
/// `unix://<path>` (istiod's `ValidateSidecar`).
fn default_endpoint(text: &str, at: &Field, report: &mut Reporter<'_>) -> Option<DefaultEndpoint> {
    if let Some(path) = text.strip_prefix("unix://") {
        if !path.starts_with('/') {
            report.error(at, format!("{path:?} is not an absolute path"));
            return None;
        }
        return Some(DefaultEndpoint::Unix(PathBuf::from(path)));
    }
    const FORM: &str = "defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port>, unix://filepath or unset";
    let Some((host, port)) = text.rsplit_once(':') else {
        report.error(at, FORM);
        return None;
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            report.error(
                at,
                format!("defaultEndpoint port ({port}) is not a port number 1..65535"),
            );
            return None;
        }
    };
    match host {
        "127.0.0.1" => Some(DefaultEndpoint::Loopback { ipv6: false, port }),
        "[::1]" => Some(DefaultEndpoint::Loopback { ipv6: true, port }),
        "0.0.0.0" => Some(DefaultEndpoint::InstanceIp { ipv6: false, port }),
        "[::]" => Some(DefaultEndpoint::InstanceIp { ipv6: true, port }),
        _ => {
            report.error(at, FORM);
            None
        }
    }
}

/// A DNS-1123 label (Istio's port names).
fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The labels a Sidecar selects workloads by; `None` without (or with an empty) selector.
fn selector(item: &Item<r::SidecarSpec>) -> Option<&std::collections::BTreeMap<String, String>> {
    item.spec
        .workload_selector
        .as_ref()
        .filter(|s| !s.labels.is_empty())
        .map(|s| &s.labels)
}
