//! The gRPC xDS bootstrap file (<https://github.com/grpc/proposal/blob/master/A27-xds-global-load-balancing.md>,
//! A29 for `certificate_providers`), as Istio's `grpc-agent` writes it:
//!
//! ```json
//! {
//!   "xds_servers": [{"server_uri": "unix:///etc/istio/proxy/XDS",
//!                    "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
//!   "node": {"id": "sidecar~10.0.0.7~shop-5d4f.shop~shop.svc.cluster.local",
//!            "metadata": {"GENERATOR": "grpc", "NAMESPACE": "shop", "LABELS": {"app": "shop"}}},
//!   "certificate_providers": {"default": {"plugin_name": "file_watcher", "config": {
//!       "certificate_file": "/var/lib/istio/data/cert-chain.pem",
//!       "private_key_file": "/var/lib/istio/data/key.pem",
//!       "ca_certificate_file": "/var/lib/istio/data/root-cert.pem", "refresh_interval": "900s"}}},
//!   "server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s"
//! }
//! ```
//!
//! mesh reads every server, the first as the primary and the rest as fallbacks in order (gRFC
//! A71; targets `unix:`, `dns:` and plain `host:port`), each server's `channel_creds` (the
//! first type mesh supports is used, as gRPC does: `insecure`, or `tls` (gRFC A65) with its
//! `config` `ca_certificate_file`, `certificate_file`, `private_key_file`, the files the
//! `default` certificate provider names filling in what it leaves out; `google_default` and
//! other types are skipped, and a list holding none mesh supports is an error), the node (its
//! Istio id gives the workload namespace), the `file_watcher` provider instances (mapped to
//! mesh identity files: Istio names the workload certificate `default` and the roots `ROOTCA`,
//! both in the `default` instance), and the server listener name template. Unknown fields are
//! errors only where gRPC makes them so; other top-level keys are reported as ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use mesh_core::Workload;
use mesh_core::identity::IdentityFiles;
use serde::Deserialize;

use super::node::{IstioNodeId, json_to_struct};

/// The environment variable naming the bootstrap file.
pub const BOOTSTRAP_ENV: &str = "GRPC_XDS_BOOTSTRAP";

/// A bootstrap file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `GRPC_XDS_BOOTSTRAP` is not set.
    #[error("{BOOTSTRAP_ENV} is not set")]
    NotSet,
    /// The file cannot be read.
    #[error("cannot read bootstrap {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The JSON is malformed or a field has the wrong type.
    #[error("bootstrap {path}: {message}")]
    Invalid {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// Field path and reason.
        message: String,
    },
}

/// Where the control plane is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XdsTarget {
    /// `host:port` over TCP (`dns:///host:port`, `dns:host:port` or plain `host:port`).
    Tcp(String),
    /// A Unix domain socket (`unix:///path` or `unix:path`).
    Unix(PathBuf),
}

impl XdsTarget {
    /// Parses a gRPC target URI.
    pub fn parse(uri: &str) -> Result<Self, String> {
        if let Some(path) = uri
            .strip_prefix("unix://")
            .or_else(|| uri.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(format!("{uri:?}: empty socket path"));
            }
            return Ok(XdsTarget::Unix(PathBuf::from(path)));
        }
        let rest = uri
            .strip_prefix("dns:///")
            .or_else(|| uri.strip_prefix("dns:"))
            .or_else(|| uri.strip_prefix("passthrough:///"))
            .unwrap_or(uri);
        // dns://authority/host:port names a DNS server; the host is after the last slash.
        let host_port = rest.rsplit('/').next().unwrap_or(rest);
        match host_port.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(XdsTarget::Tcp(host_port.to_owned()))
            }
            _ => Err(format!(
                "{uri:?}: expected unix:PATH, dns:///HOST:PORT or HOST:PORT"
            )),
        }
    }
}

impl std::fmt::Display for XdsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XdsTarget::Tcp(host_port) => f.write_str(host_port),
            XdsTarget::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// One `xds_servers` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsServerConfig {
    /// Where it is (`server_uri`).
    pub target: XdsTarget,
    /// TLS towards it (`channel_creds` `tls`); `None`: plaintext (`insecure`).
    #[cfg(feature = "client")]
    pub tls: Option<crate::client::XdsTls>,
    /// Its `server_features` (e.g. `xds_v3`, `ignore_resource_deletion`).
    pub server_features: Vec<String>,
}

