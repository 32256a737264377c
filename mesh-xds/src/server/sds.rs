//! SDS on the control-plane port, as istio-agent serves it to its Envoy on `sds-grpc`: the
//! secret `default` (the workload certificate and key) and `ROOTCA` (the mesh roots), both
//! `envoy.extensions.transport_sockets.tls.v3.Secret`, over the standalone
//! `SecretDiscoveryService` (state of the world `StreamSecrets`, incremental `DeltaSecrets`,
//! and `FetchSecrets`). Istio's resource names are istio-agent's (`security/pkg/nodeagent/sds`,
//! `sdsservice.go`: `WorkloadKeyCertResourceName` = `default`, `RootCertReqResourceName` =
//! `ROOTCA`); other names (gateway `credentialName`s, `file-cert:` paths) are not served and
//! logged.
//!
//! The caller must be authenticated, and its node's namespace and service account agree with
//! that identity ([`super::auth`]); the certificate is minted for that identity (the key is
//! made here, as istio-agent makes it beside its Envoy), lives the control plane's default
//! certificate TTL, and is minted again and pushed once half of it is gone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{DataSource, Node, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::MeshSettings;
use mesh_core::identity::IssueOptions;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::auth::{Caller, authenticate, authorize_node};
use super::security::ControlPlaneSecurity;
use super::tls::PeerInfo;
use super::{Outgoing, limits};
use crate::stream::ReceiverStream;
use crate::translate::{CERT_DEFAULT, CERT_ROOTCA};

/// The type URL of a secret.
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The SDS service of a secured control plane. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SdsService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    security: ControlPlaneSecurity,
    settings: MeshSettings,
    stop: watch::Receiver<bool>,
}

impl SdsService {
    pub(super) fn new(
        security: ControlPlaneSecurity,
        settings: MeshSettings,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                security,
                settings,
                stop,
            }),
        }
    }

    /// The tonic service, to add to a router.
    pub fn service(&self) -> SecretDiscoveryServiceServer<Self> {
        SecretDiscoveryServiceServer::new(self.clone())
            .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
    }

    fn caller<T>(&self, request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
        authenticate(
            &self.inner.security.tokens,
            self.inner.security.ca.trust_domain(),
            request.extensions().get::<PeerInfo>(),
            request.metadata(),
        )
        .inspect_err(|status| tracing::warn!(%status, "SDS request refused"))
    }
}

/// The secrets of one identity, minted when first asked for (an ECDSA P-256 key and a
/// signature: about a millisecond, done inline).
pub(super) struct Secrets {
    caller: Caller,
    security: ControlPlaneSecurity,
    /// `default`'s secret, its version and when to mint it again.
    current: Option<(Any, String, Instant)>,
    generation: u64,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Secrets")
            .field("identity", &self.caller.id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    pub(super) fn new(caller: Caller, security: ControlPlaneSecurity) -> Self {
        Self {
            caller,
            security,
            current: None,
            generation: 0,
        }
    }

    /// When the workload certificate is due again, if one was minted.
    pub(super) fn renew_at(&self) -> Option<Instant> {
        self.current.as_ref().map(|c| c.2)
    }

    /// Mints the workload certificate again (the next push sends it).
    pub(super) fn expire(&mut self) {
        self.current = None;
    }

    /// The secret `name` and its version; `None` for a name mesh does not serve.
    pub(super) fn get(&mut self, name: &str) -> Result<Option<(Any, String)>, tonic::Status> {
        match name {
            CERT_ROOTCA => {
                let roots = self.security.ca.roots_pem().as_bytes().to_vec();
                let version = format!("{:016x}", fnv(&roots));
                let secret = Secret {
                    name: CERT_ROOTCA.to_owned(),
                    r#type: Some(secret::Type::ValidationContext(
                        CertificateValidationContext {
                            trusted_ca: Some(inline(roots)),
                            ..Default::default()
                        },
                    )),
                };
                Ok(Some((any(&secret), version)))
            }
            CERT_DEFAULT => {
                if self.current.is_none() {
                    self.current = Some(self.mint()?);
                }
                Ok(self.current.as_ref().map(|c| (c.0.clone(), c.1.clone())))
            }
            _ => Ok(None),
        }
    }

    fn mint(&mut self) -> Result<(Any, String, Instant), tonic::Status> {
        let ttl = self.security.default_ttl;
        let issued = self
            .security
            .ca
            .issue_with(&IssueOptions::new(self.caller.id.clone(), ttl))
            .map_err(|e| tonic::Status::internal(format!("minting the certificate: {e}")))?;
        self.generation += 1;
        let chain_hash = issued.cert_chain_pem.clone();
        tracing::info!(identity = %self.caller.id, ttl_secs = ttl.as_secs(), "SDS certificate minted");
        let secret = Secret {
            name: CERT_DEFAULT.to_owned(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline(issued.cert_chain_pem.into_bytes())),
                private_key: Some(inline(issued.key_pem.into_bytes())),
                ..Default::default()
            })),
        };
        let version = format!("{}-{:016x}", self.generation, fnv(chain_hash.as_bytes()));
        Ok((any(&secret), version, Instant::now() + ttl / 2))
    }
}

