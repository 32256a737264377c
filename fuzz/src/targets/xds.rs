//! xDS resources as a control plane sends them: decoded one by one, assembled into a snapshot
//! when the set still decodes, balanced, and encoded back.
//!
//! The seeds are the resources of `mesh-xds/tests/fixtures/rich.yaml` (the config of the xDS
//! corruption test, `mesh-xds/tests/xds_corrupt.rs`, which uses every feature) for an Envoy
//! sidecar and a proxyless gRPC client, plus the inbound listeners (mutual-TLS modes and RBAC)
//! of `fuzz/corpus/yaml/security.yaml`. An input is a [`frame`](crate::frame) of resources, each
//! a kind byte and its protobuf encoding. Mutations work on the protobuf wire format (drop,
//! duplicate or reorder fields; extreme varints; recurse into nested messages) or on bytes.

use std::collections::HashSet;

use mesh_core::balance::{Balancer, ClientLocality, ClusterState};
use mesh_core::model::SnapshotSource;
use mesh_core::{BuildContext, Workload, istio};
use mesh_xds::translate::{
    Decoded, NodeKind, XdsResources, assemble, decode_cluster, decode_listener,
    decode_load_assignment, decode_route_configuration, inbound_listener_for, to_resources,
};
use prost::Message;
use rand::Rng;
use rand::rngs::StdRng;

use super::SeedError;
use crate::corpus::workspace_root;
use crate::driver::Target;
use crate::frame;
use crate::mutate::mutate_bytes;
use crate::wire;

const LISTENER: u8 = 0;
const ROUTE: u8 = 1;
const CLUSTER: u8 = 2;
const ENDPOINTS: u8 = 3;

/// The `xds` target.
pub struct XdsTarget {
    /// Seed resource sets: `(kind, encoded)` per resource.
    sets: Vec<Vec<(u8, Vec<u8>)>>,
    /// The seed resources as input parts (kind byte, then the encoding).
    known: HashSet<Vec<u8>>,
}

impl XdsTarget {
    /// Builds the seed resources from the fixtures.
    pub fn new() -> Result<Self, SeedError> {
        let root = workspace_root();
        let rich = BuildContext {
            workload: Workload::new("shop", "frontend"),
            ..Default::default()
        };
        let rich = istio::load_paths(&[root.join("mesh-xds/tests/fixtures/rich.yaml")], &rich)
            .map_err(SeedError::from)?;
        let security = BuildContext {
            workload: Workload::new("default", "reviews").labels([("app", "reviews")]),
            ..Default::default()
        };
        let security = istio::load_paths(&[root.join("fuzz/corpus/yaml/security.yaml")], &security)
            .map_err(SeedError::from)?;
        let mut sets = Vec::new();
        for node in [NodeKind::Envoy, NodeKind::ProxylessGrpc] {
            let mut r = to_resources(&rich, node);
            for name in [
                "xds.istio.io/grpc/lds/inbound/0.0.0.0:9080",
                "xds.istio.io/grpc/lds/inbound/[::]:9090",
                "xds.istio.io/grpc/lds/inbound/0.0.0.0:9091",
            ] {
                let listener = inbound_listener_for(&security.inbound, name, node)
                    .ok_or_else(|| SeedError(format!("no inbound listener {name}")))?;
                r.listeners.push(listener);
            }
            sets.push(encode_set(&r));
        }
        let known = sets
            .iter()
            .flatten()
            .map(|(kind, bytes)| part(*kind, bytes))
            .collect();
        Ok(Self { sets, known })
    }
}

fn part(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut part = Vec::with_capacity(1 + bytes.len());
    part.push(kind);
    part.extend_from_slice(bytes);
    part
}

fn encode_set(r: &XdsResources) -> Vec<(u8, Vec<u8>)> {
    let mut set = Vec::new();
    set.extend(r.listeners.iter().map(|m| (LISTENER, m.encode_to_vec())));
    set.extend(
        r.route_configurations
            .iter()
            .map(|m| (ROUTE, m.encode_to_vec())),
    );
    set.extend(r.clusters.iter().map(|m| (CLUSTER, m.encode_to_vec())));
    set.extend(
        r.load_assignments
            .iter()
            .map(|m| (ENDPOINTS, m.encode_to_vec())),
    );
    set
}

