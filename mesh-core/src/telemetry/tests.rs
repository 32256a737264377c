use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use proptest::prelude::*;
use prost::Message as _;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

use super::names::{BYTES_BUCKETS, DURATION_BUCKETS_MS, LABEL_NAMES};
use super::*;
use crate::Workload;
use crate::model::{ClusterName, ServiceKey};

fn frontend() -> Workload {
    Workload::new("shop", "frontend").labels([("app", "frontend"), ("version", "v1")])
}

fn record() -> RequestRecord {
    let mut r = RequestRecord::new(Reporter::Source, SystemTime::UNIX_EPOCH);
    r.duration = Duration::from_millis(12);
    r.method = "GET".into();
    r.path = "/reviews/1?x=1".into();
    r.authority = "reviews:9080".into();
    r.response_code = Some(200);
    r.source = PeerWorkload::from_workload(&frontend(), "Kubernetes");
    r.destination_service = Some(ServiceKey {
        host: "reviews.shop.svc.cluster.local".into(),
        namespace: "shop".into(),
        port: 9080,
        subset: Some("v1".into()),
    });
    r.upstream_cluster = Some(ClusterName::outbound(
        "reviews.shop.svc.cluster.local",
        9080,
        Some("v1"),
    ));
    r
}

#[test]
fn label_names_are_istios() {
    assert_eq!(LABEL_NAMES.len(), 25);
    for required in [
        "reporter",
        "source_workload",
        "source_workload_namespace",
        "source_principal",
        "source_app",
        "source_version",
        "source_cluster",
        "destination_workload",
        "destination_workload_namespace",
        "destination_principal",
        "destination_app",
        "destination_version",
        "destination_service",
        "destination_service_name",
        "destination_service_namespace",
        "destination_cluster",
        "request_protocol",
        "response_code",
        "grpc_response_status",
        "response_flags",
        "connection_security_policy",
    ] {
        assert!(LABEL_NAMES.contains(&required), "{required}");
    }
    assert_eq!(DURATION_BUCKETS_MS.first(), Some(&0.5));
    assert_eq!(DURATION_BUCKETS_MS.last(), Some(&3_600_000.0));
    // Istio's size histograms have Envoy's default buckets, as its duration one does
    // (envoy histogram_impl.cc `HistogramSettingsImpl::defaultBuckets`).
    assert_eq!(BYTES_BUCKETS, DURATION_BUCKETS_MS);
    assert!(DURATION_BUCKETS_MS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn labels_of_a_source_report() {
    let l = request_labels(&record());
    assert_eq!(l.iter().count(), 25);
    assert_eq!(l.get("reporter"), Some("source"));
    assert_eq!(l.get("source_workload"), Some("frontend"));
    assert_eq!(l.get("source_workload_namespace"), Some("shop"));
    assert_eq!(l.get("source_app"), Some("frontend"));
    assert_eq!(l.get("source_version"), Some("v1"));
    assert_eq!(l.get("source_canonical_service"), Some("frontend"));
    assert_eq!(l.get("source_canonical_revision"), Some("v1"));
    assert_eq!(l.get("source_cluster"), Some("Kubernetes"));
    assert_eq!(l.get("source_principal"), Some("unknown"));
    assert_eq!(l.get("destination_workload"), Some("unknown"));
    assert_eq!(
        l.get("destination_service"),
        Some("reviews.shop.svc.cluster.local")
    );
    assert_eq!(l.get("destination_service_name"), Some("reviews"));
    assert_eq!(l.get("destination_service_namespace"), Some("shop"));
    assert_eq!(l.get("request_protocol"), Some("http"));
    assert_eq!(l.get("response_code"), Some("200"));
    assert_eq!(l.get("grpc_response_status"), Some(""));
    assert_eq!(l.get("response_flags"), Some("-"));
    assert_eq!(l.get("connection_security_policy"), Some("unknown"));
    assert_eq!(l.get("no_such_label"), None);
}

#[test]
fn raw_path_and_authority_never_reach_labels() {
    let mut a = record();
    let mut b = record();
    a.path = "/a/1".into();
    a.authority = "evil-1.example".into();
    b.path = "/zzz/2?q".into();
    b.authority = "reviews.shop:9080".into();
    assert_eq!(request_labels(&a), request_labels(&b));
    // Without a cluster there is no service: unknown, not the authority.
    a.destination_service = None;
    let l = request_labels(&a);
    assert_eq!(l.get("destination_service"), Some("unknown"));
    assert_eq!(l.get("destination_service_name"), Some("unknown"));
}

#[test]
fn bounded_values() {
    let mut r = record();
    r.response_code = None;
    r.protocol = RequestProtocol::Grpc;
    r.grpc_status = Some(99);
    r.response_flags = vec![
        ResponseFlag::UpstreamConnectionFailure,
        ResponseFlag::UpstreamRetryLimitExceeded,
    ];
    r.source.name = Some("x".repeat(64));
    r.source.app = Some("bad value".into());
    r.source.version = Some("v1\n".into());
    r.source_principal = Some("cluster.local/ns/shop/sa/frontend".into());
    r.destination_principal = Some("spiffe://cluster.local/ns/a b".into());
    r.security = SecurityPolicy::MutualTls;
    let l = request_labels(&r);
    assert_eq!(l.get("response_code"), Some("0"));
    assert_eq!(l.get("grpc_response_status"), Some("unknown"));
    assert_eq!(l.get("response_flags"), Some("UF,URX"));
    assert_eq!(l.get("source_workload"), Some("unknown"));
    assert_eq!(l.get("source_app"), Some("unknown"));
    assert_eq!(l.get("source_version"), Some("unknown"));
    assert_eq!(
        l.get("source_principal"),
        Some("spiffe://cluster.local/ns/shop/sa/frontend")
    );
    assert_eq!(l.get("destination_principal"), Some("unknown"));
    assert_eq!(l.get("connection_security_policy"), Some("mutual_tls"));
    r.grpc_status = Some(14);
    assert_eq!(request_labels(&r).get("grpc_response_status"), Some("14"));
}

#[test]
fn service_entry_hosts_are_their_own_short_name() {
    let mut r = record();
    r.destination_service = Some(ServiceKey {
        host: "api.example.com".into(),
        namespace: "shop".into(),
        port: 443,
        subset: None,
    });
    assert_eq!(
        request_labels(&r).get("destination_service_name"),
        Some("api.example.com")
    );
}

#[test]
fn without_peer_values_keeps_service_and_status() {
    let l = request_labels(&record()).without_peer_values();
    assert_eq!(l.get("source_workload"), Some("unknown"));
    assert_eq!(l.get("source_app"), Some("unknown"));
    assert_eq!(l.get("destination_service_name"), Some("reviews"));
    assert_eq!(l.get("response_code"), Some("200"));
    assert_eq!(l.get("reporter"), Some("source"));
}

#[test]
fn errors_are_5xx_no_response_or_server_grpc_codes() {
    let mut r = record();
    assert!(!r.is_error());
    r.response_code = Some(503);
    assert!(r.is_error());
    r.response_code = None;
    assert!(r.is_error());
    r.response_code = Some(200);
    r.protocol = RequestProtocol::Grpc;
    r.grpc_status = Some(5);
    assert!(!r.is_error());
    r.grpc_status = Some(14);
    assert!(r.is_error());
}

#[test]
fn peer_metadata_round_trips() {
    let mut md = PeerMetadata::from_workload(&frontend(), "Kubernetes");
    md.labels
        .insert(CANONICAL_NAME_LABEL.into(), "shop-frontend".into());
    let header = md.encode();
    assert!(header.len() < MAX_ENCODED_LEN);
    let back = PeerMetadata::decode(header.as_bytes()).unwrap();
    assert_eq!(back, md);
    let w = back.workload();
    assert_eq!(w.name.as_deref(), Some("frontend"));
    assert_eq!(w.namespace.as_deref(), Some("shop"));
    assert_eq!(w.app.as_deref(), Some("frontend"));
    assert_eq!(w.version.as_deref(), Some("v1"));
    assert_eq!(w.canonical_service.as_deref(), Some("shop-frontend"));
    assert_eq!(w.cluster.as_deref(), Some("Kubernetes"));
    assert_eq!(
        md.id("cluster.local"),
        "sidecar~0.0.0.0~frontend.shop~shop.svc.cluster.local"
    );
}

/// A Struct shaped like the one Envoy's metadata exchange sends: extra keys, non-string values
/// (lists, numbers, nested structs) where mesh expects none.
#[test]
fn decodes_an_envoy_shaped_struct() {
    let s = |v: &str| Value {
        kind: Some(Kind::StringValue(v.into())),
    };
    let mut labels = BTreeMap::new();
    labels.insert("app".to_owned(), s("reviews"));
    labels.insert("version".to_owned(), s("v2"));
    labels.insert(
        "weird".to_owned(),
        Value {
            kind: Some(Kind::NumberValue(1.0)),
        },
    );
    let mut fields = BTreeMap::new();
    fields.insert("NAME".to_owned(), s("reviews-v2-5d8f7c-abcde"));
    fields.insert("NAMESPACE".to_owned(), s("default"));
    fields.insert("WORKLOAD_NAME".to_owned(), s("reviews-v2"));
    fields.insert("CLUSTER_ID".to_owned(), s("Kubernetes"));
    fields.insert("APP_CONTAINERS".to_owned(), s("reviews"));
    fields.insert(
        "INSTANCE_IPS".to_owned(),
        Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![s("10.0.0.7")],
            })),
        },
    );
    fields.insert(
        "MESH_ID".to_owned(),
        Value {
            kind: Some(Kind::BoolValue(true)),
        },
    );
    fields.insert(
        "LABELS".to_owned(),
        Value {
            kind: Some(Kind::StructValue(Struct { fields: labels })),
        },
    );
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(Struct { fields }.encode_to_vec());
    let md = PeerMetadata::decode(encoded.as_bytes()).unwrap();
    assert_eq!(md.workload_name, "reviews-v2");
    assert_eq!(md.name, "reviews-v2-5d8f7c-abcde");
    assert_eq!(md.app_containers, "reviews");
    assert_eq!(md.mesh_id, "", "a non-string value is ignored");
    assert_eq!(md.labels.len(), 2);
    let w = md.workload();
    assert_eq!(w.name.as_deref(), Some("reviews-v2"));
    assert_eq!(w.version.as_deref(), Some("v2"));
}

