//! The label set of one request, with every value drawn from a bounded set.
//!
//! A metric series exists per distinct label set, so one unbounded label (a raw path, an
//! authority typed by a client, a workload name made up by a peer) turns a metrics backend into
//! a memory leak. The rules here keep every value bounded:
//!
//! - a fact not known is `unknown` (Istio's convention);
//! - `response_code` is the numeric status (100–999), or `0` when no response was sent;
//! - `destination_service*` come only from the chosen cluster's service, never the authority;
//! - names, namespaces, apps, versions, clusters and principals must be short and made of
//!   `[A-Za-z0-9._-]` (principals also `/` and `:`): anything else is `unknown`.

use std::fmt::Write as _;

use super::names::{LABEL_COUNT, LABEL_NAMES, UNKNOWN};
use super::record::{PeerWorkload, RequestProtocol, RequestRecord};

/// Longest accepted workload name, namespace, app, version or cluster: a Kubernetes label value.
pub const MAX_NAME_LEN: usize = 63;
/// Longest accepted service host or principal.
pub const MAX_PRINCIPAL_LEN: usize = 253;

/// The labels of the standard request metrics for one request, in [`LABEL_NAMES`] order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    values: [String; LABEL_COUNT],
}

impl RequestLabels {
    /// `(name, value)` pairs in Istio's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        LABEL_NAMES
            .iter()
            .copied()
            .zip(self.values.iter().map(String::as_str))
    }

    /// The value of the label `name`, if it is one of [`LABEL_NAMES`].
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// A copy in which every value a peer could choose (its workload, namespace, app, version,
    /// canonical names, cluster and principal) is `unknown`. Used when too many distinct label
    /// sets have been seen, so a misbehaving peer cannot create unbounded series.
    pub fn without_peer_values(&self) -> Self {
        let mut out = self.clone();
        for (i, name) in LABEL_NAMES.iter().enumerate() {
            let peer_chosen = (name.starts_with("source_") || name.starts_with("destination_"))
                && !name.starts_with("destination_service");
            if peer_chosen {
                out.values[i] = UNKNOWN.to_owned();
            }
        }
        out
    }
}

/// Computes the bounded label set of a request.
///
/// A pure function of the facts [`LabelKey`](super::LabelKey) holds: read a new record field
/// here only after making it part of that key.
pub fn request_labels(r: &RequestRecord) -> RequestLabels {
    let (svc, svc_name, svc_ns) = match &r.destination_service {
        Some(key) if valid(&key.host, MAX_PRINCIPAL_LEN, false) => {
            let short = short_name(&key.host, &key.namespace);
            (
                key.host.clone(),
                bounded_name(Some(short)),
                bounded_name(Some(&key.namespace)),
            )
        }
        _ => (UNKNOWN.to_owned(), UNKNOWN.to_owned(), UNKNOWN.to_owned()),
    };
    let src = workload_values(&r.source);
    let dst = workload_values(&r.destination);
    let [s_name, s_cs, s_cr, s_ns, s_app, s_ver, s_cluster] = src;
    let [d_name, d_cs, d_cr, d_ns, d_app, d_ver, d_cluster] = dst;
    RequestLabels {
        values: [
            r.reporter.as_str().to_owned(),
            s_name,
            s_cs,
            s_cr,
            s_ns,
            principal(r.source_principal.as_deref()),
            s_app,
            s_ver,
            s_cluster,
            d_name,
            d_ns,
            principal(r.destination_principal.as_deref()),
            d_app,
            d_ver,
            svc,
            d_cs,
            d_cr,
            svc_name,
            svc_ns,
            d_cluster,
            r.protocol.as_str().to_owned(),
            response_code(r.response_code),
            grpc_status(r.protocol, r.grpc_status),
            response_flags(r),
            r.security.as_str().to_owned(),
        ],
    }
}

/// `[name, canonical service, canonical revision, namespace, app, version, cluster]`.
fn workload_values(w: &PeerWorkload) -> [String; 7] {
    [
        bounded_name(w.name.as_deref()),
        bounded_name(w.canonical_service.as_deref()),
        bounded_name(w.canonical_revision.as_deref()),
        bounded_name(w.namespace.as_deref()),
        bounded_name(w.app.as_deref()),
        bounded_name(w.version.as_deref()),
        bounded_name(w.cluster.as_deref()),
    ]
}

/// A name-like value, or `unknown` if absent, too long or not `[A-Za-z0-9._-]`.
pub fn bounded_name(v: Option<&str>) -> String {
    bounded_str(v).to_owned()
}

/// [`bounded_name`], borrowed: for lookups that need the value but not an owned copy.
pub fn bounded_str(v: Option<&str>) -> &str {
    match v {
        Some(v) if valid(v, MAX_NAME_LEN, false) => v,
        _ => UNKNOWN,
    }
}

/// A principal as Istio labels it (`spiffe://td/ns/x/sa/y`), or `unknown`.
fn principal(v: Option<&str>) -> String {
    let Some(v) = v else {
        return UNKNOWN.to_owned();
    };
    let bare = v.strip_prefix("spiffe://").unwrap_or(v);
    if valid(bare, MAX_PRINCIPAL_LEN, true) {
        format!("spiffe://{bare}")
    } else {
        UNKNOWN.to_owned()
    }
}

fn valid(v: &str, max: usize, principal: bool) -> bool {
    !v.is_empty()
        && v.len() <= max
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'-' | b'_')
                || (principal && matches!(b, b'/' | b':'))
        })
}

/// `reviews` for `reviews.default.svc.cluster.local` in `default`; other hosts (ServiceEntry
/// names such as `api.example.com`) are their own short name, as Istio reports them.
fn short_name<'a>(host: &'a str, namespace: &str) -> &'a str {
    match host.split_once('.') {
        Some((name, rest))
            if rest
                .strip_prefix(namespace)
                .is_some_and(|r| r.starts_with(".svc")) =>
        {
            name
        }
        _ => host,
    }
}

fn response_code(code: Option<u16>) -> String {
    match code {
        Some(c @ 100..=999) => c.to_string(),
        _ => "0".to_owned(),
    }
}

/// The numeric gRPC status for gRPC requests (`unknown` when none arrived, e.g. a reset); empty
/// for plain HTTP, as Istio reports it.
fn grpc_status(protocol: RequestProtocol, status: Option<i32>) -> String {
    match (protocol, status) {
        (RequestProtocol::Http, _) => String::new(),
        (RequestProtocol::Grpc, Some(s @ 0..=16)) => s.to_string(),
        (RequestProtocol::Grpc, _) => UNKNOWN.to_owned(),
    }
}

/// Envoy's form: codes joined by `,`, or `-` when none.
fn response_flags(r: &RequestRecord) -> String {
    if r.response_flags.is_empty() {
        return "-".to_owned();
    }
    let mut out = String::new();
    for (i, f) in r.response_flags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{f}");
    }
    out
}
