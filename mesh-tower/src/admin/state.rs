//! What the admin endpoint serves besides the mesh handle: the readiness gate, the Prometheus
//! handle, the identity and cluster sources, the service graph and the peers to merge.

use std::fmt;
use std::sync::Arc;

use http::Uri;
use metrics_exporter_prometheus::PrometheusHandle;

use super::clusters::ClusterStatsSource;
use super::config_dump::IdentityDump;
use super::ready::Readiness;
use crate::telemetry::ServiceGraph;

/// The admin endpoint's sources, built with consuming setters; every one is optional.
#[derive(Clone, Default)]
pub struct AdminState {
    pub(super) readiness: Option<Readiness>,
    pub(super) prometheus: Option<PrometheusHandle>,
    pub(super) identity: Option<Arc<dyn IdentityDump>>,
    pub(super) clusters: Option<Arc<dyn ClusterStatsSource>>,
    pub(super) graph: Option<ServiceGraph>,
    pub(super) peers: Vec<Uri>,
    pub(super) sections: Vec<(&'static str, Arc<dyn IdentityDump>)>,
    /// The other workloads of this process (`namespace/name`) and their admin endpoints.
    pub(super) siblings: Vec<(String, Uri)>,
}

impl AdminState {
    /// No sources: readiness is derived from the mesh (see [`AdminState::readiness`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The readiness gate `/healthz/ready` reports, for an application that marks the parts
    /// itself (keep a clone to mark them). Without one, readiness is derived from the mesh:
    /// config is ready once a snapshot has been loaded (from files, or the first complete xDS
    /// config), identity once the mesh has one whose leaf has not expired, or at once when the
    /// mesh was built without mutual TLS.
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// Renders `/metrics` from this handle (from
    /// [`install_prometheus`](crate::telemetry::install_prometheus)). Without one, `/metrics`
    /// answers 404: the application exports metrics its own way.
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// Adds the `identity` section of `/config_dump`.
    pub fn identity(mut self, identity: impl IdentityDump) -> Self {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// Adds a named section to `/config_dump` (e.g. `xds`: each xDS resource's version and
    /// state, from the xDS client).
    pub fn section(mut self, name: &'static str, dump: impl IdentityDump) -> Self {
        self.sections.push((name, Arc::new(dump)));
        self
    }

    /// Where `/clusters` (and the `mesh_endpoints` gauges) get runtime endpoint state.
    pub fn clusters(mut self, clusters: impl ClusterStatsSource) -> Self {
        self.clusters = Some(Arc::new(clusters));
        self
    }

    /// The service graph `/graph` serves (from
    /// [`Telemetry::service_graph`](crate::telemetry::Telemetry::service_graph)).
    pub fn graph(mut self, graph: ServiceGraph) -> Self {
        self.graph = Some(graph);
        self
    }

    /// Another workload of this process (`namespace/name`: a process may hold several
    /// `Mesh`es, each with its own admin endpoint) and its admin endpoint
    /// (`http://host:port`): the map page links to it and `/workloads` lists it.
    pub fn sibling(mut self, workload: impl Into<String>, admin: Uri) -> Self {
        self.siblings.push((workload.into(), admin));
        self
    }

    /// Other admin endpoints (`http://host:port`) whose graphs `/graph` merges in.
    pub fn peers(mut self, peers: impl IntoIterator<Item = Uri>) -> Self {
        self.peers = peers.into_iter().collect();
        self
    }
}

impl fmt::Debug for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminState")
            .field("readiness", &self.readiness)
            .field("prometheus", &self.prometheus.is_some())
            .field("identity", &self.identity.is_some())
            .field("clusters", &self.clusters.is_some())
            .field("graph", &self.graph.is_some())
            .field("peers", &self.peers)
            .field("siblings", &self.siblings)
            .field(
                "sections",
                &self.sections.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}
