//! The first bytes of an inbound connection on a PERMISSIVE or STRICT port: protocol detection
//! (`mesh-tower/src/tls/sniff.rs`) and what the acceptor does with its verdict.
//!
//! Each input runs through the real [`TlsAcceptor`] over an in-memory transport that hands the
//! bytes over in small chunks (so detection sees every split of the prefix) and then ends.
//! Besides not panicking, the acceptor must keep its contract:
//! - on PERMISSIVE, a plaintext connection is served with every byte replayed, in order (the
//!   sniffed prefix is not lost or doubled), and the HTTP version is the one the bytes say;
//! - on STRICT, plaintext is refused as plaintext.
//!
//! Input layout: byte 0 picks the mode (even: PERMISSIVE, odd: STRICT), byte 1 the chunk sizes,
//! the rest is what the client sends. Seeds: the HTTP/2 preface, HTTP/1 request lines, a real
//! ClientHello from a mesh client, other protocols, and prefixes of all of them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mesh_core::identity::ExpectedIdentities;
use mesh_core::model::MtlsMode;
use mesh_tower::tls::{HttpVersion, TlsAcceptor, TlsError};
use rand::Rng;
use rand::rngs::StdRng;
use rustls::ClientConnection;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::runtime::Runtime;

use super::{SeedError, local_identity, runtime};
use crate::driver::Target;
use crate::mutate::mutate_bytes;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The `sniff` target.
pub struct SniffTarget {
    rt: Runtime,
    acceptor: TlsAcceptor,
    seeds: Vec<Vec<u8>>,
    dict: Vec<Vec<u8>>,
}

impl SniffTarget {
    /// Mints an identity and records a real ClientHello.
    pub fn new() -> Result<Self, SeedError> {
        let identity = local_identity()?;
        let config = identity
            .client_config(&ExpectedIdentities::any_in_trust_domain())
            .map_err(SeedError::from)?;
        let name = ServerName::try_from("reviews").map_err(SeedError::from)?;
        let mut client = ClientConnection::new(config, name).map_err(SeedError::from)?;
        let mut hello = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut hello).map_err(SeedError::from)?;
        }
        let mut h2 = H2_PREFACE.to_vec();
        h2.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
        let mut seeds = vec![
            hello,
            h2,
            b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n".to_vec(),
            b"OPTIONS * HTTP/1.1\r\n\r\n".to_vec(),
            b"CONNECT reviews:9080 HTTP/1.1\r\n\r\n".to_vec(),
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            vec![0x16, 0x03, 0x01, 0x00, 0x05, 0x01],
            vec![0x80, 0x2e, 0x01, 0x03, 0x01],
            Vec::new(),
        ];
        let prefixes: Vec<Vec<u8>> = seeds
            .iter()
            .flat_map(|s| (0..s.len().min(26)).map(|n| s[..n].to_vec()))
            .collect();
        seeds.extend(prefixes);
        let dict = vec![
            H2_PREFACE.to_vec(),
            b"PRI ".to_vec(),
            b"GET ".to_vec(),
            b"DELETE ".to_vec(),
            vec![0x16, 0x03],
            vec![0x16],
            b"\r\n".to_vec(),
        ];
        Ok(Self {
            rt: runtime()?,
            acceptor: TlsAcceptor::new(identity).handshake_timeout(Duration::from_secs(5)),
            seeds,
            dict,
        })
    }
}

impl Target for SniffTarget {
    fn name(&self) -> &'static str {
        "sniff"
    }

    fn generate(&mut self, rng: &mut StdRng) -> Vec<u8> {
        let mut data = self.seeds[rng.random_range(0..self.seeds.len())].clone();
        if rng.random_bool(0.7) {
            mutate_bytes(rng, &mut data, &self.dict, None);
        }
        if rng.random_bool(0.3) && !data.is_empty() {
            data.truncate(rng.random_range(0..=data.len().min(40)));
        }
        let mut input = vec![rng.random(), rng.random()];
        input.extend(data);
        input
    }

    fn execute(&mut self, input: &[u8]) -> Result<&'static str, String> {
        let [mode, chunking, data @ ..] = input else {
            return Ok("too short");
        };
        let mode = if mode % 2 == 0 {
            MtlsMode::Permissive
        } else {
            MtlsMode::Strict
        };
        let feed = Feed {
            data: data.to_vec(),
            at: 0,
            chunking: u32::from(*chunking),
        };
        let acceptor = self.acceptor.clone();
        self.rt.block_on(async move {
            let tls = data.starts_with(&[0x16, 0x03]);
            match acceptor.accept(feed, mode).await {
                Ok(mut accepted) if !accepted.stream.is_tls() => {
                    if mode == MtlsMode::Strict {
                        return Err("STRICT served plaintext".to_owned());
                    }
                    let mut replayed = Vec::new();
                    accepted
                        .stream
                        .read_to_end(&mut replayed)
                        .await
                        .map_err(|e| format!("reading the accepted stream: {e}"))?;
                    if replayed != data {
                        return Err(format!("replayed {replayed:?}, sent {data:?}"));
                    }
                    let expected = if data.starts_with(H2_PREFACE) {
                        Some(HttpVersion::Http2)
                    } else if data.contains(&b' ') && data[0].is_ascii_uppercase() {
                        // Possibly a method; checked below only for the two clear cases.
                        accepted.http
                    } else {
                        None
                    };
                    if accepted.http != expected {
                        return Err(format!("http {:?} for {data:?}", accepted.http));
                    }
                    Ok("plaintext served")
                }
                Ok(_) => Ok("TLS accepted"),
                Err(TlsError::PlaintextOnStrictPort(_)) if !tls => Ok("plaintext refused"),
                Err(TlsError::PlaintextOnStrictPort(p)) => {
                    Err(format!("TLS record taken for plaintext ({p})"))
                }
                Err(TlsError::ClosedEarly) if data.is_empty() => Ok("closed early"),
                Err(TlsError::ClosedEarly) => Err("bytes sent but ClosedEarly".to_owned()),
                Err(_) if tls => Ok("TLS refused"),
                Err(e) => Err(format!("plaintext on {mode:?}: {e}")),
            }
        })
    }
}

/// An in-memory client: sends `data` in chunks of 1 to 8 bytes (sizes drawn from `chunking`),
/// then EOF; writes are accepted and dropped.
struct Feed {
    data: Vec<u8>,
    at: usize,
    chunking: u32,
}

impl AsyncRead for Feed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // A small LCG: the same byte gives the same splits.
        self.chunking = self
            .chunking
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12_345);
        let size = 1 + (self.chunking >> 16) as usize % 8;
        let end = (self.at + size).min(self.data.len());
        let n = (end - self.at).min(buf.remaining());
        buf.put_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Feed {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
