//! What the client knows about each resource, for `config_dump`-style views (gRFC A40, CSDS).

use serde::Serialize;

/// The state of one subscribed resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ResourceState {
    /// Asked for, not received yet.
    Requested,
    /// Received, valid, in use.
    Acked,
    /// The last update was invalid and NACKed; the previous version (if any) is still in use.
    Nacked {
        /// Why.
        error: String,
    },
    /// Not sent by the server within the does-not-exist timeout.
    DoesNotExist,
}

/// One resource's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceStatus {
    /// `listener`, `route`, `cluster` or `endpoints`.
    pub kind: &'static str,
    /// Resource name.
    pub name: String,
    /// Version of the copy in use (empty if none).
    pub version: String,
    /// State.
    #[serde(flatten)]
    pub state: ResourceState,
}

/// One control plane's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    /// Its target (`host:port` or `unix:PATH`).
    pub target: String,
    /// Connection attempts to it, failed ones included.
    pub connect_attempts: u64,
    /// Streams from it that the client used.
    pub connections: u64,
}

/// The client's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XdsStatus {
    /// Whether a stream to the server is open.
    pub connected: bool,
    /// The control plane of the open stream, or of the last one when disconnected.
    pub server: Option<String>,
    /// Whether that control plane is a fallback (not the primary; gRFC A71).
    pub on_fallback: bool,
    /// Every configured control plane, the primary first.
    pub servers: Vec<ServerStatus>,
    /// Whether a complete config has been applied.
    pub ready: bool,
    /// Version of the last snapshot applied to the mesh.
    pub applied_version: Option<String>,
    /// Streams opened so far (1 after the first connection).
    pub connections: u64,
    /// Connection attempts so far, failed ones included.
    pub connect_attempts: u64,
    /// The error of the last NACK sent.
    pub last_nack: Option<String>,
    /// Why the last connection or stream to a control plane failed (e.g. the control plane's
    /// certificate refused, or the server refusing this node), until the next one fails.
    pub last_error: Option<String>,
    /// Every subscribed resource.
    pub resources: Vec<ResourceStatus>,
}
