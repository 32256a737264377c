//! Istio's CA API, `istio.v1.auth.IstioCertificateService` (istio/api
//! `security/v1alpha1/ca.proto`, the same messages as istio's `security/proto/istioca.proto`):
//! the two messages and the method path, written by hand rather than generated (it is one
//! unary call). Shared by the CA in `mesh xds serve` and the workload's certificate provider.
//!
//! The request's `metadata` (field 4, a `google.protobuf.Struct`) is not declared: istiod reads
//! it only for `ImpersonatedIdentity`, which it honours for trusted gateway callers alone; mesh
//! never lets a caller impersonate, so the field is skipped when decoding (protobuf ignores
//! unknown fields) and the certificate is always for the caller's own identity.

/// The gRPC service name.
pub const SERVICE: &str = "istio.v1.auth.IstioCertificateService";
/// The method path of `CreateCertificate`.
pub const CREATE_CERTIFICATE: &str = "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// `IstioCertificateRequest`: a PEM CSR and the lifetime asked for.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded certificate request (PKCS#10).
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested lifetime in seconds; `0` or less means the CA's default.
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
}

/// `IstioCertificateResponse`: the leaf first, then intermediates, the root last.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct IstioCertificateResponse {
    /// PEM certificates, each element one certificate.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}
