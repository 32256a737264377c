//! What every ADS stream shares, whichever protocol variant it speaks: the server, the watch on
//! the files, the stop signal, the peer, and the loop that reacts to requests, edits and the
//! server stopping.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use mesh_core::MeshSettings;
use mesh_core::model::Snapshot;
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::sds::SECRET_TYPE;
use super::view::{PUSH_ORDER, View};
use super::{XdsServer, limits};

/// One stream's surroundings.
pub(super) struct Session {
    pub(super) server: XdsServer,
    pub(super) settings: MeshSettings,
    pub(super) changes: watch::Receiver<Arc<Snapshot>>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) peer: String,
    /// Who the caller proved to be, on a secured server.
    pub(super) caller: Option<super::auth::Caller>,
}

impl Session {
    /// The node's view, built from its first request (which must carry the node). Sends the
    /// error and returns `None` when it does not.
    pub(super) async fn first_view<R>(
        &self,
        node: Option<&Node>,
        incremental: bool,
        tx: &mpsc::Sender<Result<R, tonic::Status>>,
    ) -> Option<View> {
        let Some(node) = node else {
            let _ = tx
                .send(Err(tonic::Status::invalid_argument(
                    "the first request must carry the node",
                )))
                .await;
            return None;
        };
        let authorized;
        let node = match &self.caller {
            None => node,
            Some(caller) => match super::auth::authorize_node(caller, node, &self.settings) {
                Ok(n) => {
                    authorized = n;
                    &authorized
                }
                Err(status) => {
                    tracing::warn!(peer = %self.peer, node = %node.id, %status, "xDS node refused");
                    let _ = tx.send(Err(status)).await;
                    return None;
                }
            },
        };
        let mut view = View::new(node, &self.settings, &self.peer, incremental);
        if let (Some(caller), Some(security)) = (&self.caller, self.server.security()) {
            view = view.with_secrets(super::sds::Secrets::new(caller.clone(), security.clone()));
        }
        view.rebuild(&self.server).await;
        Some(view)
    }
}

/// A protocol variant, state of the world or incremental: its subscriptions and how it answers.
/// The session owns the view, the sender and the loop.
pub(super) trait Protocol: Default + Send + 'static {
    /// Its request message.
    type Request: Message + Default + Send + 'static;
    /// Its response message.
    type Response: Send + 'static;
    /// Whether it is incremental xDS (the node's SDS config sources then are too).
    const INCREMENTAL: bool;

    /// The node a request carries (the first must).
    fn node(r: &Self::Request) -> Option<&Node>;
    /// The type a request is about.
    fn type_url(r: &Self::Request) -> &str;
    /// Takes a request of `type_url` (a type mesh serves); true when it calls for a response.
    /// An error (a subscription over the [`limits`](super::limits)) ends the stream.
    fn request(
        &mut self,
        view: &View,
        type_url: &'static str,
        r: &Self::Request,
    ) -> Result<bool, tonic::Status>;
    /// Whether the client subscribed to `type_url`.
    fn subscribed(&self, type_url: &str) -> bool;
    /// The response for `type_url` now; `None` when there is nothing to send.
    fn response(&mut self, view: &View, type_url: &'static str) -> Option<Self::Response>;
}

/// What wakes a stream.
enum Wake<R> {
    Stop,
    Request(Result<Option<R>, tonic::Status>),
    Changed(bool),
    /// The workload certificate is due for renewal.
    Renew,
}

/// Serves one stream until the client leaves, the watcher goes or the server stops: the first
/// request's node gets its view, each request its answer, each valid edit a push of every
/// subscribed type (clusters and endpoints before listeners and routes).
pub(super) async fn run<P: Protocol>(
    session: Session,
    tx: mpsc::Sender<Result<P::Response, tonic::Status>>,
    mut requests: tonic::Streaming<P::Request>,
) {
    let (mut stop, mut changes) = (session.stop.clone(), session.changes.clone());
    let mut protocol = P::default();
    let mut view: Option<View> = None;
    loop {
        let wake = tokio::select! {
            _ = stop.wait_for(|s| *s) => Wake::Stop,
            request = requests.message() => Wake::Request(request),
            changed = changes.changed() => Wake::Changed(changed.is_ok()),
            _ = super::sds::until(view.as_ref().and_then(View::renew_at)) => Wake::Renew,
        };
        let (view, types): (&View, Vec<&'static str>) = match wake {
            Wake::Stop => {
                let stopping = tonic::Status::unavailable("xDS server stopping");
                let _ = tx.send(Err(stopping)).await;
                return;
            }
            Wake::Changed(false) | Wake::Request(Ok(None)) => return,
            Wake::Request(Err(status)) => {
                let status = limits::exhausted(status);
                if status.code() == tonic::Code::ResourceExhausted {
                    tracing::warn!(peer = %session.peer, %status, "xDS request refused");
                } else {
                    tracing::debug!(peer = %session.peer, %status, "xDS stream ended");
                }
                let _ = tx.send(Err(status)).await;
                return;
            }
            Wake::Changed(true) => {
                let Some(v) = view.as_mut() else { continue };
                if !v.rebuild(&session.server).await {
                    continue;
                }
                // Secrets do not depend on the files.
                let types = PUSH_ORDER
                    .into_iter()
                    .filter(|t| *t != SECRET_TYPE && protocol.subscribed(t))
                    .collect();
                (v, types)
            }
            Wake::Renew => {
                let Some(v) = view.as_ref() else { continue };
                v.expire_secrets();
                let types = if protocol.subscribed(SECRET_TYPE) {
                    vec![SECRET_TYPE]
                } else {
                    Vec::new()
                };
                (v, types)
            }
            Wake::Request(Ok(Some(r))) => {
                if view.is_none() {
                    view = session.first_view(P::node(&r), P::INCREMENTAL, &tx).await;
                }
                let Some(v) = view.as_ref() else { return };
                let Some(type_url) = PUSH_ORDER.into_iter().find(|t| *t == P::type_url(&r)) else {
                    tracing::warn!(peer = %session.peer, type_url = %P::type_url(&r), "xDS request for a type not served; ignored");
                    continue;
                };
                let answer = match protocol.request(v, type_url, &r) {
                    Ok(answer) => answer,
                    Err(status) => {
                        tracing::warn!(peer = %session.peer, node = %v.id, %status, "xDS request refused");
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                (v, if answer { vec![type_url] } else { Vec::new() })
            }
        };
        for t in types {
            if let Some(response) = protocol.response(view, t)
                && tx.send(Ok(response)).await.is_err()
            {
                return;
            }
        }
    }
}