#[test]
fn peer_metadata_refuses_garbage() {
    assert!(matches!(
        PeerMetadata::decode(b"not base64 at all!"),
        Err(PeerMetadataError::Base64(_))
    ));
    let junk = base64::engine::general_purpose::STANDARD.encode([0xff, 0xff, 0xff, 0x0f, 0x01]);
    assert!(matches!(
        PeerMetadata::decode(junk.as_bytes()),
        Err(PeerMetadataError::Protobuf(_))
    ));
    let long = vec![b'A'; MAX_ENCODED_LEN + 4];
    assert_eq!(
        PeerMetadata::decode(&long),
        Err(PeerMetadataError::TooLong(MAX_ENCODED_LEN + 4))
    );
    // Valid encoding, hostile values: decoded, then kept out of labels.
    let mut md = PeerMetadata::from_workload(&frontend(), "Kubernetes");
    md.workload_name = "x".repeat(300);
    md.labels.insert("app".into(), "<script>".into());
    let w = PeerMetadata::decode(md.encode().as_bytes())
        .unwrap()
        .workload();
    assert_eq!(w.name, None);
    assert_eq!(w.app, None);
    assert_eq!(w.version.as_deref(), Some("v1"));
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = PeerMetadata::decode(&bytes);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let _ = PeerMetadata::decode(b64.as_bytes()).map(|m| m.workload());
    }

    #[test]
    fn label_values_are_always_bounded(name in ".{0,100}", app in ".{0,100}", code in any::<u16>()) {
        let mut r = record();
        r.source.name = Some(name);
        r.destination.app = Some(app);
        r.response_code = Some(code);
        let l = request_labels(&r);
        for (k, v) in l.iter() {
            prop_assert!(v.len() <= MAX_PRINCIPAL_LEN + 9, "{k}");
            prop_assert!(v.bytes().all(|b| b.is_ascii_graphic()), "{k}={v:?}");
        }
        let code = l.get("response_code").unwrap();
        prop_assert!(code == "0" || (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())));
    }
}

