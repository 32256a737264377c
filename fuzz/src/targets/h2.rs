//! HTTP/2 frame sequences into a real [`mesh_tower::serve`] on 127.0.0.1.
//!
//! The server runs on this thread's runtime (PeerAuthentication DISABLE, so h2c) in front of a
//! small axum app, under an AuthorizationPolicy, so requests go through every inbound layer:
//! trace context, metadata exchange, authorization (path normalisation), telemetry. Each input
//! is what one client connection sends: the connection preface, then frames built from the
//! HTTP/2 vocabulary (SETTINGS, HEADERS with hand-encoded HPACK, CONTINUATION, DATA, PRIORITY,
//! RST_STREAM, PING, GOAWAY, WINDOW_UPDATE, PUSH_PROMISE, unknown types) with odd flags, stream
//! ids, lengths and header values, sometimes mutated byte by byte afterwards; a few inputs are
//! HTTP/1 requests, since the port serves both. The client half-closes (one input in four after
//! the server has been quiet for a moment, so handlers get to answer) and reads until the
//! server closes (bounded). After every batch, [`Target::check`] sends legitimate HTTP/2 and
//! HTTP/1.1 requests, which must be answered.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{Mesh, Workload};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::{SeedError, runtime};
use crate::driver::Target;
use crate::mutate::mutate_bytes;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long one connection may take before the client gives up.
const CONNECTION_LIMIT: Duration = Duration::from_secs(3);
/// How long a quiet server is given to answer before the client closes its side.
const QUIET: Duration = Duration::from_millis(3);

const CONFIG: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ['/admin*'], methods: [POST]}}]
  - when: [{key: 'request.headers[x-tenant]', values: [evil]}]
";

/// The `h2` target.
pub struct H2Target {
    rt: Runtime,
    addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
}

impl H2Target {
    /// Starts the server.
    pub fn new() -> Result<Self, SeedError> {
        let rt = runtime()?;
        let (addr, server) = rt.block_on(async {
            let mesh = Mesh::builder()
                .workload(Workload::new("default", "reviews").labels([("app", "reviews")]))
                .build()
                .await
                .map_err(SeedError::from)?;
            let snapshot = mesh_core::istio::load_str("h2.yaml", CONFIG, mesh.context())
                .map_err(SeedError::from)?;
            mesh.apply(snapshot);
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(SeedError::from)?;
            let addr = listener.local_addr().map_err(SeedError::from)?;
            let app = Router::new()
                .route("/ok", routing::get(|| async { "ok" }))
                .route("/echo", routing::post(|body: Bytes| async move { body }))
                .fallback(|| async { "fallback" });
            let server = tokio::spawn(mesh_tower::serve(&mesh, listener, app).into_future());
            Ok::<_, SeedError>((addr, server))
        })?;
        Ok(Self { rt, addr, server })
    }
}

impl Target for H2Target {
    fn name(&self) -> &'static str {
        "h2"
    }

    fn generate(&mut self, rng: &mut StdRng) -> Vec<u8> {
        if rng.random_range(0..20) == 0 {
            return http1(rng);
        }
        // Half the inputs are well-formed HTTP/2 with odd content (they reach the handlers);
        // the other half break the protocol anywhere.
        let wild = rng.random_bool(0.5);
        let mut out = PREFACE.to_vec();
        if wild && rng.random_range(0..10) == 0 {
            mutate_bytes(rng, &mut out, &[], None);
        }
        if !wild || rng.random_bool(0.9) {
            let payload = settings(rng, wild);
            out.extend(frame(4, 0, 0, &payload, wild, rng));
        }
        let mut stream = 1u32;
        for _ in 0..rng.random_range(1..12) {
            if rng.random_bool(0.5) {
                request(rng, stream, wild, &mut out);
                stream += 2;
            } else if wild {
                let id = stream_id(rng, stream);
                out.extend(odd_frame(rng, id));
            } else if rng.random() {
                let ping: [u8; 8] = rng.random();
                out.extend(frame(6, 0, 0, &ping, false, rng));
            } else {
                let increment = rng.random_range(1..100_000u32).to_be_bytes();
                out.extend(frame(8, 0, 0, &increment, false, rng));
            }
        }
        if wild && rng.random_range(0..3) == 0 {
            mutate_bytes(rng, &mut out, &[PREFACE.to_vec()], None);
        }
        out
    }

    fn execute(&mut self, input: &[u8]) -> Result<&'static str, String> {
        if self.server.is_finished() {
            return Err("the server stopped".to_owned());
        }
        let addr = self.addr;
        self.rt.block_on(async move {
            let exchange = async {
                let mut conn = TcpStream::connect(addr).await?;
                // The server may close before reading everything: that is an answer too.
                let _ = conn.write_all(input).await;
                let mut reply = Vec::new();
                if wait_for_answers(input) {
                    // Let the handlers answer before the end of the input closes the
                    // connection: read until the server is quiet for a moment.
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(Ok(n @ 1..)) =
                        tokio::time::timeout(QUIET, conn.read(&mut buf)).await
                    {
                        reply.extend_from_slice(&buf[..n]);
                    }
                }
                let _ = conn.shutdown().await;
                let _ = conn.read_to_end(&mut reply).await;
                Ok::<_, std::io::Error>(reply)
            };
            match tokio::time::timeout(CONNECTION_LIMIT, exchange).await {
                Err(_) => Ok("no close within the limit"),
                Ok(Err(e)) => Err(format!("cannot connect: {e}")),
                Ok(Ok(reply)) => Ok(classify(&reply)),
            }
        })
    }

    fn check(&mut self) -> Result<(), String> {
        let addr = self.addr;
        self.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(10), legit(addr))
                .await
                .map_err(|_| "legitimate requests timed out".to_owned())?
        })
    }
}

