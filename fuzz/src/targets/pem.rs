//! PEM files and the certificates in them: a workload's own identity files, and a peer's
//! certificate chain in a real (in-memory) TLS handshake.
//!
//! Seeds are minted at start by [`CertificateAuthority`]: leaves straight from a root, leaves
//! under an intermediate, and leaves with the RSA and EC keys of `mesh-core/tests/fixtures`.
//! An input is a [`frame`](crate::frame) of a mode byte and three PEM texts (chain, key,
//! roots). Mutations work on the PEM text, on the DER inside a PEM block ([`crate::der`]), or on
//! whole blocks (dropped, repeated, moved between files, taken from another identity).
//!
//! Modes:
//! - 0: [`Credentials::from_pem`], then [`TlsIdentity`] and its rustls configs, as a workload
//!   loads its files;
//! - 1: a client presents the chain to a mesh server (`SpiffeClientVerifier` checks it);
//! - 2: a server presents the chain to a mesh client (`SpiffeServerVerifier` checks it).
//!
//! In every mode each certificate of the chain also goes through [`spiffe_id_of`] and
//! [`PeerIdentity::from_certificate`], as a peer's leaf does after a handshake.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mesh_core::identity::{
    CertificateAuthority, Credentials, ExpectedIdentities, IssueOptions, IssuedIdentity,
    PeerIdentity, SpiffeId, TlsIdentity, provider, spiffe_id_of, system_clock,
};
use rand::Rng;
use rand::rngs::StdRng;
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, Connection, DigitallySignedStruct, ServerConfig,
    ServerConnection, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::SeedError;
use crate::corpus::workspace_root;
use crate::driver::Target;
use crate::frame;
use crate::mutate::mutate_bytes;

const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

/// The `pem` target.
pub struct PemTarget {
    /// Seed identities: `[chain, key, roots]` PEM texts.
    seeds: Vec<[Vec<u8>; 3]>,
    /// The mesh identity on the other end of a handshake.
    local: TlsIdentity,
    /// The key a presented chain is signed with.
    signing_key: Arc<dyn rustls::sign::SigningKey>,
    now: UnixTime,
    dict: Vec<Vec<u8>>,
}

impl PemTarget {
    /// Mints the seed identities.
    pub fn new() -> Result<Self, SeedError> {
        let root = CertificateAuthority::generate("cluster.local").map_err(SeedError::from)?;
        let intermediate = root.intermediate().map_err(SeedError::from)?;
        let other = CertificateAuthority::generate("other.domain").map_err(SeedError::from)?;
        let id =
            |ns: &str, sa: &str| SpiffeId::istio("cluster.local", ns, sa).map_err(SeedError::from);
        let issued: Vec<IssuedIdentity> = vec![
            root.issue("default", "reviews", MONTH)
                .map_err(SeedError::from)?,
            intermediate
                .issue("default", "ratings", MONTH)
                .map_err(SeedError::from)?,
            other.issue("foo", "bar", MONTH).map_err(SeedError::from)?,
        ];
        let seed = |i: &IssuedIdentity| {
            [
                i.cert_chain_pem.clone().into_bytes(),
                i.key_pem.clone().into_bytes(),
                i.roots_pem.clone().into_bytes(),
            ]
        };
        let mut seeds: Vec<[Vec<u8>; 3]> = issued.iter().map(seed).collect();
        let fixtures = workspace_root().join("mesh-core/tests/fixtures");
        for key in [
            "rsa-pkcs8.pem",
            "ec-sec1.pem",
            "rsa-pkcs1.pem",
            "ec-pkcs8.pem",
        ] {
            let Ok(pem) = std::fs::read_to_string(fixtures.join(key)) else {
                continue;
            };
            // rcgen signs with some key kinds only; the others still seed the key file.
            let options = IssueOptions::new(id("default", "keyed")?, MONTH).key_pem(pem.clone());
            match root.issue_with(&options) {
                Ok(i) => seeds.push(seed(&i)),
                Err(_) => {
                    let mut s = seed(&issued[0]);
                    s[1] = pem.into_bytes();
                    seeds.push(s);
                }
            }
        }
        let now = UnixTime::now();
        let local_creds = issued[0].credentials(now).map_err(SeedError::from)?;
        let local = TlsIdentity::new(local_creds).map_err(SeedError::from)?;
        let signing_key = local.credentials().certified_key().key.clone();
        let dict = [
            "-----BEGIN CERTIFICATE-----\n",
            "-----END CERTIFICATE-----\n",
            "-----BEGIN PRIVATE KEY-----\n",
            "-----END PRIVATE KEY-----\n",
            "-----BEGIN EC PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\n",
            "-----BEGIN X509 CRL-----\n",
            "=",
            "\r\n",
            "\n\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        Ok(Self {
            seeds,
            local,
            signing_key,
            now,
            dict,
        })
    }
}

