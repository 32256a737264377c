//! Which server identities a client accepts for a cluster.

use std::sync::Arc;

use super::peer_error::PeerCertError;
use super::spiffe::{SpiffeId, SpiffeIdError};

/// The server identities a client accepts for one cluster.
///
/// Empty means "any identity of the local trust domain" (Istio's `ISTIO_MUTUAL` without
/// `subjectAltNames`); otherwise the server must present one of the listed IDs exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExpectedIdentities {
    ids: Arc<[SpiffeId]>,
}

impl ExpectedIdentities {
    /// Any identity of the local trust domain.
    pub fn any_in_trust_domain() -> Self {
        Self::default()
    }

    /// Exactly these identities (empty means any in the local trust domain).
    pub fn one_of(ids: impl IntoIterator<Item = SpiffeId>) -> Self {
        let mut ids: Vec<SpiffeId> = ids.into_iter().collect();
        ids.sort();
        ids.dedup();
        Self { ids: ids.into() }
    }

    /// From the strings config carries: a DestinationRule's or ServiceEntry's `subjectAltNames`,
    /// endpoints' service-account identities. Every entry must be a SPIFFE ID.
    pub fn parse<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> Result<Self, SpiffeIdError> {
        let ids = ids
            .into_iter()
            .map(|id| SpiffeId::parse(id.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::one_of(ids))
    }

    /// The listed identities, sorted.
    pub fn ids(&self) -> &[SpiffeId] {
        &self.ids
    }

    /// Whether `peer` is acceptable for a workload in `local_trust_domain`.
    pub fn check(&self, peer: &SpiffeId, local_trust_domain: &str) -> Result<(), PeerCertError> {
        if self.ids.is_empty() {
            return check_trust_domain(peer, local_trust_domain);
        }
        if self.ids.binary_search(peer).is_ok() {
            Ok(())
        } else {
            Err(PeerCertError::IdentityNotExpected {
                id: peer.clone(),
                expected: self.ids.to_vec(),
            })
        }
    }
}

pub(crate) fn check_trust_domain(peer: &SpiffeId, trust_domain: &str) -> Result<(), PeerCertError> {
    if peer.trust_domain() == trust_domain {
        Ok(())
    } else {
        Err(PeerCertError::WrongTrustDomain {
            id: peer.clone(),
            found: peer.trust_domain().to_owned(),
            expected: trust_domain.to_owned(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn empty_expectation_means_local_trust_domain() {
        let any = ExpectedIdentities::any_in_trust_domain();
        assert_eq!(
            any.check(&id("spiffe://cluster.local/ns/a/sa/b"), "cluster.local"),
            Ok(())
        );
        let err = any
            .check(&id("spiffe://other.org/ns/a/sa/b"), "cluster.local")
            .unwrap_err();
        assert!(matches!(err, PeerCertError::WrongTrustDomain { .. }));
        assert_eq!(
            err.to_string(),
            "peer identity spiffe://other.org/ns/a/sa/b is in trust domain \"other.org\"; expected \"cluster.local\""
        );
    }

    #[test]
    fn parses_config_strings() {
        let want = ExpectedIdentities::parse([
            "spiffe://cluster.local/ns/b/sa/b",
            "spiffe://cluster.local/ns/a/sa/a",
            "spiffe://cluster.local/ns/b/sa/b",
        ])
        .unwrap();
        assert_eq!(want.ids().len(), 2);
        assert_eq!(want.ids()[0].as_str(), "spiffe://cluster.local/ns/a/sa/a");
        assert_eq!(
            ExpectedIdentities::parse(["reviews.default.svc.cluster.local"]),
            Err(SpiffeIdError::WrongScheme)
        );
    }

    #[test]
    fn listed_identities_are_exact() {
        let want = ExpectedIdentities::one_of([
            id("spiffe://cluster.local/ns/a/sa/b"),
            id("spiffe://other.org/ns/x/sa/y"),
        ]);
        assert_eq!(
            want.check(&id("spiffe://other.org/ns/x/sa/y"), "cluster.local"),
            Ok(())
        );
        let err = want
            .check(&id("spiffe://cluster.local/ns/a/sa/c"), "cluster.local")
            .unwrap_err();
        assert!(err.to_string().contains("is not expected"), "{err}");
    }
}
