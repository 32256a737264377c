//! The facts of a [`RequestRecord`] that its metric labels are computed from, so a recorder can
//! look a cached label set (or metric handles) up by the record itself, with no label strings
//! built on a hit.
//!
//! [`request_labels`](super::request_labels) is a pure function of these facts: two records
//! that [`LabelKey::matches`] have equal label sets. The request path hashes the record's facts
//! in place ([`LabelKey::hash_record`]) and compares them with a stored key; a key is built
//! (allocating) only when a new combination is first seen.

use std::hash::{Hash, Hasher};

use super::ResponseFlag;
use super::record::{PeerWorkload, Reporter, RequestProtocol, RequestRecord, SecurityPolicy};

/// An owned copy of the label-determining facts of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelKey {
    reporter: Reporter,
    source: PeerWorkload,
    source_principal: Option<String>,
    destination: PeerWorkload,
    destination_principal: Option<String>,
    /// `(host, namespace)` of the destination service: its port and subset are not labels.
    destination_service: Option<(String, String)>,
    protocol: RequestProtocol,
    response_code: Option<u16>,
    grpc_status: Option<i32>,
    response_flags: Vec<ResponseFlag>,
    security: SecurityPolicy,
}

/// The label-determining facts of a record, borrowed. Destructures [`RequestRecord`]
/// exhaustively, so a field added to the record must be classified here (label input or not)
/// before the crate compiles.
struct Facts<'a> {
    reporter: Reporter,
    source: &'a PeerWorkload,
    source_principal: Option<&'a str>,
    destination: &'a PeerWorkload,
    destination_principal: Option<&'a str>,
    destination_service: Option<(&'a str, &'a str)>,
    protocol: RequestProtocol,
    response_code: Option<u16>,
    grpc_status: Option<i32>,
    response_flags: &'a [ResponseFlag],
    security: SecurityPolicy,
}

impl<'a> Facts<'a> {
    fn of(r: &'a RequestRecord) -> Self {
        let RequestRecord {
            reporter,
            start: _,
            duration: _,
            method: _,
            path: _,
            authority: _,
            protocol,
            response_code,
            grpc_status,
            response_flags,
            request_bytes: _,
            response_bytes: _,
            source,
            source_principal,
            destination,
            destination_principal,
            destination_service,
            upstream_cluster: _,
            peer_address: _,
            security,
            request_id: _,
            trace_id: _,
            details: _,
        } = r;
        Self {
            reporter: *reporter,
            source,
            source_principal: source_principal.as_deref(),
            destination,
            destination_principal: destination_principal.as_deref(),
            destination_service: destination_service
                .as_ref()
                .map(|s| (s.host.as_str(), s.namespace.as_str())),
            protocol: *protocol,
            response_code: *response_code,
            grpc_status: *grpc_status,
            response_flags,
            security: *security,
        }
    }
}

impl LabelKey {
    /// The key of `r` (allocates: call it only when `r`'s labels are not cached).
    pub fn of(r: &RequestRecord) -> Self {
        let f = Facts::of(r);
        Self {
            reporter: f.reporter,
            source: f.source.clone(),
            source_principal: f.source_principal.map(str::to_owned),
            destination: f.destination.clone(),
            destination_principal: f.destination_principal.map(str::to_owned),
            destination_service: f
                .destination_service
                .map(|(h, n)| (h.to_owned(), n.to_owned())),
            protocol: f.protocol,
            response_code: f.response_code,
            grpc_status: f.grpc_status,
            response_flags: f.response_flags.to_vec(),
            security: f.security,
        }
    }

    /// Whether `r` has exactly these label-determining facts (and so the same labels).
    pub fn matches(&self, r: &RequestRecord) -> bool {
        let f = Facts::of(r);
        self.reporter == f.reporter
            && self.source == *f.source
            && self.source_principal.as_deref() == f.source_principal
            && self.destination == *f.destination
            && self.destination_principal.as_deref() == f.destination_principal
            && self
                .destination_service
                .as_ref()
                .map(|(h, n)| (h.as_str(), n.as_str()))
                == f.destination_service
            && self.protocol == f.protocol
            && self.response_code == f.response_code
            && self.grpc_status == f.grpc_status
            && self.response_flags == f.response_flags
            && self.security == f.security
    }

    /// Feeds `r`'s label-determining facts to `state`, without allocating. Records that
    /// [`match`](Self::matches) one key hash alike.
    pub fn hash_record<H: Hasher>(r: &RequestRecord, state: &mut H) {
        let f = Facts::of(r);
        f.reporter.hash(state);
        f.source.hash(state);
        f.source_principal.hash(state);
        f.destination.hash(state);
        f.destination_principal.hash(state);
        f.destination_service.hash(state);
        f.protocol.hash(state);
        f.response_code.hash(state);
        f.grpc_status.hash(state);
        f.response_flags.hash(state);
        f.security.hash(state);
    }
}
