//! An EDS update of 10,000 endpoints, from wire bytes to a swapped-in snapshot: protobuf decode,
//! validation and translation of the assignment, assembly of the snapshot, `Mesh::apply`.
//!
//! Target (issue 7): under 20 ms. Run: `cargo bench -p mesh-benches --bench xds_eds`.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use mesh_core::model::SnapshotSource;
use mesh_core::{BuildContext, Mesh, istio};
use mesh_xds::translate::{Decoded, NodeKind, assemble, decode_load_assignment, to_resources};
use prost::Message;

const SERVICE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: big, namespace: default}
spec:
  hosts: [big.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {app: big}}]
";

fn assignment(n: u32) -> Vec<u8> {
    let ctx = BuildContext::default();
    let snapshot = istio::load_str("big.yaml", SERVICE, &ctx).expect("valid");
    let mut cla = to_resources(&snapshot, NodeKind::ProxylessGrpc)
        .load_assignments
        .remove(0);
    let group = &mut cla.endpoints[0];
    let template = group.lb_endpoints[0].clone();
    group.lb_endpoints = (0..n)
        .map(|i| {
            let mut e = template.clone();
            let socket = match &mut e.host_identifier {
                Some(HostIdentifier::Endpoint(ep)) => {
                    ep.address.as_mut().and_then(|a| a.address.as_mut())
                }
                _ => None,
            };
            if let Some(Address::SocketAddress(s)) = socket {
                s.address = format!("10.{}.{}.{}", i >> 16 & 0xff, i >> 8 & 0xff, i & 0xff);
            }
            e
        })
        .collect();
    cla.encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let ctx = BuildContext::default();
    let snapshot = istio::load_str("big.yaml", SERVICE, &ctx).expect("valid");
    let resources = to_resources(&snapshot, NodeKind::ProxylessGrpc);
    let base = Decoded::from_resources(&resources).expect("valid");
    let mesh = Mesh::from_snapshot(ctx, snapshot);
    let bytes = assignment(10_000);
    let mut version = 0u64;
    c.bench_function("eds_update_10000_endpoints", |b| {
        b.iter_batched(
            || base.clone(),
            |mut decoded| {
                let cla = ClusterLoadAssignment::decode(bytes.as_slice()).expect("decodes");
                let endpoints = decode_load_assignment(&cla).expect("valid");
                decoded.endpoints.insert(endpoints.name.clone(), endpoints);
                version += 1;
                let snapshot = assemble(&decoded, version.to_string(), SnapshotSource::Static);
                black_box(mesh.apply(snapshot))
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
