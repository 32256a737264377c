//! What a peer's certificate says about it when it sent no Istio peer metadata: a plain gRPC
//! or curl client holding a mesh certificate, or a server that does not run metadata exchange.
//!
//! Istio's stats filter (istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc`,
//! `populatePeerInfo` with `getNamespace`) takes the peer's namespace from the `/ns/<namespace>/`
//! segment of its verified URI SAN, in preference to the namespace its metadata claims (the
//! metadata's only when the SAN has none, or an empty one), and
//! reports the peer's canonical revision as `latest` when no metadata names one. The workload
//! name, app and version stay `unknown`: a certificate does not carry them. The service account
//! is in the principal itself (`source_principal`, `…/sa/<service-account>`).

use super::record::PeerWorkload;

/// The namespace of a SPIFFE principal (`spiffe://<td>/ns/<namespace>/sa/<sa>`), as Istio's
/// `getNamespace` reads it: the text after the first `/ns/`, up to the next `/`.
pub fn principal_namespace(principal: &str) -> Option<&str> {
    let (_, rest) = principal.split_once("/ns/")?;
    let ns = rest.split('/').next().unwrap_or(rest);
    (!ns.is_empty()).then_some(ns)
}

/// The service account of a SPIFFE principal: the text after `/sa/`, up to the next `/`.
pub fn principal_service_account(principal: &str) -> Option<&str> {
    let (_, rest) = principal.split_once("/sa/")?;
    let sa = rest.split('/').next().unwrap_or(rest);
    (!sa.is_empty()).then_some(sa)
}

impl PeerWorkload {
    /// Completes a peer's workload as Istio's stats filter does: the namespace from its verified
    /// principal (when there is one) over the one its metadata claimed, and `latest` as its
    /// canonical revision when none is known.
    pub fn complete_from_principal(&mut self, principal: Option<&str>) {
        if let Some(ns) = principal.and_then(principal_namespace)
            && self.namespace.as_deref() != Some(ns)
        {
            self.namespace = Some(ns.to_owned());
        }
        if self.canonical_revision.is_none() {
            self.canonical_revision = Some("latest".to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// istio_stats.cc `getNamespace`: the segment after `/ns/`, to the next `/`.
    #[test]
    fn namespace_and_service_account_from_principal() {
        let p = "spiffe://cluster.local/ns/shop/sa/payment";
        assert_eq!(principal_namespace(p), Some("shop"));
        assert_eq!(principal_service_account(p), Some("payment"));
        assert_eq!(
            principal_namespace("spiffe://cluster.local/ns/shop"),
            Some("shop")
        );
        assert_eq!(principal_namespace("spiffe://cluster.local/sa/x"), None);
        assert_eq!(principal_namespace("spiffe://td/ns//sa/x"), None);
    }

    /// A caller without metadata: namespace from its certificate, canonical revision `latest`,
    /// workload unknown. A caller whose metadata claims another namespace than its
    /// certificate is reported in the certificate's (the SAN wins, as in istio_stats.cc).
    #[test]
    fn completes_a_peer_without_metadata() {
        let mut w = PeerWorkload::default();
        w.complete_from_principal(Some("spiffe://cluster.local/ns/shop/sa/curl"));
        assert_eq!(w.namespace.as_deref(), Some("shop"));
        assert_eq!(w.canonical_revision.as_deref(), Some("latest"));
        assert_eq!(w.name, None);
        let mut claimed = PeerWorkload {
            namespace: Some("prod".into()),
            canonical_revision: Some("v2".into()),
            ..PeerWorkload::default()
        };
        claimed.complete_from_principal(Some("spiffe://cluster.local/ns/dev/sa/x"));
        assert_eq!(claimed.namespace.as_deref(), Some("dev"));
        assert_eq!(claimed.canonical_revision.as_deref(), Some("v2"));
        // `getNamespace` finds an empty namespace in `/ns//`: `populatePeerInfo` then takes the
        // metadata's (`if (peer_namespace.empty() && peer)`).
        let mut empty_ns = PeerWorkload {
            namespace: Some("prod".into()),
            ..PeerWorkload::default()
        };
        empty_ns.complete_from_principal(Some("spiffe://cluster.local/ns//sa/x"));
        assert_eq!(empty_ns.namespace.as_deref(), Some("prod"));
        let mut plain = PeerWorkload::default();
        plain.complete_from_principal(None);
        assert_eq!(plain.namespace, None);
        assert_eq!(plain.canonical_revision.as_deref(), Some("latest"));
    }
}
