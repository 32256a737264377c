//! Loading credentials: every refusal has its own reason; every key encoding loads.
#![cfg(feature = "certs")]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mesh_core::identity::{
    CertificateAuthority, Credentials, CredentialsError, IdentityFiles, IssueOptions,
    IssuedIdentity, SpiffeId, SvidError, Timestamp,
};
use rustls_pki_types::UnixTime;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A fixed "now" for validity checks: 2030-01-01T00:00:00Z.
fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_893_456_000))
}

fn at(unix_time: UnixTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_time.as_secs())
}

fn ca() -> CertificateAuthority {
    CertificateAuthority::generate("cluster.local").unwrap()
}

fn valid_options(ca: &CertificateAuthority) -> IssueOptions {
    IssueOptions::new(
        SpiffeId::istio(ca.trust_domain(), "default", "reviews").unwrap(),
        DAY,
    )
    .validity(at(now()) - DAY, at(now()) + DAY)
}

fn load(issued: &IssuedIdentity) -> Result<Credentials, CredentialsError> {
    Credentials::from_pem(
        issued.cert_chain_pem.as_bytes(),
        issued.key_pem.as_bytes(),
        issued.roots_pem.as_bytes(),
        now(),
    )
}

#[test]
fn valid_identity_exposes_id_expiry_and_roots() {
    let ca = ca();
    let issued = ca.issue_with(&valid_options(&ca)).unwrap();
    let creds = load(&issued).unwrap();
    assert_eq!(
        creds.spiffe_id().as_str(),
        "spiffe://cluster.local/ns/default/sa/reviews"
    );
    assert_eq!(
        creds.leaf_not_after(),
        Timestamp((now().as_secs() + DAY.as_secs()) as i64)
    );
    assert_eq!(creds.roots().len(), 1);
    assert_eq!(creds.roots()[0].subject, "O=cluster.local");
    assert!(creds.roots()[0].not_after > Timestamp::from(now()));
}

#[test]
fn chain_with_intermediate_and_bundle_of_roots() {
    let root = ca();
    let intermediate = root.intermediate().unwrap();
    let other_root = ca();
    let mut issued = intermediate
        .issue_with(&valid_options(&intermediate))
        .unwrap();
    assert_eq!(
        issued.cert_chain_pem.matches("BEGIN CERTIFICATE").count(),
        2
    );
    issued.roots_pem = format!("{}{}", other_root.roots_pem(), root.roots_pem());
    let creds = load(&issued).unwrap();
    assert_eq!(creds.roots().len(), 2);
    assert_eq!(creds.cert_chain().len(), 2);

    // Without the intermediate the leaf does not reach the root.
    let leaf_only = issued
        .cert_chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap()
        .to_owned();
    let err = load(&IssuedIdentity {
        cert_chain_pem: leaf_only,
        ..issued
    })
    .unwrap_err();
    assert!(matches!(err, CredentialsError::UntrustedChain(_)), "{err}");
}

#[test]
fn every_key_encoding_loads() {
    let ca = ca();
    let dir = env!("CARGO_MANIFEST_DIR");
    for (pkcs8, other) in [
        ("ec-pkcs8.pem", "ec-sec1.pem"),
        ("rsa-pkcs8.pem", "rsa-pkcs1.pem"),
    ] {
        let pkcs8 = std::fs::read_to_string(format!("{dir}/tests/fixtures/{pkcs8}")).unwrap();
        let other = std::fs::read_to_string(format!("{dir}/tests/fixtures/{other}")).unwrap();
        let issued = ca
            .issue_with(&valid_options(&ca).key_pem(pkcs8.clone()))
            .unwrap();
        load(&issued).unwrap();
        load(&IssuedIdentity {
            key_pem: other,
            ..issued
        })
        .unwrap();
    }
}

#[test]
fn key_of_another_certificate_is_refused() {
    let ca = ca();
    let a = ca.issue_with(&valid_options(&ca)).unwrap();
    let b = ca.issue_with(&valid_options(&ca)).unwrap();
    let err = load(&IssuedIdentity {
        key_pem: b.key_pem,
        ..a
    })
    .unwrap_err();
    assert!(matches!(err, CredentialsError::KeyMismatch), "{err}");
    assert_eq!(
        err.to_string(),
        "private key does not match the leaf certificate's public key"
    );
}

