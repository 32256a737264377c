//! Workload identity: SPIFFE IDs, X.509-SVID credentials, mutual-TLS configs, rotation.
//!
//! A mesh workload proves who it is with an [X.509-SVID]: a certificate whose one URI SAN is its
//! [SPIFFE ID] (`spiffe://cluster.local/ns/<namespace>/sa/<service account>` in Istio). This module
//! turns the three PEM files Istio mounts ([`IdentityFiles`]) into checked [`Credentials`], derives
//! rustls configs that require and verify SVIDs on both sides ([`TlsIdentity`]), and keeps them
//! fresh as the files rotate ([`IdentityWatcher`]). The peer's proven identity is a
//! [`PeerIdentity`], which authorization and telemetry read.
//!
//! With feature `certs`, [`CertificateAuthority`] mints roots and leaves for tests and demos.
//!
//! [X.509-SVID]: https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md
//! [SPIFFE ID]: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md

#[cfg(feature = "certs")]
mod ca;
mod cert_policy;
mod credentials;
mod expected;
mod external;
mod files;
mod metrics;
mod peer;
mod peer_error;
mod source;
mod spiffe;
mod svid;
mod time;
mod tls;
mod verify;
mod watcher;

#[cfg(feature = "certs")]
pub use ca::{CaError, CertificateAuthority, IssueOptions, IssuedIdentity};
pub use cert_policy::MIN_RSA_BITS;
pub use credentials::{Credentials, CredentialsError, RootInfo, provider};
pub use expected::ExpectedIdentities;
pub use external::{ExternalTlsError, external_client_config};
pub use files::IdentityFiles;
pub use metrics::{CERTIFICATE_EXPIRY, ROTATION_ERRORS, ROTATIONS, record_expiry};
pub use peer::PeerIdentity;
pub use peer_error::PeerCertError;
pub use source::IdentitySource;
pub use spiffe::{MAX_SPIFFE_ID_LEN, SpiffeId, SpiffeIdError};
pub use svid::{SvidError, spiffe_id_of};
pub use time::Timestamp;
pub use tls::{
    ALPN_PROTOCOLS, Clock, SERVER_ALPN_PROTOCOLS, TlsConfigError, TlsIdentity, system_clock,
};
pub use watcher::{
    DEFAULT_DEBOUNCE, IdentityWatcher, IdentityWatcherBuilder, RotationStatus, WatchError,
};
