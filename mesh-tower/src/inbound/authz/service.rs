use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, Uri};
use mesh_core::Mesh;
use mesh_core::authz::{AuthzRequest, HeaderLookup, evaluate, normalize_path};
use tower_service::Service;

use super::body::AuthzBody;
use super::future::ResponseFuture;
use super::reject::{Refusal, respond};
use crate::inbound::{LocalAddr, PeerInfo, RemoteAddr};
use crate::reply::is_grpc;

/// Normalises the request path and enforces the workload's AuthorizationPolicies before calling
/// the inner service; see the [module docs](super).
pub struct Authz<S, P> {
    inner: S,
    mesh: Mesh,
    _peer: PhantomData<fn() -> P>,
}

/// Request extension: the AUDIT policies (`namespace/name`) that matched this request. Present
/// only when one did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit(pub Vec<String>);

impl<S, P> Authz<S, P> {
    /// Wraps `inner`, reading policies from `mesh`'s current snapshot on every request.
    pub fn new(inner: S, mesh: Mesh) -> Self {
        Self {
            inner,
            mesh,
            _peer: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P> Clone for Authz<S, P> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.mesh.clone())
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Authz<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authz")
            .field("inner", &self.inner)
            .field("snapshot_version", &self.mesh.snapshot().version)
            .finish()
    }
}

impl<S, P, ReqB, ResB> Service<Request<ReqB>> for Authz<S, P>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    P: PeerInfo,
{
    type Response = Response<AuthzBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        match self.authorize(&mut req) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(refusal) => ResponseFuture::refused(respond(refusal, is_grpc(req.headers()))),
        }
    }
}

impl<S, P: PeerInfo> Authz<S, P> {
    /// Normalises and rewrites the path, then evaluates the policies.
    fn authorize<B>(&self, req: &mut Request<B>) -> Result<(), Refusal> {
        let raw = req.uri().path_and_query().map_or("", PathAndQuery::as_str);
        let rewrite = match normalize_path(raw) {
            Ok(n) => n.is_changed().then(|| n.into_path_and_query().into_owned()),
            Err(error) => {
                tracing::debug!(target: "mesh::authz", %error, path = raw, "refusing request path");
                return Err(Refusal::BadPath);
            }
        };
        if let Some(normalized) = rewrite {
            rewrite_path(req.uri_mut(), normalized).ok_or(Refusal::BadPath)?;
        }
        // From here on the URI holds the normalised path: the policy judges what the
        // application will route on.
        let path = req.uri().path();

        let peer = req.extensions().get::<P>();
        let principal = peer.and_then(P::principal);
        let remote = req.extensions().get::<RemoteAddr>().map(|a| a.0);
        let local = req.extensions().get::<LocalAddr>().map(|a| a.0);
        let headers = Headers(req.headers());
        let request = AuthzRequest {
            source_principal: principal,
            source_namespace: peer.and_then(P::namespace),
            source_ip: remote.map(|a| a.ip()),
            destination_ip: local.map(|a| a.ip()),
            destination_port: local.map(|a| a.port()),
            authority: authority(req.uri(), req.headers()),
            method: req.method().as_str(),
            path,
            sni: peer.and_then(P::sni),
            headers: &headers,
        };

        let snapshot = self.mesh.snapshot();
        let decision = evaluate(
            snapshot.inbound.authorization_for(request.destination_port),
            &request,
        );
        let peer_name = principal.unwrap_or("-");
        if decision.should_audit() {
            tracing::info!(
                target: "mesh::authz::audit",
                peer = peer_name,
                source = ?remote,
                method = request.method,
                path = request.path,
                allowed = decision.is_allowed(),
                policies = ?decision.audit,
                "audit"
            );
        }
        let rule = decision.rule;
        if decision.is_allowed() {
            tracing::trace!(
                target: "mesh::authz",
                peer = peer_name,
                reason = %decision.reason,
                policy = rule.map(|r| r.policy),
                rule = rule.map(|r| r.rule),
                "allowed"
            );
            let audit = decision
                .should_audit()
                .then(|| Audit(decision.audit.iter().map(|p| (*p).to_owned()).collect()));
            drop(snapshot);
            if let Some(audit) = audit {
                req.extensions_mut().insert(audit);
            }
            Ok(())
        } else {
            tracing::info!(
                target: "mesh::authz",
                peer = peer_name,
                source = ?remote,
                method = request.method,
                path = request.path,
                reason = %decision.reason,
                policy = rule.map(|r| r.policy),
                rule = rule.map(|r| r.rule),
                "request denied"
            );
            Err(Refusal::Denied)
        }
    }
}

/// Replaces the path and query of `uri`, keeping scheme and authority.
fn rewrite_path(uri: &mut Uri, path_and_query: String) -> Option<()> {
    let mut parts = std::mem::take(uri).into_parts();
    let bytes = Bytes::from(path_and_query);
    parts.path_and_query = Some(PathAndQuery::from_maybe_shared(bytes).ok()?);
    *uri = Uri::from_parts(parts).ok()?;
    Some(())
}

/// `:authority` (HTTP/2, absolute-form) or else `Host`; empty when neither is there.
fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(http::header::HOST)?.to_str().ok())
        .unwrap_or("")
}

/// Request headers as policies read them: every value of a repeated header, compared as text
/// (bytes that are not UTF-8 are replaced, never skipped, so a DENY cannot be dodged with them).
struct Headers<'a>(&'a HeaderMap);

impl HeaderLookup for Headers<'_> {
    fn any_value(&self, name: &str, pred: &mut dyn FnMut(&str) -> bool) -> bool {
        self.0
            .get_all(name)
            .iter()
            .any(|v| pred(&String::from_utf8_lossy(v.as_bytes()) as &str))
    }
}