fn inline(bytes: Vec<u8>) -> DataSource {
    DataSource {
        specifier: Some(Specifier::InlineBytes(bytes)),
        ..Default::default()
    }
}

fn any(secret: &Secret) -> Any {
    Any {
        type_url: SECRET_TYPE.to_owned(),
        value: secret.encode_to_vec(),
    }
}

/// FNV-1a, for versions that are equal for equal content across restarts.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The node of the first request, checked against the caller.
fn check_node(
    caller: &Caller,
    node: Option<&Node>,
    settings: &MeshSettings,
) -> Result<(), tonic::Status> {
    let node = node
        .ok_or_else(|| tonic::Status::invalid_argument("the first request must carry the node"))?;
    authorize_node(caller, node, settings).map(drop)
}

/// Waits for `at`, or forever when there is nothing to renew.
pub(super) async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What wakes a stream.
enum Wake<R> {
    Stop,
    Request(Result<Option<R>, tonic::Status>),
    Renew,
}

#[tonic::async_trait]
impl SecretDiscoveryService for SdsService {
    type StreamSecretsStream = Outgoing<DiscoveryResponse>;
    type DeltaSecretsStream = Outgoing<DeltaDiscoveryResponse>;

    async fn stream_secrets(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamSecretsStream>, tonic::Status> {
        let caller = self.caller(&request)?;
        let (tx, rx) = mpsc::channel(limits::OUTGOING_QUEUE);
        let inner = self.inner.clone();
        tokio::spawn(sotw(inner, caller, tx, request.into_inner()));
        Ok(tonic::Response::new(Box::pin(ReceiverStream(rx))))
    }

    async fn delta_secrets(
        &self,
        request: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaSecretsStream>, tonic::Status> {
        let caller = self.caller(&request)?;
        let (tx, rx) = mpsc::channel(limits::OUTGOING_QUEUE);
        let inner = self.inner.clone();
        tokio::spawn(delta(inner, caller, tx, request.into_inner()));
        Ok(tonic::Response::new(Box::pin(ReceiverStream(rx))))
    }

    async fn fetch_secrets(
        &self,
        request: tonic::Request<DiscoveryRequest>,
    ) -> Result<tonic::Response<DiscoveryResponse>, tonic::Status> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        check_node(&caller, request.node.as_ref(), &self.inner.settings)?;
        let mut secrets = Secrets::new(caller, self.inner.security.clone());
        let mut resources = Vec::new();
        let mut versions = Vec::new();
        for name in &request.resource_names {
            if let Some((any, version)) = secrets.get(name)? {
                resources.push(any);
                versions.push(version);
            }
        }
        Ok(tonic::Response::new(DiscoveryResponse {
            version_info: versions.join(","),
            resources,
            type_url: SECRET_TYPE.to_owned(),
            nonce: "1".into(),
            ..Default::default()
        }))
    }
}

/// A state-of-the-world SDS stream: each response carries every subscribed secret.
async fn sotw(
    inner: Arc<Inner>,
    caller: Caller,
    tx: mpsc::Sender<Result<DiscoveryResponse, tonic::Status>>,
    mut requests: tonic::Streaming<DiscoveryRequest>,
) {
    let mut stop = inner.stop.clone();
    let mut secrets = Secrets::new(caller.clone(), inner.security.clone());
    let mut names: Option<BTreeSet<String>> = None;
    let (mut nonce, mut last_nonce) = (0u64, String::new());
    loop {
        let wake = tokio::select! {
            _ = stop.wait_for(|s| *s) => Wake::Stop,
            r = requests.message() => Wake::Request(r),
            _ = until(secrets.renew_at()) => Wake::Renew,
        };
        match wake {
            Wake::Stop => {
                let _ = tx
                    .send(Err(tonic::Status::unavailable("xDS server stopping")))
                    .await;
                return;
            }
            Wake::Request(Ok(None)) => return,
            Wake::Request(Err(status)) => {
                tracing::debug!(%status, "SDS stream ended");
                return;
            }
            Wake::Renew => secrets.expire(),
            Wake::Request(Ok(Some(r))) => {
                if names.is_none()
                    && let Err(status) = check_node(&caller, r.node.as_ref(), &inner.settings)
                {
                    tracing::warn!(caller = %caller.id, %status, "SDS node refused");
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                if r.resource_names.len() > limits::MAX_RESOURCE_NAMES {
                    let status = limits::too_many_names(SECRET_TYPE, r.resource_names.len());
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                let asked: BTreeSet<String> = r.resource_names.iter().cloned().collect();
                if !r.response_nonce.is_empty() {
                    if r.response_nonce != last_nonce {
                        continue; // an answer to an older response
                    }
                    let error = r.error_detail.as_ref().map(|e| e.message.as_str());
                    super::view::record_answer(
                        caller.id.as_str(),
                        SECRET_TYPE,
                        &r.version_info,
                        error,
                    );
                    if names.as_ref() == Some(&asked) {
                        continue;
                    }
                }
                names = Some(asked);
            }
        }
        let Some(names) = names.as_ref() else {
            continue;
        };
        let mut resources = Vec::new();
        let mut versions = Vec::new();
        for name in names {
            match secrets.get(name) {
                Ok(Some((any, version))) => {
                    resources.push(any);
                    versions.push(version);
                }
                Ok(None) => {
                    tracing::warn!(caller = %caller.id, secret = %name, "SDS secret not served")
                }
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        }
        nonce += 1;
        last_nonce = nonce.to_string();
        let response = DiscoveryResponse {
            version_info: versions.join(","),
            resources,
            type_url: SECRET_TYPE.to_owned(),
            nonce: last_nonce.clone(),
            ..Default::default()
        };
        if tx.send(Ok(response)).await.is_err() {
            return;
        }
    }
}

/// An incremental SDS stream: each response carries the secrets that changed (or were just
/// subscribed to) and names the subscribed ones mesh does not serve as removed.
async fn delta(
    inner: Arc<Inner>,
    caller: Caller,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, tonic::Status>>,
    mut requests: tonic::Streaming<DeltaDiscoveryRequest>,
) {
    let mut stop = inner.stop.clone();
    let mut secrets = Secrets::new(caller.clone(), inner.security.clone());
    // Subscribed names and the version the client holds.
    let mut held: HashMap<String, String> = HashMap::new();
    let (mut first, mut nonce) = (true, 0u64);
    loop {
        let wake = tokio::select! {
            _ = stop.wait_for(|s| *s) => Wake::Stop,
            r = requests.message() => Wake::Request(r),
            _ = until(secrets.renew_at()) => Wake::Renew,
        };
        match wake {
            Wake::Stop => {
                let _ = tx
                    .send(Err(tonic::Status::unavailable("xDS server stopping")))
                    .await;
                return;
            }
            Wake::Request(Ok(None)) => return,
            Wake::Request(Err(status)) => {
                tracing::debug!(%status, "SDS stream ended");
                return;
            }
            Wake::Renew => secrets.expire(),
            Wake::Request(Ok(Some(r))) => {
                if first {
                    if let Err(status) = check_node(&caller, r.node.as_ref(), &inner.settings) {
                        tracing::warn!(caller = %caller.id, %status, "SDS node refused");
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                    first = false;
                    for (name, version) in &r.initial_resource_versions {
                        held.insert(name.clone(), version.clone());
                    }
                }
                if held.len() + r.resource_names_subscribe.len() > limits::MAX_RESOURCE_NAMES {
                    let status = limits::too_many_names(SECRET_TYPE, held.len());
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                if !r.response_nonce.is_empty() {
                    let error = r.error_detail.as_ref().map(|e| e.message.as_str());
                    super::view::record_answer(caller.id.as_str(), SECRET_TYPE, "", error);
                }
                for name in &r.resource_names_unsubscribe {
                    held.remove(name);
                }
                for name in &r.resource_names_subscribe {
                    held.entry(name.clone()).or_default();
                }
            }
        }
        let mut resources = Vec::new();
        let mut removed = Vec::new();
        let mut names: Vec<String> = held.keys().cloned().collect();
        names.sort();
        for name in names {
            match secrets.get(&name) {
                Ok(Some((any, version))) => {
                    if held.get(&name) != Some(&version) {
                        held.insert(name.clone(), version.clone());
                        resources.push(Resource {
                            name,
                            version,
                            resource: Some(any),
                            ..Default::default()
                        });
                    }
                }
                Ok(None) => {
                    if held.get(&name).is_some_and(|v| !v.is_empty()) {
                        held.insert(name.clone(), String::new());
                        removed.push(name);
                    }
                }
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        }
        if resources.is_empty() && removed.is_empty() {
            continue;
        }
        nonce += 1;
        let response = DeltaDiscoveryResponse {
            system_version_info: nonce.to_string(),
            resources,
            removed_resources: removed,
            type_url: SECRET_TYPE.to_owned(),
            nonce: nonce.to_string(),
            ..Default::default()
        };
        if tx.send(Ok(response)).await.is_err() {
            return;
        }
    }
}
