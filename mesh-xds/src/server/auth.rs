//! Who is calling: the client certificate of the connection ([`super::tls`]), or else a
//! bootstrap token sent as `authorization: Bearer <token>` metadata (istiod reads a Kubernetes
//! JWT from the same header; here the token file of `mesh xds serve --token-file` binds each
//! token to one identity). And what that caller may have: a node's namespace and service
//! account must be the caller's, as istiod checks in `pilot/pkg/xds/auth.go`
//! (`checkConnectionIdentity`: the node's config namespace must equal the identity's namespace,
//! and its `SERVICE_ACCOUNT` metadata, when set, the identity's service account; otherwise
//! `PERMISSION_DENIED`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Value, value::Kind};
use mesh_core::MeshSettings;
use mesh_core::identity::SpiffeId;

use super::security::SecurityError;
use super::tls::PeerInfo;
use crate::node;

/// Shortest token accepted from the file: a guessable token is no authentication.
pub const MIN_TOKEN_LEN: usize = 16;

/// Bootstrap tokens, each bound to one identity.
///
/// File format: one `<namespace>/<service-account> <token>` per line; blank lines and lines
/// starting with `#` are skipped. A token is at least [`MIN_TOKEN_LEN`] characters.
///
/// Clones share one set: tokens [`load`](Self::load)ed from a file are read again when the
/// file changes ([`TOKEN_FILE_POLL`], while a secured [`XdsServer`](super::XdsServer) serves),
/// so adding a workload or revoking a token needs no restart; an invalid edit is logged and
/// the last good set stays in force.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Arc<RwLock<Vec<(String, SpiffeId)>>>,
    /// The file and trust domain they were loaded from, to read again.
    source: Option<Arc<(PathBuf, String)>>,
}

/// How often a token file is checked for changes.
pub const TOKEN_FILE_POLL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        f.debug_list()
            .entries(entries.iter().map(|(_, id)| id.as_str()))
            .finish()
    }
}

impl Tokens {
    /// Reads a token file for identities of `trust_domain` (read again when it changes).
    pub fn load(path: impl AsRef<Path>, trust_domain: &str) -> Result<Self, SecurityError> {
        let path = path.as_ref();
        let (_, mut tokens) = Self::read(path, trust_domain)?;
        tokens.source = Some(Arc::new((path.to_owned(), trust_domain.to_owned())));
        Ok(tokens)
    }

