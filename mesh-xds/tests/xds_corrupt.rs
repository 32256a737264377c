//! No panic on what a control plane sends: every resource of a config that uses every feature
//! (and the inbound listeners), corrupted byte by byte with a seeded generator, either fails to
//! decode, is refused with an error, or becomes a snapshot whose clusters a balancer can be
//! built for or refuses with an error.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::path::Path;

use mesh_core::balance::{Balancer, ClientLocality, ClusterState};
use mesh_core::model::SnapshotSource;
use mesh_core::{BuildContext, Workload, istio};
use mesh_xds::translate::{
    Decoded, NodeKind, XdsResources, assemble, decode_cluster, decode_listener,
    decode_load_assignment, decode_route_configuration, inbound_listener_for, to_resources,
};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// `bytes` with up to four bytes overwritten, and sometimes cut short.
fn corrupt(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return out;
    }
    for _ in 0..rng.random_range(1..=4) {
        let i = rng.random_range(0..out.len());
        out[i] = rng.random();
    }
    if rng.random_bool(0.1) {
        out.truncate(rng.random_range(0..out.len()));
    }
    out
}

#[test]
fn corrupted_resources_never_panic() {
    let ctx = BuildContext {
        workload: Workload::new("shop", "frontend"),
        ..Default::default()
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rich.yaml");
    let snapshot = istio::load_paths(&[fixture], &ctx).unwrap();
    let mut rng = StdRng::seed_from_u64(0x6d65_7368);
    let (mut decoded, mut refused, mut undecodable) = (0, 0, 0);
    for node in [NodeKind::Envoy, NodeKind::ProxylessGrpc] {
        let mut r = to_resources(&snapshot, node);
        for name in [
            "xds.istio.io/grpc/lds/inbound/0.0.0.0:8080",
            "xds.istio.io/grpc/lds/inbound/[::]:9090",
        ] {
            r.listeners
                .push(inbound_listener_for(&snapshot.inbound, name, node).unwrap());
        }
        for _ in 0..250 {
            let mut good = XdsResources::default();
            for l in &r.listeners {
                match prost::Message::decode(corrupt(&l.encode_to_vec(), &mut rng).as_slice()) {
                    Ok(l) => match decode_listener(&l) {
                        Ok(_) => good.listeners.push(l),
                        Err(_) => refused += 1,
                    },
                    Err(_) => undecodable += 1,
                }
            }
            for rc in &r.route_configurations {
                match prost::Message::decode(corrupt(&rc.encode_to_vec(), &mut rng).as_slice()) {
                    Ok(rc) => match decode_route_configuration(&rc) {
                        Ok(_) => good.route_configurations.push(rc),
                        Err(_) => refused += 1,
                    },
                    Err(_) => undecodable += 1,
                }
            }
            for c in &r.clusters {
                match prost::Message::decode(corrupt(&c.encode_to_vec(), &mut rng).as_slice()) {
                    Ok(c) => match decode_cluster(&c) {
                        Ok(_) => good.clusters.push(c),
                        Err(_) => refused += 1,
                    },
                    Err(_) => undecodable += 1,
                }
            }
            for e in &r.load_assignments {
                match prost::Message::decode(corrupt(&e.encode_to_vec(), &mut rng).as_slice()) {
                    Ok(e) => match decode_load_assignment(&e) {
                        Ok(_) => good.load_assignments.push(e),
                        Err(_) => refused += 1,
                    },
                    Err(_) => undecodable += 1,
                }
            }
            // Names may now collide; a set that still decodes whole becomes a snapshot.
            let Ok(set) = Decoded::from_resources(&good) else {
                continue;
            };
            decoded += 1;
            let s = assemble(&set, "1".into(), SnapshotSource::Static);
            for cluster in s.clusters.values() {
                let now = Instant::now();
                let state = ClusterState::new(cluster.name.clone(), now);
                let _ = Balancer::new(cluster, &state, &ClientLocality::default(), now);
            }
        }
    }
    // The corruption reaches every outcome, so the test exercises the decoders, not just prost.
    assert!(
        decoded > 0 && refused > 0 && undecodable > 0,
        "{decoded} {refused} {undecodable}"
    );
}
