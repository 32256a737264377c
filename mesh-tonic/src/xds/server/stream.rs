//! One ADS stream: the node's view, its subscriptions, versions and nonces.

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;

use super::session::{Protocol, Session};
use super::view::{PUSH_ORDER, View, record_answer, wildcard_type};

#[derive(Debug, Default)]
struct Subscription {
    /// `None`: wildcard (LDS and CDS asked with no names).
    names: Option<BTreeSet<String>>,
    last_nonce: String,
}

pub(super) struct AdsStream {
    session: Session,
    tx: mpsc::Sender<Result<DiscoveryResponse, tonic::Status>>,
    view: Option<View>,
    subs: HashMap<&'static str, Subscription>,
    nonce: u64,
}

impl AdsStream {
    pub(super) fn new(
        session: Session,
        tx: mpsc::Sender<Result<DiscoveryResponse, tonic::Status>>,
    ) -> Self {
        Self {
            session,
            tx,
            view: None,
            subs: HashMap::new(),
            nonce: 0,
        }
    }

    /// Handles one request; false when the stream is done.
    async fn handle(&mut self, r: DiscoveryRequest) -> bool {
        if self.view.is_none() {
            self.view = self.session.first_view(r.node.as_ref(), &self.tx).await;
            if self.view.is_none() {
                return false;
            }
        }
        let Some(type_url) = PUSH_ORDER.iter().copied().find(|t| *t == r.type_url) else {
            tracing::warn!(peer = %self.session.peer, type_url = %r.type_url, "xDS request for a type not served; ignored");
            return true;
        };
        let node_id = self.view.as_ref().map(|v| v.id.clone()).unwrap_or_default();
        let sub = self.subs.entry(type_url).or_default();
        if !r.response_nonce.is_empty() && r.response_nonce != sub.last_nonce {
            return true; // an answer to an older response: superseded
        }
        if !r.response_nonce.is_empty() {
            let error = r.error_detail.as_ref().map(|e| e.message.as_str());
            record_answer(&node_id, type_url, &r.version_info, error);
        }
        let wildcard = r.resource_names.is_empty() && wildcard_type(type_url);
        let names = (!wildcard).then(|| r.resource_names.iter().cloned().collect::<BTreeSet<_>>());
        let changed = names != sub.names || sub.last_nonce.is_empty();
        sub.names = names;
        if changed {
            return self.push(type_url).await;
        }
        true
    }

    async fn push_all(&mut self) -> bool {
        for t in PUSH_ORDER {
            if self.subs.contains_key(t) && !self.push(t).await {
                return false;
            }
        }
        true
    }

    /// Sends the current resources of `type_url` the stream subscribed to.
    async fn push(&mut self, type_url: &'static str) -> bool {
        let (Some(view), Some(sub)) = (&self.view, self.subs.get_mut(type_url)) else {
            return true;
        };
        let resources = view
            .select(type_url, sub.names.as_ref())
            .into_iter()
            .map(|(_, any)| any)
            .collect();
        if sub.names.as_ref().is_some_and(|n| n.is_empty()) {
            return true;
        }
        self.nonce += 1;
        sub.last_nonce = self.nonce.to_string();
        let response = DiscoveryResponse {
            version_info: view.snapshot.version.clone(),
            resources,
            type_url: type_url.to_owned(),
            nonce: sub.last_nonce.clone(),
            ..Default::default()
        };
        self.tx.send(Ok(response)).await.is_ok()
    }
}

impl Protocol for AdsStream {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;

    fn session(&self) -> &Session {
        &self.session
    }

    fn tx(&self) -> &mpsc::Sender<Result<DiscoveryResponse, tonic::Status>> {
        &self.tx
    }

    fn view_mut(&mut self) -> Option<&mut View> {
        self.view.as_mut()
    }

    async fn handle(&mut self, r: DiscoveryRequest) -> bool {
        AdsStream::handle(self, r).await
    }

    async fn push_all(&mut self) -> bool {
        AdsStream::push_all(self).await
    }
}