#[test]
fn leaf_must_carry_exactly_one_spiffe_uri() {
    let ca = ca();
    let none = ca
        .issue_with(&valid_options(&ca).uri_sans(Vec::<String>::new()))
        .unwrap();
    let err = load(&none).unwrap_err();
    assert!(
        matches!(err, CredentialsError::NotAnSvid(SvidError::NoSpiffeSan)),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "leaf certificate is not an X.509-SVID: certificate has no SPIFFE URI SAN"
    );

    let two = ca
        .issue_with(&valid_options(&ca).uri_sans([
            "spiffe://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a/sa/c",
        ]))
        .unwrap();
    let err = load(&two).unwrap_err();
    assert!(
        matches!(
            err,
            CredentialsError::NotAnSvid(SvidError::MultipleUriSans(2))
        ),
        "{err}"
    );

    let http = ca
        .issue_with(&valid_options(&ca).uri_sans(["https://example.com/x"]))
        .unwrap();
    assert!(matches!(
        load(&http).unwrap_err(),
        CredentialsError::NotAnSvid(SvidError::NoSpiffeSan)
    ));

    let bad = ca
        .issue_with(&valid_options(&ca).uri_sans(["spiffe://Cluster.local/ns/a/sa/b"]))
        .unwrap();
    assert!(matches!(
        load(&bad).unwrap_err(),
        CredentialsError::NotAnSvid(SvidError::InvalidSpiffeId { .. })
    ));
}

#[test]
fn leaf_outside_its_validity_is_refused() {
    let ca = ca();
    let expired = ca
        .issue_with(&valid_options(&ca).validity(at(now()) - 2 * DAY, at(now()) - DAY))
        .unwrap();
    let err = load(&expired).unwrap_err();
    assert!(matches!(err, CredentialsError::Expired { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("leaf certificate expired at Dec 31 00:00:00 2029"),
        "{err}"
    );

    let future = ca
        .issue_with(&valid_options(&ca).validity(at(now()) + DAY, at(now()) + 2 * DAY))
        .unwrap();
    let err = load(&future).unwrap_err();
    assert!(matches!(err, CredentialsError::NotYetValid { .. }), "{err}");
}

#[test]
fn chain_to_another_root_is_refused() {
    let ca = ca();
    let mut issued = ca.issue_with(&valid_options(&ca)).unwrap();
    // Same subject (`O=cluster.local`), different key: what a root rotation looks like.
    issued.roots_pem = self::ca().roots_pem().to_owned();
    let err = load(&issued).unwrap_err();
    assert!(matches!(err, CredentialsError::UntrustedChain(_)), "{err}");
    assert!(
        err.to_string().contains("InvalidSignatureForPublicKey"),
        "{err}"
    );

    // A root with another name.
    issued.roots_pem = CertificateAuthority::generate("other.org")
        .unwrap()
        .roots_pem()
        .to_owned();
    let err = load(&issued).unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[test]
fn garbage_and_empty_inputs_are_refused() {
    let ca = ca();
    let issued = ca.issue_with(&valid_options(&ca)).unwrap();
    let err = load(&IssuedIdentity {
        cert_chain_pem: "not a certificate".into(),
        ..issued.clone()
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            CredentialsError::Pem {
                what: "certificate chain",
                ..
            }
        ),
        "{err}"
    );

    let err = load(&IssuedIdentity {
        cert_chain_pem: "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n".into(),
        ..issued.clone()
    })
    .unwrap_err();
    assert!(err.to_string().contains("malformed PEM"), "{err}");

    let err = load(&IssuedIdentity {
        key_pem: "garbage".into(),
        ..issued.clone()
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            CredentialsError::Pem {
                what: "private key",
                ..
            }
        ),
        "{err}"
    );

    let err = load(&IssuedIdentity {
        roots_pem: String::new(),
        ..issued
    })
    .unwrap_err();
    assert!(matches!(err, CredentialsError::EmptyRoots), "{err}");
    assert_eq!(err.to_string(), "root bundle holds no certificate");
}

#[test]
fn files_round_trip_through_istio_layout_and_ca_save_load() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = ca();
    ca.save(tmp.path().join("ca")).unwrap();
    let loaded = CertificateAuthority::load(tmp.path().join("ca")).unwrap();
    assert_eq!(loaded.trust_domain(), "cluster.local");
    let issued = loaded.issue_with(&valid_options(&loaded)).unwrap();
    // Issued by the reloaded CA, trusted by the original root.
    assert_eq!(issued.roots_pem, ca.roots_pem());
    let files = issued.write_istio_layout(tmp.path()).unwrap();
    assert_eq!(files, IdentityFiles::in_dir(tmp.path()));
    let creds = Credentials::load(&files, now()).unwrap();
    assert_eq!(creds.spiffe_id(), &issued.spiffe_id);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&tmp.path().join("ca/ca-key.pem")), 0o600);
    }

    let missing = IdentityFiles::in_dir(tmp.path().join("nope"));
    let err = Credentials::load(&missing, now()).unwrap_err();
    assert!(matches!(err, CredentialsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("nope/cert-chain.pem"), "{err}");
}