/// One input in four waits for answers before closing; the others close at once (fast, and
/// the close itself races the handlers).
fn wait_for_answers(input: &[u8]) -> bool {
    input
        .iter()
        .fold(0u8, |h, b| h.wrapping_mul(31).wrapping_add(*b))
        % 4
        == 0
}

/// What the server sent back, roughly.
fn classify(reply: &[u8]) -> &'static str {
    if reply.starts_with(b"HTTP/1.1 ") {
        return "HTTP/1 answered";
    }
    let mut rest = reply;
    let mut headers = false;
    let mut goaway = false;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        headers |= rest[3] == 1;
        goaway |= rest[3] == 7;
        rest = &rest[(9 + len).min(rest.len())..];
    }
    match (headers, goaway, reply.is_empty()) {
        (_, _, true) => "closed silently",
        (true, _, _) => "responses sent",
        (false, true, _) => "GOAWAY",
        _ => "other reply",
    }
}

/// One HTTP/2 request (GET /ok) and one HTTP/1.1 request, each answered 200 "ok".
async fn legit(addr: SocketAddr) -> Result<(), String> {
    let request = || {
        http::Request::get(format!("http://{addr}/ok"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())
    };
    let io = TokioIo::new(TcpStream::connect(addr).await.map_err(|e| e.to_string())?);
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(conn);
    let response = h2
        .send_request(request()?)
        .await
        .map_err(|e| format!("h2 request: {e}"))?;
    expect_ok(response).await?;

    let io = TokioIo::new(TcpStream::connect(addr).await.map_err(|e| e.to_string())?);
    let (mut h1, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("h1 handshake: {e}"))?;
    tokio::spawn(conn);
    // hyper's low-level HTTP/1 client writes no `Host` of its own; RFC 9112 §3.2 needs one.
    let mut h1_request = request()?;
    h1_request.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?,
    );
    let response = h1
        .send_request(h1_request)
        .await
        .map_err(|e| format!("h1 request: {e}"))?;
    expect_ok(response).await
}

async fn expect_ok(response: http::Response<hyper::body::Incoming>) -> Result<(), String> {
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != http::StatusCode::OK || body.as_ref() != b"ok" {
        return Err(format!("legitimate request answered {status} {body:?}"));
    }
    Ok(())
}

