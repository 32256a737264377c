//! One resource type's subscription on the ADS stream: the names asked for, the version and
//! nonce to answer with, and each resource's state (requested, received, does not exist).

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use tokio::time::Instant;

use super::status::ResourceState;
use crate::translate::{ResourceKind, type_url};

pub(super) const KINDS: [ResourceKind; 4] = [
    ResourceKind::Listener,
    ResourceKind::RouteConfiguration,
    ResourceKind::Cluster,
    ResourceKind::Endpoints,
];

pub(super) fn url(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Listener => type_url::LISTENER,
        ResourceKind::RouteConfiguration => type_url::ROUTE,
        ResourceKind::Cluster => type_url::CLUSTER,
        ResourceKind::Endpoints => type_url::ENDPOINTS,
    }
}

/// Per resource type: subscription, versions, nonce, states.
#[derive(Debug, Default)]
pub(super) struct TypeState {
    /// Subscribed to everything (LDS with no names, CDS).
    pub(super) wildcard: bool,
    pub(super) names: BTreeSet<String>,
    /// Version of the last accepted response.
    pub(super) version: String,
    /// The server (index into the config's servers) that sent `version`: versions are one
    /// server's, so another server is asked without one.
    pub(super) version_server: Option<usize>,
    /// Nonce of the last response on the current stream.
    pub(super) nonce: String,
    /// Whether any response of this type was ever received.
    pub(super) received: bool,
    /// Named resources asked for and not received, with when the timer started.
    pub(super) pending: BTreeMap<String, Instant>,
    /// Named resources the server does not have.
    pub(super) does_not_exist: BTreeSet<String>,
    /// Version and state per resource name.
    pub(super) states: BTreeMap<String, (String, ResourceState)>,
    /// Resources whose deletion was ignored (gRFC A53): kept, and logged once until the server
    /// sends them again.
    pub(super) deletion_ignored: BTreeSet<String>,
}

impl TypeState {
    /// The request of this type on a stream to `server`.
    pub(super) fn request(&self, kind: ResourceKind, server: usize) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: if self.version_server == Some(server) {
                self.version.clone()
            } else {
                String::new()
            },
            // A wildcard subscription that also names resources (a server's inbound
            // listeners, which wildcard LDS does not send) asks for `*` and those names.
            resource_names: match (self.wildcard, self.names.is_empty()) {
                (true, true) => Vec::new(),
                (true, false) => std::iter::once("*".to_owned())
                    .chain(self.names.iter().cloned())
                    .collect(),
                (false, _) => self.names.iter().cloned().collect(),
            },
            type_url: url(kind).to_owned(),
            response_nonce: self.nonce.clone(),
            ..Default::default()
        }
    }

    /// Whether a named resource the client has no valid copy of is settled: known not to
    /// exist, or received invalid (NACKed with nothing cached), so waiting longer changes
    /// nothing until the server sends it again.
    pub(super) fn settled(&self, name: &str) -> bool {
        self.does_not_exist.contains(name)
            || matches!(
                self.states.get(name),
                Some((_, ResourceState::Nacked { .. }))
            )
    }

    /// Starts the does-not-exist timer of every named resource not yet received.
    pub(super) fn arm(&mut self, now: Instant, have: impl Fn(&str) -> bool) {
        for name in &self.names {
            if !have(name) && !self.does_not_exist.contains(name) {
                self.pending.entry(name.clone()).or_insert(now);
                self.states
                    .entry(name.clone())
                    .or_insert((String::new(), ResourceState::Requested));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::type_url;

    #[test]
    fn versions_are_sent_only_to_the_server_that_sent_them() {
        let t = TypeState {
            wildcard: true,
            version: "7".into(),
            version_server: Some(1),
            nonce: "n".into(),
            ..Default::default()
        };
        let on_fallback = t.request(ResourceKind::Cluster, 1);
        assert_eq!(
            (
                on_fallback.version_info.as_str(),
                on_fallback.response_nonce.as_str()
            ),
            ("7", "n")
        );
        let to_primary = t.request(ResourceKind::Cluster, 0);
        assert_eq!(to_primary.version_info, "");
        assert_eq!(to_primary.type_url, type_url::CLUSTER);
        let never = TypeState {
            version: "7".into(),
            ..Default::default()
        };
        assert_eq!(never.request(ResourceKind::Cluster, 0).version_info, "");
    }
}
