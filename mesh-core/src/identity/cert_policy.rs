//! What a peer's certificate must be beyond a valid chain: a leaf allowed to sign (its
//! KeyUsage, when present, includes `digitalSignature`, which a TLS handshake signature
//! needs, RFC 5280 §4.2.1.3) and keys no weaker than Istio's CA issues (RSA of at least 2048
//! bits, as `security/pkg/pki/util` requires of CSRs).
//!
//! These are checked before the chain, so a refusal names the actual problem: webpki (through
//! ring) refuses short RSA keys too, but only as a signature that does not verify, which reads
//! as "not signed by a trusted CA".

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::peer_error::PeerCertError;

/// The shortest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Checks the leaf (`end_entity`) and the `intermediates` a peer sent.
pub(crate) fn check_peer_chain<C: AsRef<[u8]>>(
    end_entity: &[u8],
    intermediates: &[C],
) -> Result<(), PeerCertError> {
    let leaf = parse(end_entity)?;
    match leaf.key_usage() {
        Ok(Some(ku)) if !ku.value.digital_signature() => {
            return Err(PeerCertError::KeyUsage(ku.value.to_string()));
        }
        Ok(_) => {}
        Err(e) => return Err(PeerCertError::Other(format!("KeyUsage: {e}"))),
    }
    check_key(&leaf, "peer certificate")?;
    for der in intermediates {
        check_key(&parse(der.as_ref())?, "intermediate CA certificate")?;
    }
    Ok(())
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, PeerCertError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| PeerCertError::Other(format!("certificate is not valid DER X.509: {e}")))
}

fn check_key(cert: &X509Certificate<'_>, which: &'static str) -> Result<(), PeerCertError> {
    if let Ok(PublicKey::RSA(rsa)) = cert.public_key().parsed() {
        let bits = modulus_bits(rsa.modulus);
        if bits < MIN_RSA_BITS {
            return Err(PeerCertError::WeakKey { which, bits });
        }
    }
    Ok(())
}

/// The bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn modulus_bits(modulus: &[u8]) -> usize {
    let start = modulus
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(modulus.len());
    let rest = &modulus[start..];
    match rest.first() {
        None => 0,
        Some(top) => (rest.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rcgen::{
        CertificateParams, DistinguishedName, Issuer, KeyPair, PKCS_RSA_SHA256, PublicKeyData,
        SanType, SignatureAlgorithm,
    };
    use rustls::RootCertStore;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::server::danger::ClientCertVerifier;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;
    use crate::identity::ca::{CertificateAuthority, IssueOptions};
    use crate::identity::verify::{SpiffeClientVerifier, SpiffeServerVerifier};
    use crate::identity::{ExpectedIdentities, SpiffeId, provider};

    #[test]
    fn modulus_lengths() {
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        let mut m = vec![0u8];
        m.extend([0xffu8; 128]);
        assert_eq!(modulus_bits(&m), 1024);
    }

    /// An RSA public key of `bits` bits (not a real modulus: only its length is read here,
    /// and ring cannot make or use RSA keys under 2048 bits).
    struct RsaPublic(Vec<u8>);

    impl RsaPublic {
        fn of_bits(bits: usize) -> Self {
            let mut n = vec![0u8];
            n.push(0xc0);
            n.extend(std::iter::repeat_n(0x5a, bits / 8 - 2));
            n.push(0x01);
            let int = |v: &[u8]| {
                let mut out = vec![0x02];
                der_len(&mut out, v.len());
                out.extend(v);
                out
            };
            let body = [int(&n), int(&[0x01, 0x00, 0x01])].concat();
            let mut der = vec![0x30];
            der_len(&mut der, body.len());
            der.extend(body);
            Self(der)
        }
    }

    fn der_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
    }

    impl PublicKeyData for RsaPublic {
        fn der_bytes(&self) -> &[u8] {
            &self.0
        }
        fn algorithm(&self) -> &'static SignatureAlgorithm {
            &PKCS_RSA_SHA256
        }
    }

    struct Pki {
        roots: Arc<RootCertStore>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn pki() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "cluster.local");
        let cert = params.self_signed(&key).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        Pki {
            roots: Arc::new(roots),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(pki: &Pki, key: &impl PublicKeyData) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(
            "spiffe://cluster.local/ns/default/sa/weak"
                .try_into()
                .unwrap(),
        )];
        params.signed_by(key, &pki.issuer).unwrap().der().clone()
    }

    fn refused_by_both(
        roots: &Arc<RootCertStore>,
        leaf: &CertificateDer<'_>,
    ) -> [PeerCertError; 2] {
        let client = SpiffeClientVerifier::new(roots.clone(), provider(), "cluster.local".into())
            .unwrap()
            .verify_client_cert(leaf, &[], UnixTime::now())
            .unwrap_err();
        let server = SpiffeServerVerifier::new(
            roots.clone(),
            provider().signature_verification_algorithms,
            "cluster.local".into(),
            ExpectedIdentities::any_in_trust_domain(),
        )
        .verify_server_cert(
            leaf,
            &[],
            &ServerName::try_from("reviews").unwrap(),
            &[],
            UnixTime::now(),
        )
        .unwrap_err();
        [client, server].map(|e| PeerCertError::from_rustls(&e).unwrap())
    }

    /// A 1024-bit RSA leaf under a trusted CA is refused as a weak key, by both verifiers;
    /// before, the chain passed and the handshake failed later as a bad signature, reported as
    /// "not signed by a trusted CA". 2048 bits pass this check.
    #[test]
    fn short_rsa_keys_are_refused_as_weak() {
        let pki = pki();
        let weak = leaf(&pki, &RsaPublic::of_bits(1024));
        for e in refused_by_both(&pki.roots, &weak) {
            assert_eq!(
                e,
                PeerCertError::WeakKey {
                    which: "peer certificate",
                    bits: 1024
                }
            );
            assert!(e.to_string().contains("at least 2048"), "{e}");
        }
        let ok = leaf(&pki, &RsaPublic::of_bits(2048));
        assert!(check_peer_chain::<&[u8]>(&ok, &[]).is_ok());
        // An intermediate CA with a short key is named as such.
        let err = check_peer_chain(&ok, &[weak.as_ref()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("intermediate CA certificate has a 1024-bit"),
            "{err}"
        );
    }

    /// A leaf whose KeyUsage lacks digitalSignature cannot sign a handshake: refused with
    /// that reason (webpki does not read KeyUsage, so before it was accepted).
    #[test]
    fn key_usage_without_digital_signature_is_refused() {
        let ca = CertificateAuthority::generate("cluster.local").unwrap();
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/enc".parse().unwrap();
        let issued = ca
            .issue_with(
                &IssueOptions::new(id.clone(), Duration::from_secs(3600)).digital_signature(false),
            )
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(issued.cert_chain_pem.as_bytes()).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.roots_pem().as_bytes()).unwrap())
            .unwrap();
        for e in refused_by_both(&Arc::new(roots), &leaf) {
            assert!(matches!(e, PeerCertError::KeyUsage(_)), "{e:?}");
            assert!(
                e.to_string().contains("does not include digitalSignature"),
                "{e}"
            );
        }
        let normal = ca
            .issue_with(&IssueOptions::new(id, Duration::from_secs(3600)))
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(normal.cert_chain_pem.as_bytes()).unwrap();
        assert!(check_peer_chain::<&[u8]>(&leaf, &[]).is_ok());
    }
}