/// A frame: 9-byte header (length, type, flags, stream id) and payload; the length sometimes
/// lies.
fn frame(
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
    wild: bool,
    rng: &mut StdRng,
) -> Vec<u8> {
    let len = if wild && rng.random_range(0..30) == 0 {
        rng.random_range(0..1 << 24)
    } else {
        payload.len() as u32
    };
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn stream_id(rng: &mut StdRng, next: u32) -> u32 {
    match rng.random_range(0..10) {
        0 => 0,
        1 => next + 1, // even: server-initiated
        2 => 0x7fff_ffff,
        3 => 0xffff_ffff, // reserved bit set
        4 if next > 2 => next - 2,
        _ => next,
    }
}

fn interesting_u32(rng: &mut StdRng) -> u32 {
    *[
        0,
        1,
        0x3fff,
        0x4000,
        0xffff,
        0x0001_0000,
        0x00ff_ffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
    ]
    .choose(rng)
    .unwrap_or(&0)
}

/// A SETTINGS payload; unless `wild`, every value is in its legal range (RFC 9113 §6.5.2).
fn settings(rng: &mut StdRng, wild: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.random_range(0..6) {
        let (id, value): (u16, u32) = if wild {
            let id = if rng.random_bool(0.8) {
                rng.random_range(1..=8)
            } else {
                rng.random()
            };
            let value = if rng.random_bool(0.5) {
                interesting_u32(rng)
            } else {
                rng.random_range(0..100_000)
            };
            (id, value)
        } else {
            match rng.random_range(0..5) {
                0 => (1, rng.random_range(0..=65_536)),
                1 => (3, rng.random_range(0..=1000)),
                2 => (4, rng.random_range(0..=0x7fff_ffff)),
                3 => (5, rng.random_range(16_384..=0x00ff_ffff)),
                _ => (6, rng.random_range(0..=1 << 20)),
            }
        };
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
    out
}

/// HEADERS (maybe split into CONTINUATIONs), then maybe DATA, on `stream`.
fn request(rng: &mut StdRng, stream: u32, wild: bool, out: &mut Vec<u8>) {
    let block = header_block(rng, wild);
    let with_body = rng.random_bool(0.4);
    let mut flags = if with_body { 0 } else { 0x1 };
    let mut payload = Vec::new();
    if rng.random_range(0..8) == 0 {
        flags |= 0x20; // PRIORITY
        payload.extend_from_slice(&rng.random::<u32>().to_be_bytes());
        payload.push(rng.random());
    }
    let split = rng.random_range(0..6) == 0 && block.len() > 1;
    let cut = if split {
        rng.random_range(1..block.len())
    } else {
        block.len()
    };
    payload.extend_from_slice(&block[..cut]);
    if !split {
        flags |= 0x4; // END_HEADERS
    }
    if rng.random_range(0..10) == 0 {
        flags |= 0x8; // PADDED: pad length first, padding last
        let pad: u8 = rng.random();
        payload.insert(0, pad);
        payload.extend(std::iter::repeat_n(0, usize::from(pad)));
    }
    out.extend(frame(1, flags, stream, &payload, wild, rng));
    if split {
        out.extend(frame(9, 0x4, stream, &block[cut..], wild, rng));
    }
    if with_body {
        for i in 0..rng.random_range(1..4) {
            let size = *[0usize, 1, 100, 16_384, 70_000].choose(rng).unwrap_or(&1);
            let data = vec![b'x'; size];
            let end = if i == 0 && rng.random_bool(0.5) {
                0x1
            } else {
                0
            };
            out.extend(frame(0, end, stream, &data, wild, rng));
        }
    }
}

fn odd_frame(rng: &mut StdRng, stream: u32) -> Vec<u8> {
    let flags: u8 = if rng.random_bool(0.5) {
        0
    } else {
        rng.random()
    };
    let (kind, payload): (u8, Vec<u8>) = match rng.random_range(0..11) {
        0 => (0, vec![b'd'; rng.random_range(0..100)]),
        1 => (2, rng.random::<[u8; 5]>().to_vec()),
        2 => (3, interesting_u32(rng).to_be_bytes().to_vec()),
        3 => (4, settings(rng, true)),
        4 => (5, {
            let mut p = stream.wrapping_add(1).to_be_bytes().to_vec();
            p.extend(header_block(rng, true));
            p
        }),
        5 => (6, rng.random::<[u8; 8]>().to_vec()),
        6 => (7, {
            let mut p = interesting_u32(rng).to_be_bytes().to_vec();
            p.extend(interesting_u32(rng).to_be_bytes());
            p.extend(b"debug");
            p
        }),
        7 => (8, interesting_u32(rng).to_be_bytes().to_vec()),
        8 => (9, header_block(rng, true)),
        9 => (rng.random_range(10..=255), vec![0; rng.random_range(0..20)]),
        _ => (
            rng.random_range(0..10),
            (0..rng.random_range(0..12)).map(|_| rng.random()).collect(),
        ),
    };
    frame(kind, flags, stream, &payload, true, rng)
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); sometimes overlong when `wild`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: u64, wild: bool, rng: &mut StdRng) {
    let max = (1u64 << n) - 1;
    if v < max && (!wild || rng.random_range(0..40) != 0) {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v = v.saturating_sub(max);
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

fn hpack_str(out: &mut Vec<u8>, s: &[u8], wild: bool, rng: &mut StdRng) {
    // Huffman flag on raw bytes now and then: undecodable Huffman.
    let huffman = if wild && rng.random_range(0..30) == 0 {
        0x80
    } else {
        0
    };
    hpack_int(out, huffman, 7, s.len() as u64, wild, rng);
    out.extend_from_slice(s);
}

const NAMES: [&str; 24] = [
    "content-length",
    "content-type",
    "te",
    "connection",
    "Upper-Case",
    "host",
    "x-tenant",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-parentspanid",
    "x-request-id",
    "x-envoy-peer-metadata",
    "x-envoy-peer-metadata-id",
    "grpc-timeout",
    "content-type",
    "cookie",
    "x-forwarded-for",
    "authorization",
    "",
    ":unknown",
];

const VALUES: [&str; 22] = [
    "",
    "0",
    "-1",
    "18446744073709551616",
    "trailers",
    "keep-alive",
    "application/grpc",
    "evil",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-00000000000000000000000000000000-0000000000000000-01",
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d",
    "ChwKDkFQUF9DT05UQUlORVJTEgoaCHJldmlld3M=",
    "!!!notbase64",
    "1S",
    "99999999999H",
    "10.0.0.1, 10.0.0.2",
    "a\u{0}b",
    "\u{202e}",
    "/%2e%2e/admin",
    "d2hhdGV2ZXI=",
];

const PATHS: [&str; 14] = [
    "/ok",
    "/echo",
    "/admin",
    "/admin/x",
    "/ADMIN",
    "//admin",
    "/./admin",
    "/ok/../admin",
    "/%61dmin",
    "/ok?x=/admin",
    "*",
    "",
    "ok",
    "/ok#frag",
];

/// A header block; unless `wild`, a well-formed request (legal names, literal encodings) whose
/// paths and values are still odd.
fn header_block(rng: &mut StdRng, wild: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if wild && rng.random_range(0..20) == 0 {
        // Dynamic table size update, possibly above the limit.
        hpack_int(
            &mut out,
            0x20,
            5,
            u64::from(interesting_u32(rng)),
            wild,
            rng,
        );
    }
    let methods: &[&str] = if wild {
        &["GET", "POST", "CONNECT", "HEAD", "get", ""]
    } else {
        &["GET", "POST", "HEAD"]
    };
    let method = *methods.choose(rng).unwrap_or(&"GET");
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b":method".to_vec(), method.as_bytes().to_vec()),
        (b":scheme".to_vec(), b"http".to_vec()),
        (
            b":path".to_vec(),
            PATHS.choose(rng).unwrap_or(&"/").as_bytes().to_vec(),
        ),
        (b":authority".to_vec(), b"reviews:9080".to_vec()),
    ];
    for _ in 0..rng.random_range(0..6) {
        let name = NAMES.choose(rng).unwrap_or(&"x");
        if !wild && !legal_name(name) {
            continue;
        }
        let name = name.as_bytes().to_vec();
        let value = match rng.random_range(0..10) {
            0 => vec![b'v'; rng.random_range(1000..40_000)],
            1 => (0..rng.random_range(0..40)).map(|_| rng.random()).collect(),
            _ => VALUES.choose(rng).unwrap_or(&"").as_bytes().to_vec(),
        };
        fields.push((name, value));
    }
    match if wild { rng.random_range(0..10) } else { 9 } {
        0 => {
            fields.remove(rng.random_range(0..fields.len()));
        }
        1 => {
            let i = rng.random_range(0..fields.len());
            let j = rng.random_range(0..fields.len());
            fields.swap(i, j);
        }
        2 => {
            let i = rng.random_range(0..fields.len());
            fields.push(fields[i].clone());
        }
        3 => {
            for _ in 0..rng.random_range(100..2000) {
                fields.push((b"x-many".to_vec(), b"1".to_vec()));
            }
        }
        _ => {}
    }
    for (name, value) in fields {
        match if wild {
            rng.random_range(0..10)
        } else {
            rng.random_range(2..10)
        } {
            0 => {
                // Indexed field: static table (1..=61), dynamic or invalid indices.
                let idx = *[0u64, 2, 3, 4, 5, 61, 62, 70, 1000]
                    .choose(rng)
                    .unwrap_or(&2);
                hpack_int(&mut out, 0x80, 7, idx, wild, rng);
            }
            1 => {
                // Literal with indexed name 1..=61.
                hpack_int(&mut out, 0x00, 4, rng.random_range(0..=70), wild, rng);
                hpack_str(&mut out, &value, wild, rng);
            }
            n => {
                // Literal with a new name: with incremental indexing, without, never indexed.
                let first = [0x40, 0x00, 0x10][n as usize % 3];
                out.push(first);
                hpack_str(&mut out, &name, wild, rng);
                hpack_str(&mut out, &value, wild, rng);
            }
        }
    }
    out
}

/// A regular header name HTTP/2 allows (RFC 9113 §8.2): lowercase, not connection-specific.
fn legal_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(':')
        && !name.bytes().any(|b| b.is_ascii_uppercase())
        && !["connection", "te", "host"].contains(&name)
}

fn http1(rng: &mut StdRng) -> Vec<u8> {
    let path = PATHS.choose(rng).unwrap_or(&"/");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: reviews\r\n");
    for _ in 0..rng.random_range(0..4) {
        let name = NAMES.choose(rng).unwrap_or(&"x");
        let value = VALUES.choose(rng).unwrap_or(&"");
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    if rng.random_bool(0.5) {
        mutate_bytes(
            rng,
            &mut out,
            &[b"\r\n".to_vec(), b"Transfer-Encoding: chunked\r\n".to_vec()],
            None,
        );
    }
    out
}
