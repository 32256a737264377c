//! Kubernetes Services, EndpointSlices, Endpoints and Pods read as istiod's Kubernetes registry
//! reads them (istio/istio `pilot/pkg/serviceregistry/kube`).

use std::path::Path;

use mesh_core::model::{ClusterName, EndpointAddress, Protocol, Resolution};
use mesh_core::{BuildContext, Workload, istio};

use super::*;

const HOST: &str = "reviews.default.svc.cluster.local";

/// `kubectl get svc,endpointslices,pods -o yaml` for reviews: three pods, v1..v3, each with
/// its service account; v3's endpoint is not ready. The Service's port targets the container
/// port named `web` (9081), which the slice resolves.
const CLUSTER: &str = r#"
apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: v1
  kind: Service
  metadata: {name: reviews, namespace: default, labels: {app: reviews}}
  spec:
    clusterIP: 10.96.0.20
    ports:
    - {name: http, port: 9080, protocol: TCP, targetPort: web}
    - {name: metrics, port: 15020, protocol: TCP, appProtocol: http2, targetPort: 15020}
    - {name: dns, port: 53, protocol: UDP, targetPort: 53}
    selector: {app: reviews}
    type: ClusterIP
  status: {loadBalancer: {}}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata:
    name: reviews-abcde
    namespace: default
    labels: {kubernetes.io/service-name: reviews, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
  addressType: IPv4
  endpoints:
  - addresses: [10.244.0.11]
    conditions: {ready: true, serving: true, terminating: false}
    nodeName: node-a
    targetRef: {kind: Pod, name: reviews-v1-1, namespace: default, uid: 1}
  - addresses: [10.244.0.12]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: reviews-v2-1, namespace: default}
  - addresses: [10.244.0.13]
    conditions: {ready: false, serving: false, terminating: true}
    targetRef: {kind: Pod, name: reviews-v3-1, namespace: default}
  ports:
  - {name: http, port: 9081, protocol: TCP}
  - {name: metrics, port: 15020, protocol: TCP}
- apiVersion: v1
  kind: Pod
  metadata: {name: reviews-v1-1, namespace: default, labels: {app: reviews, version: v1}}
  spec: {serviceAccountName: bookinfo-reviews, containers: [{name: reviews, image: x}]}
  status: {podIP: 10.244.0.11, phase: Running}
- apiVersion: v1
  kind: Pod
  metadata: {name: reviews-v2-1, namespace: default, labels: {app: reviews, version: v2}}
  spec: {serviceAccountName: bookinfo-reviews}
  status: {podIP: 10.244.0.12}
- apiVersion: v1
  kind: Pod
  metadata: {name: reviews-v3-1, namespace: default, labels: {app: reviews, version: v3}}
  spec: {serviceAccountName: bookinfo-reviews}
  status: {podIP: 10.244.0.13}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"#;

fn sockets(s: &mesh_core::model::Snapshot, name: &ClusterName) -> Vec<String> {
    let c = s
        .cluster(name)
        .unwrap_or_else(|| panic!("no cluster {name:?}"));
    c.endpoints
        .iter()
        .map(|e| match &e.address {
            EndpointAddress::Socket(a) => a.to_string(),
            EndpointAddress::Dns { host, port } => format!("dns:{host}:{port}"),
            EndpointAddress::Unix { path } => format!("unix:{path}"),
        })
        .collect()
}

/// Subsets select endpoints by their pods' labels (`endpoint_builder.go` `NewEndpointBuilder`
/// takes the pod's labels); endpoints not ready get no traffic (`endpointslice.go`
/// `endpointHealthStatus`); the port is the slice's port of the same name.
#[test]
fn slices_and_pods_make_endpoints_with_labels_and_identity() {
    let s = load(CLUSTER);
    let all = ClusterName::outbound(HOST, 9080, None);
    assert_eq!(sockets(&s, &all), ["10.244.0.11:9081", "10.244.0.12:9081"]);
    let v2 = ClusterName::outbound(HOST, 9080, Some("v2"));
    assert_eq!(sockets(&s, &v2), ["10.244.0.12:9081"]);
    assert!(sockets(&s, &ClusterName::outbound(HOST, 9080, Some("v3"))).is_empty());
    let c = s.cluster(&all).unwrap();
    assert_eq!(c.resolution, Resolution::Static);
    assert_eq!(c.protocol, Protocol::Http);
    assert_eq!(
        c.endpoints[0].identity.as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/bookinfo-reviews")
    );
    // appProtocol beats the port name (`ConvertProtocol`).
    let metrics = s
        .cluster(&ClusterName::outbound(HOST, 15020, None))
        .unwrap();
    assert_eq!(metrics.protocol, Protocol::Http2);
    // UDP is not carried: no cluster, and a warning.
    assert!(s.cluster(&ClusterName::outbound(HOST, 53, None)).is_none());
    assert!(
        s.warnings
            .iter()
            .any(|w| w.field == "items[0].spec.ports[2].protocol"),
        "{:?}",
        s.warnings
    );
    // The routes answer to the Kubernetes names.
    let rc = s.route_config(9080).expect("routes for 9080");
    assert!(rc.virtual_host("reviews:9080").is_some());
    assert!(
        rc.virtual_host("reviews.default.svc.cluster.local")
            .is_some()
    );
}

