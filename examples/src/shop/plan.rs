//! The shop's workloads: names, identities, labels, and the ports they listen on.
//!
//! Every workload runs in namespace `shop` as its own SPIFFE identity
//! (`spiffe://cluster.local/ns/shop/sa/<service account>`). Both inventory versions share the
//! service account `inventory`, as the versions of one Kubernetes service do; they differ in their
//! `version` label, which the DestinationRule's subsets select.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use mesh_core::Workload;

/// The namespace every workload runs in.
pub const NAMESPACE: &str = "shop";
/// The port clients dial for the frontend (the ServiceEntry's port number).
pub const HTTP_PORT: u16 = 8080;
/// The port clients dial for the gRPC services.
pub const GRPC_PORT: u16 = 7000;

/// One workload of the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Service {
    /// The axum HTTP front end.
    Frontend,
    /// Places orders: calls inventory, then payment.
    Checkout,
    /// Charges customers; only checkout may call it.
    Payment,
    /// Inventory, stable version.
    InventoryV1,
    /// Inventory, canary version.
    InventoryV2,
    /// The load generator (a client only).
    Loadgen,
}

impl Service {
    /// The workloads that serve requests, in start order (callees first).
    pub const SERVERS: [Service; 5] = [
        Service::Payment,
        Service::InventoryV1,
        Service::InventoryV2,
        Service::Checkout,
        Service::Frontend,
    ];

    /// Every workload.
    pub const ALL: [Service; 6] = [
        Service::Frontend,
        Service::Checkout,
        Service::Payment,
        Service::InventoryV1,
        Service::InventoryV2,
        Service::Loadgen,
    ];

    /// The workload name (`destination_workload` in telemetry, a node of the service map).
    pub fn name(self) -> &'static str {
        match self {
            Service::Frontend => "frontend",
            Service::Checkout => "checkout",
            Service::Payment => "payment",
            Service::InventoryV1 => "inventory-v1",
            Service::InventoryV2 => "inventory-v2",
            Service::Loadgen => "loadgen",
        }
    }

    /// The `app` label, also the service account and the service's short host name.
    pub fn app(self) -> &'static str {
        match self {
            Service::InventoryV1 | Service::InventoryV2 => "inventory",
            other => other.name(),
        }
    }

    /// The `version` label.
    pub fn version(self) -> &'static str {
        match self {
            Service::InventoryV2 => "v2",
            _ => "v1",
        }
    }

    /// Position in [`Service::ALL`], for port plans.
    fn index(self) -> u16 {
        match self {
            Service::Frontend => 0,
            Service::Checkout => 1,
            Service::Payment => 2,
            Service::InventoryV1 => 3,
            Service::InventoryV2 => 4,
            Service::Loadgen => 5,
        }
    }

    /// The workload this service runs as.
    pub fn workload(self) -> Workload {
        Workload::new(NAMESPACE, self.app())
            .name(self.name())
            .labels([("app", self.app()), ("version", self.version())])
    }
}

/// The addresses the servers listen on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ports {
    /// Listen address per serving workload.
    pub listen: BTreeMap<Service, SocketAddr>,
}

impl Ports {
    /// The plan on 127.0.0.1: `base + i` for the i-th workload of [`Service::ALL`], or any free
    /// port for each when `base` is 0.
    pub fn plan(base: u16) -> Self {
        let port = |s: Service| match base {
            0 => 0,
            base => base.saturating_add(s.index()),
        };
        let listen = Service::SERVERS
            .iter()
            .map(|s| (*s, local(port(*s))))
            .collect();
        Self { listen }
    }

    /// The admin address of `service` in the plan for separate processes: `base + 10 + i`.
    pub fn admin(base: u16, service: Service) -> SocketAddr {
        local(base.saturating_add(10 + service.index()))
    }
}

/// `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
