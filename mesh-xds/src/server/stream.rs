//! One state-of-the-world ADS stream's subscriptions, versions and nonces.

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::limits::{MAX_RESOURCE_NAMES, too_many_names};
use super::session::Protocol;
use super::view::{View, record_answer, wildcard_type};

#[derive(Debug, Default)]
struct Subscription {
    /// `None`: wildcard (LDS and CDS asked with no names).
    names: Option<BTreeSet<String>>,
    last_nonce: String,
}

/// State of the world: every response carries every subscribed resource of its type.
#[derive(Debug, Default)]
pub(super) struct AdsStream {
    subs: HashMap<&'static str, Subscription>,
    nonce: u64,
}

impl Protocol for AdsStream {
    type Request = DiscoveryRequest;
    const INCREMENTAL: bool = false;
    type Response = DiscoveryResponse;

    fn node(r: &DiscoveryRequest) -> Option<&Node> {
        r.node.as_ref()
    }

    fn type_url(r: &DiscoveryRequest) -> &str {
        &r.type_url
    }

    fn request(
        &mut self,
        view: &View,
        type_url: &'static str,
        r: &DiscoveryRequest,
    ) -> Result<bool, tonic::Status> {
        if r.resource_names.len() > MAX_RESOURCE_NAMES {
            return Err(too_many_names(type_url, r.resource_names.len()));
        }
        let sub = self.subs.entry(type_url).or_default();
        if !r.response_nonce.is_empty() && r.response_nonce != sub.last_nonce {
            return Ok(false); // an answer to an older response: superseded
        }
        if !r.response_nonce.is_empty() {
            let error = r.error_detail.as_ref().map(|e| e.message.as_str());
            record_answer(&view.id, type_url, &r.version_info, error);
        }
        let wildcard = r.resource_names.is_empty() && wildcard_type(type_url);
        let names = (!wildcard).then(|| r.resource_names.iter().cloned().collect::<BTreeSet<_>>());
        let changed = names != sub.names || sub.last_nonce.is_empty();
        sub.names = names;
        Ok(changed)
    }

    fn subscribed(&self, type_url: &str) -> bool {
        self.subs.contains_key(type_url)
    }

    /// The current resources of `type_url` the stream subscribed to.
    fn response(&mut self, view: &View, type_url: &'static str) -> Option<DiscoveryResponse> {
        let sub = self.subs.get_mut(type_url)?;
        if sub.names.as_ref().is_some_and(|n| n.is_empty()) {
            return None;
        }
        let resources = view
            .select(type_url, sub.names.as_ref())
            .into_iter()
            .map(|(_, any)| any)
            .collect();
        self.nonce += 1;
        sub.last_nonce = self.nonce.to_string();
        Some(DiscoveryResponse {
            version_info: view.snapshot.version.clone(),
            resources,
            type_url: type_url.to_owned(),
            nonce: sub.last_nonce.clone(),
            ..Default::default()
        })
    }
}