impl Target for XdsTarget {
    fn name(&self) -> &'static str {
        "xds"
    }

    fn generate(&mut self, rng: &mut StdRng) -> Vec<u8> {
        let mut set = self.sets[rng.random_range(0..self.sets.len())].clone();
        // Usually a few resources change, sometimes many; sometimes one is repeated or lost.
        let n = if rng.random_bool(0.8) {
            rng.random_range(1..=3)
        } else {
            set.len()
        };
        for _ in 0..n {
            let i = rng.random_range(0..set.len());
            let (kind, bytes) = &mut set[i];
            if rng.random_bool(0.6) {
                wire::mutate(rng, bytes);
            } else {
                mutate_bytes(rng, bytes, &[], None);
            }
            if rng.random_range(0..20) == 0 {
                *kind = rng.random_range(0..4);
            }
        }
        match rng.random_range(0..10) {
            0 => {
                let i = rng.random_range(0..set.len());
                set.push(set[i].clone());
            }
            1 => {
                set.remove(rng.random_range(0..set.len()));
            }
            _ => {}
        }
        let parts: Vec<Vec<u8>> = set.iter().map(|(kind, bytes)| part(*kind, bytes)).collect();
        frame::encode(&parts)
    }

    fn execute(&mut self, input: &[u8]) -> Result<&'static str, String> {
        // As a client takes a response: each resource decoded on its own (a bad one is NACKed,
        // the good ones kept), then the good ones joined. Resources equal to a seed's are known
        // to decode and skip the first step.
        let mut good = XdsResources::default();
        let (mut undecodable, mut refused) = (false, false);
        for part in frame::decode(input) {
            let Some((&kind, bytes)) = part.split_first() else {
                continue;
            };
            let known = self.known.contains(part);
            let decoded = match kind % 4 {
                LISTENER => decode_into(bytes, known, &mut good.listeners, |m| {
                    decode_listener(m).is_ok()
                }),
                ROUTE => decode_into(bytes, known, &mut good.route_configurations, |m| {
                    decode_route_configuration(m).is_ok()
                }),
                CLUSTER => decode_into(bytes, known, &mut good.clusters, |m| {
                    decode_cluster(m).is_ok()
                }),
                _ => decode_into(bytes, known, &mut good.load_assignments, |m| {
                    decode_load_assignment(m).is_ok()
                }),
            };
            match decoded {
                None => undecodable = true,
                Some(false) => refused = true,
                Some(true) => {}
            }
        }
        let Ok(set) = Decoded::from_resources(&good) else {
            // Names may collide after mutation; the set is refused whole.
            return Ok("set refused");
        };
        let snapshot = assemble(&set, "1".into(), SnapshotSource::Static);
        let now = tokio::time::Instant::now();
        for cluster in snapshot.clusters.values() {
            let state = ClusterState::new(cluster.name.clone(), now);
            let _ = Balancer::new(cluster, &state, &ClientLocality::default(), now);
        }
        let node = match input.len() % 2 {
            0 => NodeKind::Envoy,
            _ => NodeKind::ProxylessGrpc,
        };
        let _ = to_resources(&snapshot, node);
        Ok(match (undecodable, refused) {
            (true, _) => "assembled (some undecodable)",
            (false, true) => "assembled (some refused)",
            (false, false) => "assembled (all good)",
        })
    }
}

/// Decodes `bytes` as `M`: `None` when prost cannot, else whether `check` accepts it (skipped
/// when `known`); kept in `into` when accepted.
fn decode_into<M: Message + Default>(
    bytes: &[u8],
    known: bool,
    into: &mut Vec<M>,
    check: impl Fn(&M) -> bool,
) -> Option<bool> {
    let m = M::decode(bytes).ok()?;
    let ok = known || check(&m);
    if ok {
        into.push(m);
    }
    Some(ok)
}