    /// The file's text and its tokens.
    fn read(path: &Path, trust_domain: &str) -> Result<(String, Self), SecurityError> {
        let error = |message: String| SecurityError::Tokens {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let tokens = Self::parse(&text, trust_domain).map_err(error)?;
        Ok((text, tokens))
    }

    /// Parses the token file's text; the error names the line.
    pub fn parse(text: &str, trust_domain: &str) -> Result<Self, String> {
        let mut entries: Vec<(String, SpiffeId)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |m: &str| format!("line {}: {m}", i + 1);
            let mut fields = line.split_whitespace();
            let (Some(who), Some(token), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(at("expected `<namespace>/<service-account> <token>`"));
            };
            let (ns, sa) = who
                .split_once('/')
                .ok_or_else(|| at("identity must be `<namespace>/<service-account>`"))?;
            let id = SpiffeId::istio(trust_domain, ns, sa).map_err(|e| at(&e.to_string()))?;
            if token.len() < MIN_TOKEN_LEN {
                return Err(at(&format!(
                    "token shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            if entries.iter().any(|(t, _)| t == token) {
                return Err(at("token used twice"));
            }
            entries.push((token.to_owned(), id));
        }
        Ok(Self {
            entries: Arc::new(RwLock::new(entries)),
            source: None,
        })
    }

    /// How many identities have a token.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The identity `token` is bound to (compared in constant time per entry).
    fn identity_of(&self, token: &str) -> Option<SpiffeId> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut found = None;
        for (t, id) in entries.iter() {
            if constant_time_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(id.clone());
            }
        }
        found
    }

    /// Reads the token file again every [`TOKEN_FILE_POLL`] until `stop` is set, replacing the
    /// set when its text changed and is valid. Returns at once for tokens not from a file.
    pub(super) async fn watch(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(source) = self.source.clone() else {
            return;
        };
        let (path, trust_domain) = (&source.0, source.1.as_str());
        let mut last = std::fs::read_to_string(path).ok();
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(TOKEN_FILE_POLL) => {}
            }
            let text = std::fs::read_to_string(path).ok();
            if text == last {
                continue;
            }
            last = text;
            match Self::read(path, trust_domain) {
                Ok((_, fresh)) => {
                    let entries = std::mem::take(
                        &mut *fresh.entries.write().unwrap_or_else(|p| p.into_inner()),
                    );
                    let count = entries.len();
                    *self.entries.write().unwrap_or_else(|p| p.into_inner()) = entries;
                    tracing::info!(path = %path.display(), identities = count, "token file reloaded");
                }
                Err(error) => {
                    tracing::error!(%error, "token file invalid; the previous tokens stay in force");
                }
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A client certificate issued under the mesh's roots.
    Certificate,
    /// A bootstrap token.
    Token,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Its identity.
    pub id: SpiffeId,
    /// How it was proved.
    pub proof: Proof,
}

/// The caller of a request: its client certificate's identity (which must be of the local trust
/// domain), or else its bearer token's. `UNAUTHENTICATED` when it has neither.
pub(super) fn authenticate(
    tokens: &Tokens,
    trust_domain: &str,
    peer: Option<&PeerInfo>,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<Caller, tonic::Status> {
    if let Some(id) = peer.and_then(|p| p.spiffe_id.as_ref()) {
        if id.trust_domain() != trust_domain {
            return Err(tonic::Status::unauthenticated(format!(
                "client certificate identity {id} is not of trust domain {trust_domain}"
            )));
        }
        return Ok(Caller {
            id: id.clone(),
            proof: Proof::Certificate,
        });
    }
    let bearer = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer.and_then(|t| tokens.identity_of(t.trim())) {
        Some(id) => Ok(Caller {
            id,
            proof: Proof::Token,
        }),
        None if bearer.is_some() => Err(tonic::Status::unauthenticated(
            "bearer token not recognised",
        )),
        None => Err(tonic::Status::unauthenticated(
            "no client certificate and no `authorization: Bearer` token",
        )),
    }
}

/// `node` as the caller may have it: its namespace must be the caller's and its
/// `SERVICE_ACCOUNT` metadata, when set, the caller's service account (istiod's
/// `checkConnectionIdentity`). A node that names no service account gets the caller's, so its
/// config is built for who it proved to be. `PERMISSION_DENIED` otherwise.
pub(super) fn authorize_node(
    caller: &Caller,
    node: &Node,
    settings: &MeshSettings,
) -> Result<Node, tonic::Status> {
    let (Some(ns), Some(sa)) = (caller.id.namespace(), caller.id.service_account()) else {
        return Err(tonic::Status::permission_denied(format!(
            "identity {} is not a workload identity (spiffe://<td>/ns/<ns>/sa/<sa>)",
            caller.id
        )));
    };
    let claimed_sa = node
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get("SERVICE_ACCOUNT"))
        .and_then(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        });
    let ctx = node::build_context(node, settings);
    if ctx.workload.namespace != ns || claimed_sa.as_deref().is_some_and(|c| c != sa) {
        return Err(tonic::Status::permission_denied(format!(
            "node {} claims {}/{} but authenticated as {}",
            node.id,
            ctx.workload.namespace,
            claimed_sa.as_deref().unwrap_or("-"),
            caller.id
        )));
    }
    let mut node = node.clone();
    if claimed_sa.is_none() {
        let meta = node.metadata.get_or_insert_with(Default::default);
        meta.fields.insert(
            "SERVICE_ACCOUNT".to_owned(),
            Value {
                kind: Some(Kind::StringValue(sa.to_owned())),
            },
        );
    }
    Ok(node)
}
