//! The CA of `mesh xds serve`: `istio.v1.auth.IstioCertificateService/CreateCertificate`, on the
//! control-plane port, signing as istiod does (`security/pkg/server/ca/server.go`,
//! `CreateCertificate`): the caller is authenticated first ([`super::auth`]); the certificate is
//! for the caller's identity, never for what the CSR asks; a request with no lifetime gets the
//! default, one longer than the maximum is refused with `INVALID_ARGUMENT` (istiod's
//! `signWithCertChain` in `security/pkg/pki/ca/ca.go` returns a `TTLError`, which the server
//! maps to `InvalidArgument`); the response is the leaf, each intermediate, then the root.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mesh_core::identity::CertificateAuthority;
use tonic::server::NamedService;

use super::auth::{Tokens, authenticate};
use super::security::ControlPlaneSecurity;
use super::tls::PeerInfo;
use crate::ca_proto::{
    CREATE_CERTIFICATE, IstioCertificateRequest, IstioCertificateResponse, SERVICE,
};

/// The largest request accepted: a CSR is well under 4 KiB.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The certificate service, to add to a tonic router. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CaService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ca: Arc<CertificateAuthority>,
    tokens: Tokens,
    default_ttl: Duration,
    max_ttl: Duration,
}

impl CaService {
    /// Signs with `security`'s CA, for callers its tokens or the mesh's certificates prove.
    pub fn new(security: &ControlPlaneSecurity) -> Self {
        Self {
            inner: Arc::new(Inner {
                ca: security.ca.clone(),
                tokens: security.tokens.clone(),
                default_ttl: security.default_ttl,
                max_ttl: security.max_ttl,
            }),
        }
    }

    /// Answers one `CreateCertificate`.
    pub async fn create_certificate(
        &self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> Result<tonic::Response<IstioCertificateResponse>, tonic::Status> {
        let inner = &self.inner;
        let caller = authenticate(
            &inner.tokens,
            inner.ca.trust_domain(),
            request.extensions().get::<PeerInfo>(),
            request.metadata(),
        )
        .inspect_err(|status| {
            tracing::warn!(%status, "certificate request refused");
            count("unauthenticated");
        })?;
        let request = request.into_inner();
        let ttl = match u64::try_from(request.validity_duration) {
            Ok(0) | Err(_) => inner.default_ttl,
            Ok(secs) => Duration::from_secs(secs),
        };
        if ttl > inner.max_ttl {
            count("invalid");
            return Err(tonic::Status::invalid_argument(format!(
                "requested TTL {}s is greater than the max allowed TTL {}s",
                ttl.as_secs(),
                inner.max_ttl.as_secs()
            )));
        }
        let (ca, id) = (inner.ca.clone(), caller.id.clone());
        let signed = tokio::task::spawn_blocking(move || ca.sign_csr(&request.csr, &id, ttl)).await;
        let leaf = match signed {
            Ok(Ok(leaf)) => leaf,
            Ok(Err(error)) => {
                count("invalid");
                tracing::warn!(caller = %caller.id, %error, "certificate request refused");
                return Err(tonic::Status::invalid_argument(format!(
                    "cannot sign the CSR: {error}"
                )));
            }
            Err(error) => {
                count("error");
                return Err(tonic::Status::internal(format!("signing failed: {error}")));
            }
        };
        tracing::info!(caller = %caller.id, proof = ?caller.proof, ttl_secs = ttl.as_secs(), "certificate issued");
        count("issued");
        // One certificate per element, the root bundle last and whole (istiod's server.go
        // expands concatenated PEMs so the client can tell the root apart).
        let mut cert_chain = split_pem(&leaf);
        cert_chain.extend(split_pem(inner.ca.chain_pem()));
        cert_chain.push(inner.ca.roots_pem().to_owned());
        Ok(tonic::Response::new(IstioCertificateResponse {
            cert_chain,
        }))
    }
}

/// The PEM blocks of `pem`, one per element, each ending in a newline.
fn split_pem(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .map(str::trim)
        .filter(|b| b.ends_with(END))
        .map(|b| format!("{b}\n"))
        .collect()
}

fn count(result: &'static str) {
    metrics::counter!("mesh_xds_ca_requests_total", "result" => result).increment(1);
}

impl NamedService for CaService {
    const NAME: &'static str = SERVICE;
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'static>>;

struct CreateCertificate(CaService);

impl tonic::server::UnaryService<IstioCertificateRequest> for CreateCertificate {
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<Result<tonic::Response<IstioCertificateResponse>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<IstioCertificateRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.create_certificate(request).await })
    }
}

impl<B> tower::Service<http::Request<B>> for CaService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CREATE_CERTIFICATE {
            return Box::pin(async move {
                Ok(tonic::Status::unimplemented("no such method").into_http())
            });
        }
        let service = self.clone();
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(MAX_REQUEST_BYTES), None);
            Ok(grpc.unary(CreateCertificate(service), request).await)
        })
    }
}
