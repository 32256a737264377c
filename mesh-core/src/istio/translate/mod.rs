//! From typed Istio resources to the model: services and clusters, route configurations, and
//! the inbound policy of this workload. Validation happens here too, with field paths, so every
//! problem of every resource is found in one pass.

mod authz;
mod clusters;
mod credentials;
mod delegate;
mod destination_rule;
mod export_to;
mod http;
mod order;
mod peer_authn;
mod routes;
pub(super) mod services;
mod sidecar;
mod traffic_policy;
mod virtual_service;

use std::collections::HashMap;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::decode::decode_spec;
use super::diag::{Diagnostics, Origin, Reporter};
use super::documents::{Kind, Metadata, RawResource};
use super::resources as r;
use crate::BuildContext;
use crate::config::ResourceRef;
use crate::model::{InboundPolicy, parse_duration};

/// A decoded resource.
#[derive(Debug)]
pub(crate) struct Item<T> {
    pub(crate) origin: Origin,
    pub(crate) resource: ResourceRef,
    pub(crate) metadata: Metadata,
    pub(crate) spec: T,
}

/// Parses a duration, reporting an error at `field`.
pub(crate) fn parse_duration_at(
    value: &str,
    field: &str,
    report: &mut Reporter<'_>,
) -> Option<Duration> {
    match parse_duration(value) {
        Ok(d) => Some(d),
        Err(e) => {
            report.error(field, e.to_string());
            None
        }
    }
}

/// All decoded resources by kind, in reading order.
#[derive(Debug, Default)]
struct Decoded {
    service_entries: Vec<Item<r::ServiceEntrySpec>>,
    workload_entries: Vec<Item<r::WorkloadEntrySpec>>,
    destination_rules: Vec<Item<r::DestinationRuleSpec>>,
    virtual_services: Vec<Item<r::VirtualServiceSpec>>,
    peer_authentications: Vec<Item<r::PeerAuthenticationSpec>>,
    authorization_policies: Vec<Item<r::AuthorizationPolicySpec>>,
    sidecars: Vec<Item<r::SidecarSpec>>,
    kube: super::kube::Objects,
    /// Kubernetes Secrets, kept as read: only `credentials` looks inside.
    secrets: Vec<Item<serde_json::Value>>,
}

fn push<T: DeserializeOwned>(raw: RawResource, diags: &mut Diagnostics, out: &mut Vec<Item<T>>) {
    let RawResource {
        origin,
        resource,
        metadata,
        spec,
        ..
    } = raw;
    let decoded = decode_spec::<T>(spec, &mut diags.at(&origin, &resource));
    if let Some(spec) = decoded {
        out.push(Item {
            origin,
            resource,
            metadata,
            spec,
        });
    }
}

/// Reports resources defined twice (same kind, namespace and name) and keeps the first.
fn decode_all(raw: Vec<RawResource>, diags: &mut Diagnostics) -> Decoded {
    let mut seen: HashMap<ResourceRef, Origin> = HashMap::new();
    let mut d = Decoded::default();
    for res in raw {
        if let Some(first) = seen.get(&res.resource) {
            let message = format!("defined twice: first at {}", first.describe());
            diags
                .at(&res.origin, &res.resource)
                .error("metadata.name", message);
            continue;
        }
        seen.insert(res.resource.clone(), res.origin.clone());
        match res.kind {
            Kind::ServiceEntry => push(res, diags, &mut d.service_entries),
            Kind::WorkloadEntry => push(res, diags, &mut d.workload_entries),
            Kind::DestinationRule => push(res, diags, &mut d.destination_rules),
            Kind::VirtualService => push(res, diags, &mut d.virtual_services),
            Kind::PeerAuthentication => push(res, diags, &mut d.peer_authentications),
            Kind::AuthorizationPolicy => push(res, diags, &mut d.authorization_policies),
            Kind::Sidecar => push(res, diags, &mut d.sidecars),
            Kind::KubeService | Kind::EndpointSlice | Kind::Endpoints | Kind::Pod | Kind::Node => {
                super::kube::push(res, diags, &mut d.kube);
            }
            Kind::Secret => d.secrets.push(Item {
                origin: res.origin,
                resource: res.resource,
                metadata: res.metadata,
                spec: res.spec,
            }),
        }
    }
    d
}

/// The translated parts of a snapshot.
pub(crate) struct Built {
    pub(crate) routes: std::collections::BTreeMap<u16, crate::model::RouteConfiguration>,
    pub(crate) clusters: std::collections::BTreeMap<
        crate::model::ClusterName,
        std::sync::Arc<crate::model::Cluster>,
    >,
    pub(crate) inbound: InboundPolicy,
}

/// Decodes, validates and translates everything read.
pub(crate) fn build(raw: Vec<RawResource>, ctx: &BuildContext, diags: &mut Diagnostics) -> Built {
    let d = decode_all(raw, diags);
    let workloads = services::index_workload_entries(&d.workload_entries, ctx, diags);
    let mut services = services::build_services(&d.service_entries, &workloads, ctx, diags);
    super::kube::add_services(&d.kube, &mut services, ctx, diags);
    let mut rules = destination_rule::compile_rules(&d.destination_rules, ctx, diags);
    let credentials = credentials::Credentials::new(&d.secrets, ctx, diags);
    credentials::resolve(&mut rules, &credentials, diags);
    let vss = virtual_service::compile_virtual_services(
        &d.virtual_services,
        &services,
        &rules,
        ctx,
        diags,
    );
    let clusters = clusters::build_clusters(&services, &rules, ctx, diags);
    let routes = routes::build_routes(&services, &vss, ctx);
    let ingress = sidecar::resolve(&d.sidecars, ctx, diags);
    let inbound = InboundPolicy {
        peer_authentication: peer_authn::resolve(&d.peer_authentications, ctx, diags),
        authorization: authz::translate(&d.authorization_policies, ctx, diags),
        port_authorization: Default::default(),
        ingress,
    };
    Built {
        routes,
        clusters,
        inbound,
    }
}
