//! Where connectors and acceptors get the identity for each new connection.

use std::sync::Arc;

use super::tls::TlsIdentity;
use super::watcher::IdentityWatcher;

/// A fixed identity or a watched, rotating one. Read once per connection, so a rotation applies
/// to every connection made after it.
#[derive(Clone, Debug)]
pub enum IdentitySource {
    /// Never changes (tests, short-lived tools).
    Fixed(Arc<TlsIdentity>),
    /// Follows the files.
    Watched(IdentityWatcher),
}

impl IdentitySource {
    /// The identity to use for a new connection.
    pub fn current(&self) -> Arc<TlsIdentity> {
        match self {
            Self::Fixed(identity) => identity.clone(),
            Self::Watched(watcher) => watcher.current(),
        }
    }
}

impl From<TlsIdentity> for IdentitySource {
    fn from(identity: TlsIdentity) -> Self {
        Self::Fixed(Arc::new(identity))
    }
}

impl From<Arc<TlsIdentity>> for IdentitySource {
    fn from(identity: Arc<TlsIdentity>) -> Self {
        Self::Fixed(identity)
    }
}

impl From<IdentityWatcher> for IdentitySource {
    fn from(watcher: IdentityWatcher) -> Self {
        Self::Watched(watcher)
    }
}
