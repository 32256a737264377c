//! The endpoints of a Kubernetes Service: its EndpointSlices (or legacy Endpoints), with labels
//! and identity from their pods, as istiod's `endpointslice.go` builds them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::super::diag::{Diagnostics, Field, Reporter};
use super::super::names;
use super::super::translate::Item;
use super::super::translate::services::{EndpointHost, ServiceEndpoint};
use super::types::{
    EndpointPort, EndpointSliceObject, EndpointsObject, NodeObject, ObjectReference, PodObject,
};
use crate::BuildContext;
use crate::model::Locality;

/// The label naming an EndpointSlice's Service (`discovery.k8s.io` `LabelServiceName`).
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The pod labels naming its locality, most preferred first (istio/istio `pkg/model/proxy.go`
/// `GetLocalityLabel`: `topology.istio.io/locality`, then the legacy `istio-locality`).
const POD_LOCALITY_LABELS: [&str; 2] = ["topology.istio.io/locality", "istio-locality"];

/// A node's region, zone and subzone labels, each GA label first, then its fallback
/// (`controller.go` `getPodLocality` with `getLabelValue`).
const NODE_LOCALITY_LABELS: [(&str, &str); 3] = [
    (
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    ),
    (
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    ),
    ("topology.istio.io/subzone", ""),
];

/// Pods by namespace and name, and by IP; nodes by name.
pub(crate) struct PodIndex<'a> {
    by_name: HashMap<(&'a str, &'a str), &'a Item<PodObject>>,
    by_ip: HashMap<IpAddr, &'a Item<PodObject>>,
    nodes: HashMap<&'a str, &'a Item<NodeObject>>,
}

impl<'a> PodIndex<'a> {
    pub(crate) fn new(pods: &'a [Item<PodObject>], nodes: &'a [Item<NodeObject>]) -> Self {
        let nodes = nodes
            .iter()
            .map(|n| (n.resource.name.as_str(), n))
            .collect();
        let mut by_name = HashMap::new();
        let mut by_ip = HashMap::new();
        for pod in pods {
            by_name.insert(
                (pod.resource.namespace.as_str(), pod.resource.name.as_str()),
                pod,
            );
            let status = &pod.spec.status;
            let ips = status
                .pod_ip
                .iter()
                .chain(status.pod_ips.iter().filter_map(|p| p.ip.as_ref()));
            for ip in ips.filter_map(|ip| ip.parse::<IpAddr>().ok()) {
                by_ip.entry(ip).or_insert(pod);
            }
        }
        Self {
            by_name,
            by_ip,
            nodes,
        }
    }

    /// A pod's locality as istiod's `getPodLocality` reads it: its locality label (where `.`
    /// stands for `/` unless the value has a `/`, `SanitizeLocalityLabel`), else its node's
    /// region, zone and subzone labels; none when the node is not in the config.
    fn locality(&self, pod: &Item<PodObject>) -> Locality {
        let labels = &pod.metadata.labels;
        if let Some(l) = POD_LOCALITY_LABELS.iter().find_map(|k| labels.get(*k)) {
            if l.contains('/') {
                return Locality::parse(l);
            }
            return Locality::parse(&l.replace('.', "/"));
        }
        let node = pod.spec.spec.node_name.as_deref().unwrap_or_default();
        let Some(node) = self.nodes.get(node) else {
            return Locality::default();
        };
        let [region, zone, subzone] = NODE_LOCALITY_LABELS.map(|(ga, fallback)| {
            node.metadata
                .labels
                .get(ga)
                .filter(|v| !v.is_empty())
                .or_else(|| node.metadata.labels.get(fallback))
                .cloned()
                .unwrap_or_default()
        });
        Locality {
            region,
            zone,
            subzone,
        }
    }

    /// The pod of an endpoint address, as istiod's `getPod`: by `targetRef` when it names a Pod
    /// (then `Err` when that pod is unknown: istiod skips the endpoint until it sees the pod),
    /// else by IP.
    fn find(
        &self,
        ip: IpAddr,
        target: Option<&ObjectReference>,
        namespace: &str,
    ) -> Result<Option<&'a Item<PodObject>>, String> {
        match target {
            Some(t) if t.kind.as_deref() == Some("Pod") => {
                let ns = t.namespace.as_deref().unwrap_or(namespace);
                let name = t.name.as_deref().unwrap_or_default();
                self.by_name
                    .get(&(ns, name))
                    .copied()
                    .map(Some)
                    .ok_or_else(|| format!("{ns}/{name}"))
            }
            _ => Ok(self.by_ip.get(&ip).copied()),
        }
    }
}

