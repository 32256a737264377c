//! One incremental ("delta") ADS stream, the variant Envoy sidecars use by default since Istio
//! 1.22 (`ads_config.api_type: DELTA_GRPC`).
//!
//! Per type the stream keeps what the client subscribed to (a wildcard for LDS and CDS when the
//! first request names nothing, or names `*`; named resources otherwise) and which version of
//! each resource the client holds. A response carries only what changed since: resources whose
//! version differs, and the names of resources that are gone. A resource's version is a hash of
//! the model it was built from ([`View::version`]), so a push of an unchanged resource sends
//! nothing. A reconnecting client's `initial_resource_versions` are taken as what it holds.

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::limits::{MAX_RESOURCE_NAMES, too_many_names};
use super::session::Protocol;
use super::view::{View, record_answer, wildcard_type};

/// One type's subscription.
#[derive(Debug, Default)]
struct Subscription {
    /// Every resource of the type, plus `names`.
    wildcard: bool,
    /// Resources asked for by name.
    names: BTreeSet<String>,
    /// The version of each resource the client holds.
    held: HashMap<String, String>,
    /// Named resources the client was told do not exist.
    missing: BTreeSet<String>,
    /// Whether a response of this type was sent (the first is sent even when empty: a client
    /// waits for it to finish initialising).
    answered: bool,
}

/// Incremental: each response carries what changed of its type since the client's copy.
#[derive(Debug, Default)]
pub(super) struct DeltaStream {
    subs: HashMap<&'static str, Subscription>,
    nonce: u64,
}

impl Protocol for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    const INCREMENTAL: bool = true;
    type Response = DeltaDiscoveryResponse;

    fn node(r: &DeltaDiscoveryRequest) -> Option<&Node> {
        r.node.as_ref()
    }

    fn type_url(r: &DeltaDiscoveryRequest) -> &str {
        &r.type_url
    }

    fn request(
        &mut self,
        view: &View,
        type_url: &'static str,
        r: &DeltaDiscoveryRequest,
    ) -> Result<bool, tonic::Status> {
        if !r.response_nonce.is_empty() {
            let error = r.error_detail.as_ref().map(|e| e.message.as_str());
            record_answer(&view.id, type_url, &view.snapshot.version, error);
        }
        let first = !self.subs.contains_key(type_url);
        let sub = self.subs.entry(type_url).or_default();
        let asked = r.resource_names_subscribe.len() + r.initial_resource_versions.len();
        if asked > MAX_RESOURCE_NAMES {
            return Err(too_many_names(type_url, asked));
        }
        let changed = subscribe(sub, r, first, wildcard_type(type_url)) || first;
        // What the stream keeps grows request by request: its total is what is bounded.
        if sub.names.len() > MAX_RESOURCE_NAMES {
            return Err(too_many_names(type_url, sub.names.len()));
        }
        Ok(changed)
    }

    fn subscribed(&self, type_url: &str) -> bool {
        self.subs.contains_key(type_url)
    }

    /// What changed of `type_url` since the client's copy: resources at a new version and the
    /// names of those gone (or named and not existing). Nothing when nothing changed, but always
    /// a first response.
    fn response(&mut self, view: &View, type_url: &'static str) -> Option<DeltaDiscoveryResponse> {
        let sub = self.subs.get_mut(type_url)?;
        let names = if sub.wildcard {
            sub.names
                .iter()
                .cloned()
                .chain(std::iter::once("*".to_owned()))
                .collect()
        } else {
            sub.names.clone()
        };
        let current = view.select(type_url, Some(&names));
        let mut resources = Vec::new();
        let mut present = BTreeSet::new();
        for (name, any) in current {
            let version = view.version(type_url, &name, &any);
            present.insert(name.clone());
            if sub.held.get(&name) != Some(&version) {
                sub.held.insert(name.clone(), version.clone());
                resources.push(Resource {
                    name,
                    version,
                    resource: Some(any),
                    ..Default::default()
                });
            }
        }
        let mut removed: Vec<String> = sub
            .held
            .keys()
            .filter(|n| !present.contains(*n))
            .cloned()
            .collect();
        removed.sort();
        for name in &removed {
            sub.held.remove(name);
        }
        // Named resources that do not exist: said once each, so the client stops waiting.
        sub.missing
            .retain(|n| sub.names.contains(n) && !present.contains(n));
        for name in &sub.names {
            if !present.contains(name)
                && !removed.contains(name)
                && sub.missing.insert(name.clone())
            {
                removed.push(name.clone());
            }
        }
        if sub.answered && resources.is_empty() && removed.is_empty() {
            return None;
        }
        sub.answered = true;
        self.nonce += 1;
        Some(DeltaDiscoveryResponse {
            system_version_info: view.snapshot.version.clone(),
            resources,
            type_url: type_url.to_owned(),
            removed_resources: removed,
            nonce: self.nonce.to_string(),
            ..Default::default()
        })
    }
}

/// Applies a request's subscription changes; true when the subscription changed.
fn subscribe(
    sub: &mut Subscription,
    r: &DeltaDiscoveryRequest,
    first: bool,
    wildcard_type: bool,
) -> bool {
    let mut changed = false;
    if first {
        // The first request of a type: an empty subscription to LDS or CDS is the wildcard,
        // and what the client already holds (after a reconnect) is not sent again.
        sub.wildcard = wildcard_type && r.resource_names_subscribe.is_empty();
        sub.held = r.initial_resource_versions.clone();
        changed = true;
    }
    for name in &r.resource_names_subscribe {
        if name == "*" {
            changed |= !sub.wildcard;
            sub.wildcard = true;
        } else {
            changed |= sub.names.insert(name.clone());
        }
    }
    for name in &r.resource_names_unsubscribe {
        if name == "*" {
            changed |= sub.wildcard;
            sub.wildcard = false;
        } else {
            changed |= sub.names.remove(name);
        }
        // The client drops what it unsubscribed from; a resubscription sends it again.
        sub.held.remove(name);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(subscribe: &[&str], unsubscribe: &[&str]) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            resource_names_subscribe: subscribe.iter().map(|s| (*s).to_owned()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn wildcard_and_named_subscriptions_follow_the_protocol() {
        let mut lds = Subscription::default();
        assert!(subscribe(&mut lds, &request(&[], &[]), true, true));
        assert!(lds.wildcard, "an empty first LDS request is the wildcard");
        assert!(subscribe(
            &mut lds,
            &request(&["xds.istio.io/grpc/lds/inbound/[::]:8080"], &[]),
            false,
            true
        ));
        assert!(lds.wildcard, "naming a resource keeps the wildcard");
        assert!(!subscribe(&mut lds, &request(&[], &[]), false, true));
        assert!(subscribe(&mut lds, &request(&[], &["*"]), false, true));
        assert!(!lds.wildcard);

        let mut eds = Subscription::default();
        assert!(subscribe(&mut eds, &request(&[], &[]), true, false));
        assert!(!eds.wildcard, "EDS has no wildcard");
        eds.held.insert("a".into(), "1".into());
        assert!(subscribe(
            &mut eds,
            &request(&["a", "b"], &[]),
            false,
            false
        ));
        assert!(subscribe(&mut eds, &request(&[], &["a"]), false, false));
        assert_eq!(eds.names, BTreeSet::from(["b".to_owned()]));
        assert!(
            eds.held.is_empty(),
            "an unsubscribed resource is sent again if asked again"
        );
    }
}