/// istiod skips an endpoint whose `targetRef` pod it does not know (`endpointslice.go`
/// `getPod`: `pod == nil && expectedPod`); mesh does too, and says why.
#[test]
fn an_endpoint_whose_pod_is_missing_is_skipped_with_a_warning() {
    let yaml = CLUSTER.replace(
        "name: reviews-v2-1, namespace: default, labels",
        "name: other, namespace: default, labels",
    );
    let s = load(&yaml);
    assert_eq!(
        sockets(&s, &ClusterName::outbound(HOST, 9080, None)),
        ["10.244.0.11:9081"]
    );
    let w = s
        .warnings
        .iter()
        .find(|w| {
            w.message
                .contains("pod default/reviews-v2-1 is not in the config")
        })
        .unwrap_or_else(|| panic!("{:?}", s.warnings));
    assert_eq!(w.field, "items[1].endpoints[1].addresses[0]");
}

/// Without slices or Endpoints the Service is resolved by DNS on its own name: bookinfo's own
/// `bookinfo.yaml` (Services and Deployments) with `virtual-service-all-v1.yaml` routes.
#[test]
fn bookinfo_services_alone_resolve_by_dns() {
    let dir = Path::new(FIXTURES).join("bookinfo");
    let paths = [
        dir.join("bookinfo.yaml"),
        dir.join("destination-rule-all.yaml"),
        dir.join("virtual-service-all-v1.yaml"),
    ];
    let s = istio::load_paths(&paths, &ctx()).unwrap_or_else(|e| panic!("{e}"));
    // 4 services, each whole and by subset (productpage 1, reviews 3, ratings 4, details 2).
    assert_eq!(s.clusters.len(), 4 + 10, "{:?}", s.clusters.keys());
    let c = s
        .cluster(&ClusterName::outbound(HOST, 9080, Some("v1")))
        .unwrap();
    assert_eq!(c.resolution, Resolution::Dns);
    assert_eq!(sockets(&s, &c.name), [format!("dns:{HOST}:9080")]);
    let routes: usize = s
        .routes
        .values()
        .flat_map(|rc| &rc.virtual_hosts)
        .map(|vh| vh.routes.len())
        .sum();
    assert!(routes >= 4, "{routes}");
}

/// Legacy Endpoints serve a Service no EndpointSlice names.
#[test]
fn legacy_endpoints_are_read_when_no_slice_names_the_service() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec: {ports: [{name: http, port: 9080, targetPort: 9080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: ratings}
subsets:
- addresses: [{ip: 10.1.0.5, targetRef: {kind: Pod, name: ratings-1}}, {ip: 10.1.0.6}]
  notReadyAddresses: [{ip: 10.1.0.7}]
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-1, labels: {app: ratings, version: v1}}
spec: {serviceAccountName: ratings}
"#;
    let s = load(yaml);
    let name = ClusterName::outbound("ratings.default.svc.cluster.local", 9080, None);
    assert_eq!(sockets(&s, &name), ["10.1.0.5:9080", "10.1.0.6:9080"]);
    let c = s.cluster(&name).unwrap();
    assert_eq!(
        c.endpoints[0].labels.get("version").map(String::as_str),
        Some("v1")
    );
    assert_eq!(c.endpoints[1].identity, None);
}

/// The `networking.istio.io/exportTo` annotation hides a Service from other namespaces
/// (`push_context.go` `initServiceRegistry`); an ExternalName Service aliases its name.
#[test]
fn export_to_and_external_name() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: private, namespace: team, annotations: {networking.istio.io/exportTo: "."}}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: team}
spec: {type: ExternalName, externalName: db.example.com, ports: [{name: tcp, port: 5432}]}
"#;
    let outside = load_with(
        yaml,
        &BuildContext {
            workload: Workload::new("default", "x"),
            ..BuildContext::default()
        },
    );
    let private = ClusterName::outbound("private.team.svc.cluster.local", 80, None);
    assert!(outside.cluster(&private).is_none());
    let inside = load_with(yaml, &ctx_for(Workload::new("team", "x")));
    assert!(inside.cluster(&private).is_some());
    let db = ClusterName::outbound("db.team.svc.cluster.local", 5432, None);
    assert_eq!(sockets(&outside, &db), ["dns:db.example.com:5432"]);
    assert_eq!(outside.cluster(&db).unwrap().protocol, Protocol::Tcp);
}