/// A certificate provider instance of plugin `file_watcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileWatcherProvider {
    /// Certificate chain (`certificate_file`).
    pub certificate_file: Option<PathBuf>,
    /// Private key (`private_key_file`).
    pub private_key_file: Option<PathBuf>,
    /// Root bundle (`ca_certificate_file`).
    pub ca_certificate_file: Option<PathBuf>,
    /// How often the files are re-read (`refresh_interval`, default 10 min).
    pub refresh_interval: Duration,
}

/// A parsed bootstrap.
#[derive(Clone, Debug, PartialEq)]
pub struct Bootstrap {
    /// Every `xds_servers` entry in order: the primary first, then the fallbacks (gRFC A71).
    /// Never empty when parsed.
    pub servers: Vec<XdsServerConfig>,
    /// The node this client announces.
    pub node: Node,
    /// `file_watcher` provider instances by name.
    pub certificate_providers: BTreeMap<String, FileWatcherProvider>,
    /// `server_listener_resource_name_template`, for inbound listeners (`%s` is `ip:port`).
    pub server_listener_resource_name_template: Option<String>,
    /// Keys present but not used by mesh (reported once when loaded).
    pub ignored: Vec<String>,
}

#[derive(Deserialize)]
struct RawBootstrap {
    #[serde(default)]
    xds_servers: Vec<RawServer>,
    #[serde(default)]
    node: Option<RawNode>,
    #[serde(default)]
    certificate_providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    server_listener_resource_name_template: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct RawServer {
    server_uri: String,
    #[serde(default)]
    channel_creds: Vec<RawCreds>,
    #[serde(default)]
    server_features: Vec<String>,
}

#[derive(Deserialize)]
#[cfg_attr(not(feature = "client"), allow(dead_code))]
struct RawCreds {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct RawNode {
    #[serde(default)]
    id: String,
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    locality: Option<RawLocality>,
}

#[derive(Deserialize)]
struct RawLocality {
    #[serde(default)]
    region: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    sub_zone: String,
}

#[derive(Deserialize)]
struct RawProvider {
    plugin_name: String,
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
}

impl Bootstrap {
    /// Reads the file `GRPC_XDS_BOOTSTRAP` names.
    pub fn from_env() -> Result<Self, BootstrapError> {
        let path = std::env::var_os(BOOTSTRAP_ENV).ok_or(BootstrapError::NotSet)?;
        Self::load(Path::new(&path))
    }

    /// Reads a bootstrap file.
    pub fn load(path: &Path) -> Result<Self, BootstrapError> {
        let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bootstrap = Self::parse(path, &text)?;
        for key in &bootstrap.ignored {
            tracing::warn!(path = %path.display(), %key, "bootstrap field not used by mesh; ignored");
        }
        Ok(bootstrap)
    }

