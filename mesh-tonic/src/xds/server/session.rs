//! What every ADS stream shares, whichever protocol variant it speaks: the server, the watch on
//! the files, the stop signal, the peer, and the loop that reacts to requests, edits and the
//! server stopping.

use std::future::Future;
use std::sync::Arc;

use mesh_core::MeshSettings;
use mesh_core::model::Snapshot;
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::XdsServer;
use super::view::View;

/// One stream's surroundings.
pub(super) struct Session {
    pub(super) server: XdsServer,
    pub(super) settings: MeshSettings,
    pub(super) changes: watch::Receiver<Arc<Snapshot>>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) peer: String,
}

impl Session {
    /// The node's view, built from its first request (which must carry the node). Sends the
    /// error and returns `None` when it does not.
    pub(super) async fn first_view<R>(
        &self,
        node: Option<&envoy_types::pb::envoy::config::core::v3::Node>,
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
        let mut view = View::new(node, &self.settings, &self.peer);
        view.rebuild(&self.server).await;
        Some(view)
    }
}

/// A protocol variant: state of the world or incremental.
pub(super) trait Protocol: Send {
    /// Its request message.
    type Request: Message + Default + Send + 'static;
    /// Its response message.
    type Response: Send + 'static;

    fn session(&self) -> &Session;
    fn tx(&self) -> &mpsc::Sender<Result<Self::Response, tonic::Status>>;
    fn view_mut(&mut self) -> Option<&mut View>;
    /// Handles one request; false when the stream is done.
    fn handle(&mut self, r: Self::Request) -> impl Future<Output = bool> + Send;
    /// Sends what changed of every subscribed type; false when the stream is done.
    fn push_all(&mut self) -> impl Future<Output = bool> + Send;
}

/// What wakes a stream.
enum Wake<R> {
    Stop,
    Request(Result<Option<R>, tonic::Status>),
    Changed(bool),
}

/// Serves one stream until the client leaves, the watcher goes or the server stops.
pub(super) async fn run<P: Protocol>(mut p: P, mut requests: tonic::Streaming<P::Request>) {
    let (mut stop, mut changes) = (p.session().stop.clone(), p.session().changes.clone());
    loop {
        let wake = tokio::select! {
            _ = stop.wait_for(|s| *s) => Wake::Stop,
            request = requests.message() => Wake::Request(request),
            changed = changes.changed() => Wake::Changed(changed.is_ok()),
        };
        match wake {
            Wake::Stop => {
                let stopping = tonic::Status::unavailable("xDS server stopping");
                let _ = p.tx().send(Err(stopping)).await;
                return;
            }
            Wake::Changed(false) => return,
            Wake::Changed(true) => {
                let server = p.session().server.clone();
                let rebuilt = match p.view_mut() {
                    Some(view) => view.rebuild(&server).await,
                    None => false,
                };
                if rebuilt && !p.push_all().await {
                    return;
                }
            }
            Wake::Request(Ok(Some(r))) => {
                if !p.handle(r).await {
                    return;
                }
            }
            Wake::Request(Ok(None)) => return,
            Wake::Request(Err(status)) => {
                tracing::debug!(peer = %p.session().peer, %status, "xDS stream ended");
                return;
            }
        }
    }
}
