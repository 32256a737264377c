use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::HeaderValue;
use mesh_core::Mesh;
use mesh_core::identity::PeerIdentity;
use mesh_core::telemetry::{PeerMetadata, PeerWorkload};
use tower_layer::Layer;

use super::service::Inbound;
use crate::inbound::authz::Authz;
use crate::telemetry::{Telemetry, peer_metadata_headers};

/// Istio's default `CLUSTER_ID` (the `destination_cluster` label and the metadata we send).
pub const DEFAULT_CLUSTER_ID: &str = "Kubernetes";

/// Applies [`Inbound`] (and, inside it, [`Authz`]) to an application service; see the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct InboundLayer {
    mesh: Mesh,
    telemetry: Telemetry,
    cluster_id: String,
    /// Host and namespace of the destination service, when set explicitly.
    service: Option<(String, String)>,
    seed: u64,
}

/// What every request of a layered service shares, computed once in [`InboundLayer::layer`].
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) mesh: Mesh,
    pub(super) telemetry: Telemetry,
    /// This workload, as telemetry labels it.
    pub(super) destination: PeerWorkload,
    /// Host of the destination service (`reviews.default.svc.cluster.local`) and namespace.
    pub(super) service_host: String,
    pub(super) service_namespace: String,
    /// Our `x-envoy-peer-metadata` and `-id` values, encoded once.
    pub(super) metadata: Option<(HeaderValue, HeaderValue)>,
    pub(super) seed: u64,
    pub(super) requests: AtomicU64,
}

impl InboundLayer {
    /// The inbound policy of `mesh`'s workload, recording into `telemetry`.
    pub fn new(mesh: &Mesh, telemetry: Telemetry) -> Self {
        Self {
            mesh: mesh.clone(),
            telemetry,
            cluster_id: DEFAULT_CLUSTER_ID.to_owned(),
            service: None,
            seed: rand::random(),
        }
    }

    /// Sets the cluster this workload runs in (default [`DEFAULT_CLUSTER_ID`]).
    pub fn cluster_id(mut self, cluster_id: impl Into<String>) -> Self {
        self.cluster_id = cluster_id.into();
        self
    }

    /// Sets the destination service: its fully qualified host and namespace (the port is the
    /// one the connection arrived at). By default it is derived from the workload; see the
    /// [module docs](super).
    pub fn destination_service(
        mut self,
        host: impl Into<String>,
        namespace: impl Into<String>,
    ) -> Self {
        self.service = Some((host.into(), namespace.into()));
        self
    }

    /// Derives trace and request ids from `seed` (reproducible tests); random by default.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The telemetry requests are recorded into.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    fn shared(&self) -> Shared {
        let ctx = self.mesh.context();
        let destination = PeerWorkload::from_workload(&ctx.workload, &self.cluster_id);
        let (service_host, service_namespace) = self.service.clone().unwrap_or_else(|| {
            let name = destination
                .canonical_service
                .clone()
                .unwrap_or_else(|| ctx.workload.name.clone());
            let ns = ctx.workload.namespace.clone();
            let host = format!("{name}.{ns}.svc.{}", ctx.settings.domain_suffix);
            (host, ns)
        });
        let metadata = peer_metadata_headers(
            &PeerMetadata::from_workload(&ctx.workload, &self.cluster_id),
            &ctx.settings.domain_suffix,
        );
        if metadata.is_none() {
            tracing::warn!(
                workload = %ctx.workload.name,
                "the workload's labels cannot be sent as peer metadata; responses go without it"
            );
        }
        Shared {
            mesh: self.mesh.clone(),
            telemetry: self.telemetry.clone(),
            destination,
            service_host,
            service_namespace,
            metadata,
            seed: self.seed,
            requests: AtomicU64::new(0),
        }
    }
}

impl<S> Layer<S> for InboundLayer {
    type Service = Inbound<Authz<S, PeerIdentity>>;

    fn layer(&self, inner: S) -> Self::Service {
        let authz = Authz::new(inner, self.mesh.clone());
        Inbound::new(authz, Arc::new(self.shared()))
    }
}