/// A PEM block: its label and DER.
struct Block {
    label: String,
    der: Vec<u8>,
}

fn blocks(pem: &[u8]) -> Vec<Block> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_owned(), String::new()));
        } else if line.starts_with("-----END ") {
            if let Some((label, body)) = current.take()
                && let Ok(der) = STANDARD.decode(body.trim())
            {
                out.push(Block { label, der });
            }
        } else if let Some((_, body)) = &mut current {
            body.push_str(line.trim());
        }
    }
    out
}

fn to_pem(blocks: &[Block]) -> Vec<u8> {
    let mut out = String::new();
    for b in blocks {
        out.push_str(&format!("-----BEGIN {}-----\n", b.label));
        let body = STANDARD.encode(&b.der);
        for chunk in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(&format!("-----END {}-----\n", b.label));
    }
    out.into_bytes()
}

impl Target for PemTarget {
    fn name(&self) -> &'static str {
        "pem"
    }

    fn generate(&mut self, rng: &mut StdRng) -> Vec<u8> {
        let mut parts = self.seeds[rng.random_range(0..self.seeds.len())].clone();
        // Mostly files as a workload loads them; handshakes cost more, so fewer of them.
        let mode: u8 = match rng.random_range(0..10) {
            0..6 => 0,
            6..8 => 1,
            _ => 2,
        };
        for _ in 0..rng.random_range(1..=2) {
            let part = rng.random_range(0..3);
            match rng.random_range(0..10) {
                0..3 => mutate_bytes(rng, &mut parts[part], &self.dict, None),
                3..8 => {
                    let mut bs = blocks(&parts[part]);
                    if !bs.is_empty() {
                        let i = rng.random_range(0..bs.len());
                        crate::der::mutate(rng, &mut bs[i].der);
                        parts[part] = to_pem(&bs);
                    }
                }
                _ => {
                    // Whole blocks: from another identity, or another file of this one.
                    let donor = &self.seeds[rng.random_range(0..self.seeds.len())];
                    let from = donor[rng.random_range(0..3)].clone();
                    let mut bs = blocks(&parts[part]);
                    let extra = blocks(&from);
                    match rng.random_range(0..4) {
                        0 if !bs.is_empty() => {
                            bs.remove(rng.random_range(0..bs.len()));
                        }
                        1 if !bs.is_empty() => {
                            let i = rng.random_range(0..bs.len());
                            bs.push(Block {
                                label: bs[i].label.clone(),
                                der: bs[i].der.clone(),
                            });
                        }
                        2 => bs.extend(extra),
                        _ => bs = extra,
                    }
                    parts[part] = to_pem(&bs);
                }
            }
        }
        let [chain, key, roots] = parts;
        frame::encode(&[vec![mode], chain, key, roots])
    }

    fn execute(&mut self, input: &[u8]) -> Result<&'static str, String> {
        let parts = frame::decode(input);
        let part = |i: usize| parts.get(i).copied().unwrap_or_default();
        let (chain, key, roots) = (part(1), part(2), part(3));
        let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
            .filter_map(Result::ok)
            .collect();
        for der in &ders {
            let _ = spiffe_id_of(der);
            let _ = PeerIdentity::from_certificate(der);
        }
        match part(0).first().copied().unwrap_or(0) % 3 {
            0 => Ok(self.load(chain, key, roots)),
            1 => Ok(self.present_as_client(ders)),
            _ => Ok(self.present_as_server(ders)),
        }
    }
}