fn endpoint_ports(
    ports: &[EndpointPort],
    field: &Field,
    report: &mut Reporter<'_>,
) -> BTreeMap<String, u16> {
    let mut out = BTreeMap::new();
    for (i, p) in ports.iter().enumerate() {
        if p.protocol.as_deref() == Some("UDP") {
            continue;
        }
        match p.port.map(u16::try_from) {
            Some(Ok(n)) if n > 0 => {
                out.insert(p.name.clone().unwrap_or_default(), n);
            }
            Some(_) => report.error(&field.index(i).key("port"), "port is out of range 1..65535"),
            None => {}
        }
    }
    out
}

/// Builds one endpoint, or reports why there is none.
#[allow(clippy::too_many_arguments)]
fn endpoint(
    address: &str,
    target: Option<&ObjectReference>,
    ports: &BTreeMap<String, u16>,
    namespace: &str,
    pods: &PodIndex<'_>,
    field: &Field,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<ServiceEndpoint> {
    let Ok(ip) = address.parse::<IpAddr>() else {
        report.error(field, format!("{address:?} is not an IP address"));
        return None;
    };
    let pod = match pods.find(ip, target, namespace) {
        Ok(pod) => pod,
        Err(missing) => {
            report.warn(
                field,
                format!(
                    "pod {missing} is not in the config: endpoint {ip} skipped, as istiod \
                     skips it until it knows the pod (export pods too)"
                ),
            );
            return None;
        }
    };
    let identity = pod.map(|pod| {
        let sa = pod
            .spec
            .spec
            .service_account_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        names::spiffe_id(&ctx.settings.trust_domain, &pod.resource.namespace, sa)
    });
    Some(ServiceEndpoint {
        host: EndpointHost::Ip(ip),
        ports: ports.clone(),
        labels: pod.map(|p| p.metadata.labels.clone()).unwrap_or_default(),
        weight: 1,
        locality: pod.map(|p| pods.locality(p)).unwrap_or_default(),
        identity,
    })
}

fn from_slice(
    slice: &Item<EndpointSliceObject>,
    pods: &PodIndex<'_>,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
    out: &mut Vec<ServiceEndpoint>,
) {
    let ns = slice.resource.namespace.as_str();
    if slice.spec.address_type.as_deref() == Some("FQDN") {
        report.warn(
            "addressType",
            "FQDN EndpointSlices are not supported (nor by istiod); skipped",
        );
        return;
    }
    let ports = endpoint_ports(&slice.spec.ports, &Field::new("ports"), report);
    for (i, e) in slice.spec.endpoints.iter().enumerate() {
        // Not ready: istiod sends it unhealthy (or not at all); it never gets traffic.
        if e.conditions.ready == Some(false) {
            continue;
        }
        let ef = Field::new("endpoints").index(i).key("addresses");
        for (j, a) in e.addresses.iter().enumerate() {
            let target = e.target_ref.as_ref();
            if let Some(ep) = endpoint(a, target, &ports, ns, pods, &ef.index(j), ctx, report) {
                out.push(ep);
            }
        }
    }
}

fn from_legacy(
    item: &Item<EndpointsObject>,
    pods: &PodIndex<'_>,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
    out: &mut Vec<ServiceEndpoint>,
) {
    let ns = item.resource.namespace.as_str();
    for (i, subset) in item.spec.subsets.iter().enumerate() {
        let sf = Field::new("subsets").index(i);
        let ports = endpoint_ports(&subset.ports, &sf.key("ports"), report);
        for (j, a) in subset.addresses.iter().enumerate() {
            let af = sf.key("addresses").index(j).key("ip");
            let ip = a.ip.as_deref().unwrap_or_default();
            let target = a.target_ref.as_ref();
            if let Some(ep) = endpoint(ip, target, &ports, ns, pods, &af, ctx, report) {
                out.push(ep);
            }
        }
    }
}

/// The endpoints of Service `namespace/name`: from the EndpointSlices labelled with its name,
/// else from its legacy Endpoints; `None` when neither exists (then the name is resolved by
/// DNS).
pub(crate) fn for_service(
    name: &str,
    namespace: &str,
    slices: &[Item<EndpointSliceObject>],
    legacy: &[Item<EndpointsObject>],
    pods: &PodIndex<'_>,
    ctx: &BuildContext,
    diags: &mut Diagnostics,
) -> Option<Vec<ServiceEndpoint>> {
    let mut out = Vec::new();
    let mut found = false;
    for slice in slices.iter().filter(|s| {
        s.resource.namespace == namespace
            && s.metadata
                .labels
                .get(SERVICE_NAME_LABEL)
                .map(String::as_str)
                == Some(name)
    }) {
        found = true;
        from_slice(
            slice,
            pods,
            ctx,
            &mut diags.at(&slice.origin, &slice.resource),
            &mut out,
        );
    }
    if found {
        return Some(out);
    }
    let item = legacy
        .iter()
        .find(|e| e.resource.namespace == namespace && e.resource.name == name)?;
    from_legacy(
        item,
        pods,
        ctx,
        &mut diags.at(&item.origin, &item.resource),
        &mut out,
    );
    Some(out)
}