    /// Parses bootstrap JSON; `path` labels errors.
    pub fn parse(path: &Path, json: &str) -> Result<Self, BootstrapError> {
        let invalid = |message: String| BootstrapError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawBootstrap = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        if raw.xds_servers.is_empty() {
            return Err(invalid(
                "xds_servers: at least one server is required".into(),
            ));
        }
        let mut ignored: Vec<String> = raw.rest.keys().cloned().collect();
        let raw_node = raw.node.unwrap_or(RawNode {
            id: String::new(),
            cluster: String::new(),
            metadata: Default::default(),
            locality: None,
        });
        let node = Node {
            id: raw_node.id,
            cluster: raw_node.cluster,
            metadata: Some(json_to_struct(&raw_node.metadata)),
            locality: raw_node.locality.map(|l| Locality { region: l.region, zone: l.zone, sub_zone: l.sub_zone }),
            user_agent_name: "mesh".into(),
            user_agent_version_type: Some(envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType::UserAgentVersion(env!("CARGO_PKG_VERSION").into())),
            client_features: vec!["envoy.lb.does_not_support_overprovisioning".into()],
            ..Default::default()
        };
        let mut providers = BTreeMap::new();
        for (name, p) in raw.certificate_providers {
            if p.plugin_name != "file_watcher" {
                ignored.push(format!(
                    "certificate_providers.{name} (plugin {:?})",
                    p.plugin_name
                ));
                continue;
            }
            let file = |k: &str| -> Result<Option<PathBuf>, BootstrapError> {
                match p.config.get(k) {
                    None => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(PathBuf::from(s))),
                    Some(_) => Err(invalid(format!(
                        "certificate_providers.{name}.config.{k}: expected a string"
                    ))),
                }
            };
            let refresh_interval = match p.config.get("refresh_interval") {
                None => Duration::from_secs(600),
                Some(serde_json::Value::String(s)) => {
                    mesh_core::model::parse_duration(s).map_err(|e| {
                        invalid(format!(
                            "certificate_providers.{name}.config.refresh_interval: {e}"
                        ))
                    })?
                }
                Some(_) => {
                    return Err(invalid(format!(
                        "certificate_providers.{name}.config.refresh_interval: expected a duration string"
                    )));
                }
            };
            let provider = FileWatcherProvider {
                certificate_file: file("certificate_file")?,
                private_key_file: file("private_key_file")?,
                ca_certificate_file: file("ca_certificate_file")?,
                refresh_interval,
            };
            providers.insert(name, provider);
        }
        let trust_domain = node
            .metadata
            .as_ref()
            .and_then(|m| m.fields.get("TRUST_DOMAIN"))
            .and_then(|v| match &v.kind {
                Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => {
                    Some(s.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| mesh_core::MeshSettings::default().trust_domain);
        let mut servers = Vec::with_capacity(raw.xds_servers.len());
        for (i, server) in raw.xds_servers.into_iter().enumerate() {
            let target = XdsTarget::parse(&server.server_uri)
                .map_err(|e| invalid(format!("xds_servers[{i}].server_uri: {e}")))?;
            #[cfg(feature = "client")]
            let tls = channel_tls(&server.channel_creds, &providers, &trust_domain)
                .map_err(|e| invalid(format!("xds_servers[{i}].channel_creds: {e}")))?;
            #[cfg(not(feature = "client"))]
            let _ = (
                &trust_domain,
                chosen_creds(&server.channel_creds)
                    .map_err(|e| invalid(format!("xds_servers[{i}].channel_creds: {e}")))?,
            );
            servers.push(XdsServerConfig {
                target,
                #[cfg(feature = "client")]
                tls,
                server_features: server.server_features,
            });
        }
        Ok(Self {
            servers,
            node,
            certificate_providers: providers,
            server_listener_resource_name_template: raw.server_listener_resource_name_template,
            ignored,
        })
    }

    /// The primary server's target (the first `xds_servers` entry).
    pub fn primary(&self) -> Option<&XdsTarget> {
        self.servers.first().map(|s| &s.target)
    }

    /// The Istio node id, when the node id has Istio's form.
    pub fn istio_node_id(&self) -> Option<IstioNodeId> {
        IstioNodeId::parse(&self.node.id)
    }

    /// The workload this node is: namespace from the Istio node id (or `NAMESPACE` metadata),
    /// service account, name and labels from the metadata, locality from the node.
    pub fn workload(&self) -> Workload {
        super::node::build_context(&self.node, &mesh_core::MeshSettings::default()).workload
    }

    /// The identity files of the `default` provider instance, which serves both Istio
    /// certificate names (`default`: chain and key; `ROOTCA`: roots). `None` unless all three
    /// files are named.
    pub fn identity_files(&self) -> Option<IdentityFiles> {
        let p = self
            .certificate_providers
            .get(super::translate::CERT_INSTANCE)?;
        Some(IdentityFiles {
            cert_chain: p.certificate_file.clone()?,
            key: p.private_key_file.clone()?,
            roots: p.ca_certificate_file.clone()?,
        })
    }

    /// A mesh builder for the workload this bootstrap describes: its [`workload`](Self::workload)
    /// and, when the `default` certificate provider names its files, that identity (watched, so
    /// the agent's rotations apply). Start an [`XdsClient`](super::client::XdsClient) on the built mesh
    /// with [`XdsClientConfig::from_bootstrap`](super::client::XdsClientConfig::from_bootstrap): a
    /// workload configured by Istio's `grpc-agent` runs from its bootstrap file unchanged.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use mesh_xds::bootstrap::Bootstrap;
    /// use mesh_xds::client::{XdsClient, XdsClientConfig};
    /// let bootstrap = Bootstrap::from_env()?; // GRPC_XDS_BOOTSTRAP
    /// let mesh = bootstrap.mesh_builder().build().await?;
    /// let xds = XdsClient::start(mesh.clone(), XdsClientConfig::from_bootstrap(&bootstrap));
    /// xds.ready().await;
    /// # Ok(()) }
    /// ```
    pub fn mesh_builder(&self) -> mesh_core::MeshBuilder {
        let builder = mesh_core::Mesh::builder().workload(self.workload());
        match self.identity_files() {
            Some(files) => builder.identity_paths(files),
            None => builder,
        }
    }

    /// The inbound listener name for a server on `addr`, from the template.
    pub fn server_listener_name(&self, addr: std::net::SocketAddr) -> Option<String> {
        let t = self.server_listener_resource_name_template.as_ref()?;
        Some(listener_name(t, addr))
    }
}

/// The first `channel_creds` entry of a type mesh supports (`insecure`, `tls`), as gRPC picks
/// it (gRFC A27); `None` for an empty list (plaintext); an error when none is supported.
fn chosen_creds(creds: &[RawCreds]) -> Result<Option<&RawCreds>, String> {
    if creds.is_empty() {
        return Ok(None);
    }
    match creds
        .iter()
        .find(|c| matches!(c.kind.as_str(), "insecure" | "tls"))
    {
        Some(c) => Ok(Some(c)),
        None => {
            let kinds: Vec<&str> = creds.iter().map(|c| c.kind.as_str()).collect();
            Err(format!(
                "none of {kinds:?} is supported (mesh supports \"insecure\" and \"tls\")"
            ))
        }
    }
}

/// TLS towards a server from its `channel_creds`: the first type mesh supports, as gRPC picks
/// (gRFC A27); `tls` takes its files from its `config` (gRFC A65), and what that leaves out
/// from the `default` certificate provider instance.
#[cfg(feature = "client")]
fn channel_tls(
    creds: &[RawCreds],
    providers: &BTreeMap<String, FileWatcherProvider>,
    trust_domain: &str,
) -> Result<Option<crate::client::XdsTls>, String> {
    let Some(chosen) = chosen_creds(creds)?.filter(|c| c.kind == "tls") else {
        return Ok(None);
    };
    let provider = providers.get(super::translate::CERT_INSTANCE);
    let file = |key: &str, fallback: Option<&PathBuf>| -> Result<Option<PathBuf>, String> {
        match chosen.config.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(PathBuf::from(s))),
            Some(serde_json::Value::String(_)) | None => Ok(fallback.cloned()),
            Some(_) => Err(format!("tls config.{key}: expected a string")),
        }
    };
    let roots = file(
        "ca_certificate_file",
        provider.and_then(|p| p.ca_certificate_file.as_ref()),
    )?
    .ok_or("tls needs config.ca_certificate_file (or a `default` certificate provider naming one): mesh trusts no system roots for a control plane")?;
    let cert = file(
        "certificate_file",
        provider.and_then(|p| p.certificate_file.as_ref()),
    )?;
    let key = file(
        "private_key_file",
        provider.and_then(|p| p.private_key_file.as_ref()),
    )?;
    let tls = crate::client::XdsTls::new(roots, trust_domain);
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(tls.identity(cert, key))),
        (None, None) => Ok(Some(tls)),
        _ => Err("tls: certificate_file and private_key_file go together".into()),
    }
}

/// A server listener name: `template` with `%s` replaced by `addr` (`ip:port`, `[ip6]:port`).
pub(crate) fn listener_name(template: &str, addr: std::net::SocketAddr) -> String {
    template.replace("%s", &addr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            XdsTarget::parse("unix:///etc/istio/proxy/XDS"),
            Ok(XdsTarget::Unix("/etc/istio/proxy/XDS".into()))
        );
        assert_eq!(
            XdsTarget::parse("unix:rel/sock"),
            Ok(XdsTarget::Unix("rel/sock".into()))
        );
        assert_eq!(
            XdsTarget::parse("dns:///istiod.istio-system.svc:15010"),
            Ok(XdsTarget::Tcp("istiod.istio-system.svc:15010".into()))
        );
        assert_eq!(
            XdsTarget::parse("dns:istiod:15010"),
            Ok(XdsTarget::Tcp("istiod:15010".into()))
        );
        assert_eq!(
            XdsTarget::parse("127.0.0.1:15010"),
            Ok(XdsTarget::Tcp("127.0.0.1:15010".into()))
        );
        assert!(XdsTarget::parse("istiod").is_err());
    }
}