impl PemTarget {
    fn load(&self, chain: &[u8], key: &[u8], roots: &[u8]) -> &'static str {
        let Ok(creds) = Credentials::from_pem(chain, key, roots, self.now) else {
            return "files refused";
        };
        let Ok(identity) = TlsIdentity::with_clock(Arc::new(creds), system_clock()) else {
            return "files loaded, configs refused";
        };
        let _ = identity.server_config();
        let expected = ExpectedIdentities::parse(["spiffe://cluster.local/ns/default/sa/ratings"]);
        if let Ok(expected) = expected {
            let _ = identity.client_config(&expected);
        }
        "files loaded"
    }

    fn present_as_client(&self, chain: Vec<CertificateDer<'static>>) -> &'static str {
        let certified = Arc::new(CertifiedKey::new(chain, self.signing_key.clone()));
        let Ok(builder) =
            ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()
        else {
            return "no client config";
        };
        let mut config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer))
            .with_client_cert_resolver(Arc::new(Present(certified)));
        config.alpn_protocols = vec![b"h2".to_vec()];
        let Ok(name) = ServerName::try_from("reviews.default.svc.cluster.local") else {
            return "no server name";
        };
        let Ok(client) = ClientConnection::new(Arc::new(config), name) else {
            return "no client";
        };
        let Ok(server) = ServerConnection::new(self.local.server_config()) else {
            return "no server";
        };
        handshake(client.into(), server.into(), "peer client")
    }

    fn present_as_server(&self, chain: Vec<CertificateDer<'static>>) -> &'static str {
        let certified = Arc::new(CertifiedKey::new(chain, self.signing_key.clone()));
        let Ok(builder) =
            ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()
        else {
            return "no server config";
        };
        let config = builder
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Present(certified)));
        let Ok(client_config) = self
            .local
            .client_config(&ExpectedIdentities::any_in_trust_domain())
        else {
            return "no client config";
        };
        let Ok(name) = ServerName::try_from("reviews.default.svc.cluster.local") else {
            return "no server name";
        };
        let Ok(client) = ClientConnection::new(client_config, name) else {
            return "no client";
        };
        let Ok(server) = ServerConnection::new(Arc::new(config)) else {
            return "no server";
        };
        handshake(client.into(), server.into(), "peer server")
    }
}

/// Runs a handshake in memory; names whether it completed.
fn handshake(mut client: Connection, mut server: Connection, who: &'static str) -> &'static str {
    for _ in 0..16 {
        let moved = match (
            transfer(&mut client, &mut server),
            transfer(&mut server, &mut client),
        ) {
            (Ok(a), Ok(b)) => a || b,
            _ => return refused(who),
        };
        if !client.is_handshaking() && !server.is_handshaking() {
            return match who {
                "peer client" => "peer client accepted",
                _ => "peer server accepted",
            };
        }
        if !moved {
            break;
        }
    }
    refused(who)
}

fn refused(who: &str) -> &'static str {
    match who {
        "peer client" => "peer client refused",
        _ => "peer server refused",
    }
}

/// Moves what `from` has to send into `to`.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<bool, rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        if from.write_tls(&mut buf).is_err() {
            break;
        }
    }
    let mut rd = buf.as_slice();
    while !rd.is_empty() {
        match to.read_tls(&mut rd) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                to.process_new_packets()?;
            }
        }
    }
    Ok(!buf.is_empty())
}

/// Presents a fixed chain, on either side.
#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesClientCert for Present {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for Present {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The presenting side's own view of the mesh peer does not matter here.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
