//! Filter metadata: Istio's `istio` namespace and mesh's own `mesh` namespace, which carries the
//! model fields xDS has no place for (Envoy and gRPC ignore unknown namespaces).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::{Struct, Value};

/// mesh's metadata namespace.
pub(crate) const MESH: &str = "mesh";
/// Istio's metadata namespace.
pub(crate) const ISTIO: &str = "istio";
/// Envoy's subset-LB namespace, where endpoint labels live.
pub(crate) const ENVOY_LB: &str = "envoy.lb";

/// Builds metadata from namespaces, leaving out empty ones; `None` when all are empty.
pub(crate) fn metadata(namespaces: Vec<(&str, HashMap<String, Value>)>) -> Option<Metadata> {
    let filter_metadata: HashMap<String, Struct> = namespaces
        .into_iter()
        .filter(|(_, f)| !f.is_empty())
        .map(|(n, fields)| (n.to_owned(), Struct { fields }))
        .collect();
    (!filter_metadata.is_empty()).then(|| Metadata {
        filter_metadata,
        typed_filter_metadata: HashMap::new(),
    })
}

/// One namespace of `metadata`, if present.
pub(crate) fn namespace<'a>(metadata: Option<&'a Metadata>, name: &str) -> Option<&'a Struct> {
    metadata?.filter_metadata.get(name)
}

/// A field of a namespace.
pub(crate) fn field<'a>(metadata: Option<&'a Metadata>, ns: &str, key: &str) -> Option<&'a Value> {
    namespace(metadata, ns)?.fields.get(key)
}
