//! Kubernetes `Service`, `EndpointSlice`, `Endpoints`, `Pod` and `Node` documents, read the way
//! istiod's Kubernetes registry reads them, so that
//! `kubectl get svc,endpointslices,pods,nodes -A -o yaml` output can be checked and explained
//! offline.
//!
//! What istiod does, and mesh with it (istio/istio `pilot/pkg/serviceregistry/kube`):
//!
//! - A Service is the host `NAME.NAMESPACE.svc.<domain suffix>` (`conversion.go`
//!   `ServiceHostname`); its ports take their protocol from `appProtocol`, else from the port
//!   name's prefix, UDP ports being UDP and a few well-known ports TCP
//!   (`pkg/config/kube/conversion.go` `ConvertProtocol`). `ExternalName` services alias their
//!   external name; the annotations `networking.istio.io/exportTo` and
//!   `alpha.istio.io/{canonical,kubernetes}-serviceaccounts` are honoured.
//! - Endpoints come from the EndpointSlices labelled `kubernetes.io/service-name`
//!   (`endpointslice.go`): ready endpoints only (an absent `ready` counts as ready,
//!   `endpointHealthStatus`); an endpoint whose `targetRef` names a Pod that is not known is
//!   skipped, as istiod waits for the pod (`getPod`). Labels come from the pod and the identity
//!   from its `serviceAccountName` (`endpoint_builder.go` `NewEndpointBuilder`); the locality
//!   from the pod's locality label, else its Node's topology labels (`controller.go`
//!   `getPodLocality`).
//! - Legacy `Endpoints` are read for a service no EndpointSlice names (Kubernetes mirrors them
//!   into slices, so with both present the slices are used).
//! - A Service with no slice and no `Endpoints` document is resolved by DNS on its own name,
//!   so a folder holding only Services still routes (kube-proxy balances behind the name).
//! - A Kubernetes Service takes a host over from a ServiceEntry declaring the same host
//!   (`push_context.go` `initServiceRegistry`: "the Service from Kubernetes should take
//!   precedence").
//!
//! Kubernetes objects are read leniently: fields mesh does not use are Kubernetes' business and
//! are not reported; a wrong type in a field mesh uses is an error.
//!
//! Not read: `internalTrafficPolicy: Local` (mesh has no node; reported), and FQDN
//! EndpointSlices (which istiod ignores too; reported). `publishNotReadyAddresses` needs
//! nothing: Kubernetes then marks the slices' endpoints ready.

mod endpoints;
mod service;
mod types;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diag::{Diagnostics, Reporter};
use super::documents::{Kind, RawResource};
use super::translate::Item;
use super::translate::services::Service;
use crate::BuildContext;

/// The Kubernetes objects of a load, decoded.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    services: Vec<Item<types::ServiceObject>>,
    slices: Vec<Item<types::EndpointSliceObject>>,
    endpoints: Vec<Item<types::EndpointsObject>>,
    pods: Vec<Item<types::PodObject>>,
    nodes: Vec<Item<types::NodeObject>>,
}

/// Decodes a Kubernetes object read by `documents` (whole object, metadata removed).
pub(crate) fn push(raw: RawResource, diags: &mut Diagnostics, out: &mut Objects) {
    match raw.kind {
        Kind::KubeService => decode_into(raw, diags, &mut out.services),
        Kind::EndpointSlice => decode_into(raw, diags, &mut out.slices),
        Kind::Endpoints => decode_into(raw, diags, &mut out.endpoints),
        Kind::Pod => decode_into(raw, diags, &mut out.pods),
        Kind::Node => decode_into(raw, diags, &mut out.nodes),
        // Not a Kubernetes kind: `documents` never hands one here.
        _ => {}
    }
}

fn decode_into<T: DeserializeOwned>(
    raw: RawResource,
    diags: &mut Diagnostics,
    out: &mut Vec<Item<T>>,
) {
    let RawResource {
        origin,
        resource,
        metadata,
        spec,
        ..
    } = raw;
    let decoded = decode(spec, &mut diags.at(&origin, &resource));
    if let Some(spec) = decoded {
        out.push(Item {
            origin,
            resource,
            metadata,
            spec,
        });
    }
}

/// Decodes `value` leniently (unknown fields pass), reporting a type error with its path.
fn decode<T: DeserializeOwned>(value: Value, report: &mut Reporter<'_>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            report.error(&field, e.inner().to_string());
            None
        }
    }
}

/// Adds the Kubernetes Services visible to the workload to `services` (taking over hosts a
/// ServiceEntry declared), with their endpoints.
pub(crate) fn add_services(
    objects: &Objects,
    services: &mut BTreeMap<String, Service>,
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) {
    let pods = endpoints::PodIndex::new(&objects.pods, &objects.nodes);
    for item in &objects.services {
        let mut report = diags.at(&item.origin, &item.resource);
        let Some(mut service) = service::convert(item, ctx, &mut report) else {
            continue;
        };
        if !service::visible(item, &ctx.workload.namespace) {
            continue;
        }
        if service.endpoints.is_empty() {
            let name = &item.resource.name;
            let ns = &item.resource.namespace;
            if let Some(eps) = endpoints::for_service(
                name,
                ns,
                &objects.slices,
                &objects.endpoints,
                &pods,
                ctx,
                diags,
            ) {
                service.endpoints = eps;
                service.resolution = crate::model::Resolution::Static;
            }
        }
        if services.contains_key(&service.host) {
            diags.at(&item.origin, &item.resource).warn(
                "metadata.name",
                format!(
                    "{} is also declared by a ServiceEntry; the Kubernetes Service takes \
                     precedence, as in istiod",
                    service.host
                ),
            );
        }
        services.insert(service.host.clone(), service);
    }
}