/// A Kubernetes Service takes its host over from a ServiceEntry (`push_context.go`
/// `initServiceRegistry`: Kubernetes takes precedence against domain squatting).
#[test]
fn a_kubernetes_service_takes_precedence_over_a_service_entry() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: squat}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  endpoints: [{address: 192.0.2.1}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}]}
"#;
    let s = load(yaml);
    let c = s.cluster(&ClusterName::outbound(HOST, 9080, None)).unwrap();
    assert_eq!(c.resolution, Resolution::Dns);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.message.contains("takes precedence"))
    );
}

/// A wrong type in a field mesh reads is an error with its path; other fields pass.
#[test]
fn a_bad_port_is_an_error_with_its_path() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: x}], sessionAffinity: None}\n";
    let e = istio::load_str("k.yaml", yaml, &ctx()).unwrap_err();
    let d = e.errors().next().unwrap();
    assert_eq!(d.field, "spec.ports[0].port", "{d}");
}

/// An endpoint's locality is its pod's, as istiod's `getPodLocality` (`controller.go`) reads
/// it: the pod's `topology.istio.io/locality` (or legacy `istio-locality`) label, `.` standing
/// for `/` (`SanitizeLocalityLabel`), else its node's `topology.kubernetes.io/region` and
/// `zone` (or the `failure-domain.beta` fallbacks) and `topology.istio.io/subzone`; none when
/// the node is not in the config.
#[test]
fn endpoint_locality_comes_from_the_pod_label_or_its_node() {
    let node = "\
- apiVersion: v1
  kind: Node
  metadata:
    name: node-a
    labels:
      topology.kubernetes.io/region: us-east1
      failure-domain.beta.kubernetes.io/zone: us-east1-b
      topology.istio.io/subzone: rack7
  status: {capacity: {cpu: '4'}}
";
    let yaml = CLUSTER
        .replace(
            "spec: {serviceAccountName: bookinfo-reviews, containers",
            "spec: {nodeName: node-a, serviceAccountName: bookinfo-reviews, containers",
        )
        .replace(
            "labels: {app: reviews, version: v2}}\n  spec: {serviceAccountName: bookinfo-reviews}",
            "labels: {app: reviews, version: v2, istio-locality: eu-west1.eu-west1-a}}\n  spec: {nodeName: node-a, serviceAccountName: bookinfo-reviews}",
        )
        .replacen("items:\n", &format!("items:\n{node}"), 1);
    let s = load(&yaml);
    let c = s
        .cluster(&ClusterName::outbound(HOST, 9080, None))
        .expect("cluster");
    let localities: Vec<String> = c.endpoints.iter().map(|e| e.locality.to_string()).collect();
    assert_eq!(
        localities,
        ["us-east1/us-east1-b/rack7", "eu-west1/eu-west1-a/"]
    );
    // Without the Node document the node's pods have no locality.
    let s = load(&CLUSTER.replace(
        "spec: {serviceAccountName: bookinfo-reviews, containers",
        "spec: {nodeName: node-a, serviceAccountName: bookinfo-reviews, containers",
    ));
    let c = s
        .cluster(&ClusterName::outbound(HOST, 9080, None))
        .expect("cluster");
    assert!(c.endpoints[0].locality.is_empty(), "{:?}", c.endpoints[0]);
}

/// `internalTrafficPolicy: Local` makes istiod send only the endpoints on the proxy's node
/// (`conversion.go` NodeLocal, `endpoint_builder.go`); mesh has no node, so it says so.
#[test]
fn internal_traffic_policy_local_is_a_warning() {
    let s = load(&CLUSTER.replace(
        "    type: ClusterIP\n",
        "    type: ClusterIP\n    internalTrafficPolicy: Local\n",
    ));
    let w = s
        .warnings
        .iter()
        .find(|w| w.field == "items[0].spec.internalTrafficPolicy")
        .unwrap_or_else(|| panic!("{:?}", s.warnings));
    assert!(
        w.message.contains("every endpoint is used"),
        "{}",
        w.message
    );
    assert_eq!(
        sockets(&s, &ClusterName::outbound(HOST, 9080, None)),
        ["10.244.0.11:9081", "10.244.0.12:9081"]
    );
}
