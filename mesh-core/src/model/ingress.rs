//! Sidecar `ingress` listeners: the inbound ports a proxy opens for its workload when its
//! traffic is not intercepted (VMs, `captureMode: NONE`), as the `Sidecar` resource declares
//! them. istiod builds a listener per entry that terminates the mesh's mutual TLS and forwards
//! to the application at `defaultEndpoint` (pilot/pkg/networking/core/listener_inbound.go
//! `buildInboundChainConfigs`, cluster.go `buildInboundClustersFromSidecar`).
//!
//! The model carries them for control planes that build a proxy's inbound listeners
//! (`mesh xds serve` for Envoy nodes). A mesh workload serves its own ports in process and has
//! no use for them, as a proxyless gRPC workload under istiod has none.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::cluster::Protocol;

/// One `Sidecar.ingress[]` entry, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IngressListener {
    /// The port the proxy listens on (`port.number`).
    pub port: u16,
    /// The port's protocol (`port.protocol`): an HTTP protocol ([`Protocol::Http`],
    /// [`Protocol::Http2`], [`Protocol::Grpc`]) or [`Protocol::Unspecified`] (served as HTTP).
    pub protocol: Protocol,
    /// The port's name (`port.name`), possibly empty.
    pub name: String,
    /// The address to bind (`bind`); `None`: the proxy's wildcard address.
    pub bind: Option<IpAddr>,
    /// Whether traffic reaches the port by interception or by binding it (`captureMode`).
    pub capture_mode: CaptureMode,
    /// Where requests go (`defaultEndpoint`).
    pub default_endpoint: DefaultEndpoint,
    /// The Sidecar it came from (`namespace/name`).
    pub sidecar: String,
}

/// `captureMode` of an ingress listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The proxy's own mode: bound when the proxy does not intercept (istiod `getBindToPort`).
    #[default]
    Default,
    /// Intercepted by iptables: part of the proxy's virtual inbound listener, never bound.
    Iptables,
    /// Not intercepted: the proxy binds the port.
    None,
}

/// `defaultEndpoint`: the application behind an ingress listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultEndpoint {
    /// `127.0.0.1:<port>` / `[::1]:<port>`: the loopback address.
    Loopback {
        /// `::1` rather than `127.0.0.1`.
        ipv6: bool,
        /// The application's port.
        port: u16,
    },
    /// `0.0.0.0:<port>` / `[::]:<port>`: the workload's own address (istiod's `INSTANCE_IP`).
    InstanceIp {
        /// An IPv6 address is wanted.
        ipv6: bool,
        /// The application's port.
        port: u16,
    },
    /// `unix://<path>`: a Unix domain socket.
    Unix(PathBuf),
}