fn same_key_hash(a: &RequestRecord, b: &RequestRecord) -> bool {
    use std::hash::BuildHasher;
    let s = std::hash::RandomState::new();
    let hash = |r: &RequestRecord| {
        let mut h = s.build_hasher();
        LabelKey::hash_record(r, &mut h);
        std::hash::Hasher::finish(&h)
    };
    hash(a) == hash(b)
}

/// Facts that are not labels (path, authority, timing, sizes, ids, the cluster's port and
/// subset) leave the key alone; every fact a label is computed from changes it.
#[test]
fn label_key_holds_exactly_the_label_facts() {
    let base = record();
    let key = LabelKey::of(&base);
    assert!(key.matches(&base));

    let mut same = base.clone();
    same.path = "/other?y=2".into();
    same.authority = "reviews.shop:9080".into();
    same.method = "POST".into();
    same.duration = Duration::from_secs(3);
    same.start = SystemTime::UNIX_EPOCH + Duration::from_secs(9);
    same.request_bytes = 7;
    same.response_bytes = 9;
    same.request_id = Some("id".into());
    same.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
    same.peer_address = Some("10.0.0.1:9080".into());
    same.upstream_cluster = None;
    if let Some(s) = &mut same.destination_service {
        s.port = 1;
        s.subset = None;
    }
    assert!(key.matches(&same));
    assert!(same_key_hash(&base, &same));
    assert_eq!(request_labels(&base), request_labels(&same));

    let changes: Vec<fn(&mut RequestRecord)> = vec![
        |r| r.reporter = Reporter::Destination,
        |r| r.source.name = Some("other".into()),
        |r| r.source.cluster = None,
        |r| r.source_principal = Some("spiffe://td/ns/shop/sa/a".into()),
        |r| r.destination.app = Some("reviews".into()),
        |r| r.destination_principal = Some("spiffe://td/ns/shop/sa/b".into()),
        |r| r.destination_service = None,
        |r| {
            if let Some(s) = &mut r.destination_service {
                s.namespace = "other".into();
            }
        },
        |r| {
            if let Some(s) = &mut r.destination_service {
                s.host = "ratings.shop.svc.cluster.local".into();
            }
        },
        |r| r.protocol = RequestProtocol::Grpc,
        |r| r.response_code = Some(503),
        |r| r.response_code = None,
        |r| r.grpc_status = Some(14),
        |r| r.response_flags.push(ResponseFlag::UpstreamRequestTimeout),
        |r| r.security = SecurityPolicy::MutualTls,
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut other = base.clone();
        change(&mut other);
        assert!(!key.matches(&other), "change {i} kept the key");
        assert!(LabelKey::of(&other).matches(&other), "change {i}");
    }
}
