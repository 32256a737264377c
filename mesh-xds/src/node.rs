//! The xDS node: who a client is. Istio names proxies `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`
//! and sends its workload's labels, service account and namespace in the node metadata; a
//! control plane builds each node's config from that point of view.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use mesh_core::{BuildContext, MeshSettings, Workload};

/// Istio's node id: `<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IstioNodeId {
    /// `sidecar` (Envoy or proxyless) or `router` (gateways).
    pub node_type: String,
    /// The pod's IP.
    pub ip: String,
    /// Pod name.
    pub pod: String,
    /// Namespace.
    pub namespace: String,
    /// DNS domain, `<ns>.svc.cluster.local`.
    pub domain: String,
}

impl IstioNodeId {
    /// Parses Istio's form; `None` for other ids.
    ///
    /// ```
    /// use mesh_xds::IstioNodeId;
    /// let id = IstioNodeId::parse("sidecar~10.1.2.3~shop-7d9f.shop~shop.svc.cluster.local").unwrap();
    /// assert_eq!((id.pod.as_str(), id.namespace.as_str()), ("shop-7d9f", "shop"));
    /// ```
    pub fn parse(id: &str) -> Option<Self> {
        let mut parts = id.split('~');
        let (node_type, ip, pod_ns, domain) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let (pod, namespace) = pod_ns.rsplit_once('.')?;
        if node_type.is_empty() || pod.is_empty() || namespace.is_empty() {
            return None;
        }
        Some(Self {
            node_type: node_type.to_owned(),
            ip: ip.to_owned(),
            pod: pod.to_owned(),
            namespace: namespace.to_owned(),
            domain: domain.to_owned(),
        })
    }
}

fn str_field<'a>(s: &'a Struct, key: &str) -> Option<&'a str> {
    match &s.fields.get(key)?.kind {
        Some(Kind::StringValue(v)) if !v.is_empty() => Some(v),
        _ => None,
    }
}

/// Whether `node` is a proxyless gRPC client (Istio's `GENERATOR: grpc`, or a gRPC user agent).
#[cfg(feature = "server")]
pub(crate) fn is_proxyless(node: &Node) -> bool {
    node.metadata
        .as_ref()
        .and_then(|m| str_field(m, "GENERATOR"))
        == Some("grpc")
        || node.user_agent_name.to_ascii_lowercase().contains("grpc")
}

/// Where an Envoy node's inbound listeners go: its IP (from Istio's node id) and whether its
/// traffic is intercepted (metadata `INTERCEPTION_MODE`; istiod's default when unset is
/// `REDIRECT`, pilot/pkg/model/context.go `GetInterceptionMode`).
#[cfg(feature = "server")]
pub(crate) fn ingress_node(node: &Node) -> crate::translate::IngressNode {
    let mode = node
        .metadata
        .as_ref()
        .and_then(|m| str_field(m, "INTERCEPTION_MODE"));
    crate::translate::IngressNode {
        ip: IstioNodeId::parse(&node.id).and_then(|id| id.ip.parse().ok()),
        intercepted: mode != Some("NONE"),
    }
}

/// The point of view a control plane builds `node`'s config from: namespace from the Istio
/// node id (or `NAMESPACE` metadata), labels from `LABELS`, service account from
/// `SERVICE_ACCOUNT`, name from `WORKLOAD_NAME`.
pub(crate) fn build_context(node: &Node, settings: &MeshSettings) -> BuildContext {
    let empty = Struct::default();
    let meta = node.metadata.as_ref().unwrap_or(&empty);
    let parsed = IstioNodeId::parse(&node.id);
    let namespace = str_field(meta, "NAMESPACE")
        .map(str::to_owned)
        .or_else(|| parsed.as_ref().map(|p| p.namespace.clone()))
        .unwrap_or_else(|| settings.default_namespace.clone());
    let service_account = str_field(meta, "SERVICE_ACCOUNT").unwrap_or("default");
    let mut workload = Workload::new(namespace, service_account);
    if let Some(name) = str_field(meta, "WORKLOAD_NAME") {
        workload = workload.name(name);
    }
    if let Some(Value {
        kind: Some(Kind::StructValue(labels)),
    }) = meta.fields.get("LABELS")
    {
        workload = workload.labels(labels.fields.iter().filter_map(|(k, v)| match &v.kind {
            Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
            _ => None,
        }));
    }
    if let Some(l) = &node.locality {
        workload = workload.locality(mesh_core::model::Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
            subzone: l.sub_zone.clone(),
        });
    }
    BuildContext {
        workload,
        settings: settings.clone(),
    }
}

/// A JSON value as a protobuf `Value` (node metadata from a bootstrap file).
pub(crate) fn json_to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => {
            Kind::ListValue(envoy_types::pb::google::protobuf::ListValue {
                values: a.iter().map(json_to_value).collect(),
            })
        }
        serde_json::Value::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    Value { kind: Some(kind) }
}

/// A JSON object as a protobuf `Struct`.
pub(crate) fn json_to_struct(o: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: o
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect::<HashMap<_, _>>(),
    }
}

/// Node metadata for a mesh workload: Istio's keys, so istiod builds its config as for a
/// proxyless gRPC workload.
#[cfg(feature = "client")]
pub(crate) fn workload_metadata(workload: &Workload) -> Struct {
    let s = |v: &str| Value {
        kind: Some(Kind::StringValue(v.to_owned())),
    };
    let labels: std::collections::BTreeMap<_, _> = workload
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), s(v)))
        .collect();
    Struct {
        fields: HashMap::from([
            ("GENERATOR".to_owned(), s("grpc")),
            ("NAMESPACE".to_owned(), s(&workload.namespace)),
            ("SERVICE_ACCOUNT".to_owned(), s(&workload.service_account)),
            ("WORKLOAD_NAME".to_owned(), s(&workload.name)),
            (
                "LABELS".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(Struct {
                        fields: labels.into_iter().collect(),
                    })),
                },
            ),
        ]),
    }
}
