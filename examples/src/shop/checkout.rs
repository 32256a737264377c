//! `checkout`: places an order by reserving stock in inventory, then charging payment.
//!
//! It propagates the caller's `end-user` header to inventory, as Istio's bookinfo does, so the
//! header route in the VirtualService can send that user to the canary. It also reports the canary
//! weights its own mesh routed by, so the load generator can check the observed split against the
//! weights in force for each request, across live edits.

use std::collections::BTreeMap;

use mesh_core::Mesh;
use mesh_core::model::{RouteAction, Snapshot};
use mesh_core::routing::{self, RequestInfo};
use mesh_tonic::MeshChannel;
use tonic::{Request, Response, Status};

use super::pb::checkout_server::{Checkout, CheckoutServer};
use super::pb::inventory_client::InventoryClient;
use super::pb::payment_client::PaymentClient;
use super::pb::{ChargeRequest, OrderReply, OrderRequest, ReserveRequest};
use super::plan::GRPC_PORT;

/// The header that selects the canary for one user.
pub const END_USER: &str = "end-user";

/// The checkout service.
#[derive(Debug)]
pub struct CheckoutService {
    mesh: Mesh,
    inventory: InventoryClient<MeshChannel>,
    payment: PaymentClient<MeshChannel>,
}

impl CheckoutService {
    /// Checkout calling out through `channel`, reading canary weights from `mesh`.
    pub fn new(mesh: Mesh, channel: MeshChannel) -> Result<Self, http::uri::InvalidUri> {
        let inventory = format!("http://inventory:{GRPC_PORT}").parse()?;
        let payment = format!("http://payment:{GRPC_PORT}").parse()?;
        Ok(Self {
            mesh,
            inventory: InventoryClient::with_origin(channel.clone(), inventory),
            payment: PaymentClient::with_origin(channel, payment),
        })
    }
}

#[tonic::async_trait]
impl Checkout for CheckoutService {
    async fn place_order(
        &self,
        request: Request<OrderRequest>,
    ) -> Result<Response<OrderReply>, Status> {
        let user = request.metadata().get(END_USER).cloned();
        let order = request.into_inner();
        // Read before the call: the client reads the snapshot after this, so it routes by these
        // weights or by a newer config's.
        let (weight_v1, weight_v2) = canary_weights(&self.mesh.snapshot()).unwrap_or((0, 0));
        let mut reserve = Request::new(ReserveRequest {
            item: order.item.clone(),
            quantity: order.quantity,
        });
        if let Some(user) = user {
            reserve.metadata_mut().insert(END_USER, user);
        }
        let reserved = self.inventory.clone().reserve(reserve).await?.into_inner();
        let order_id = format!("{}-{}", order.item, reserved.remaining);
        let charged = self
            .payment
            .clone()
            .charge(ChargeRequest {
                order_id: order_id.clone(),
                amount_cents: 1999 * u64::from(order.quantity.max(1)),
            })
            .await?
            .into_inner();
        Ok(Response::new(OrderReply {
            order_id,
            inventory_version: reserved.version,
            weight_v1,
            weight_v2,
            payment_id: charged.payment_id,
        }))
    }
}

/// The weights of subsets `v1` and `v2` on inventory's default route (no `end-user` header) in
/// `snapshot`, or `None` when no route to inventory is configured.
pub fn canary_weights(snapshot: &Snapshot) -> Option<(u32, u32)> {
    let headers = BTreeMap::<String, String>::new();
    let authority = format!("inventory:{GRPC_PORT}");
    let request = RequestInfo {
        method: "POST",
        authority: &authority,
        path_and_query: "/shop.Inventory/Reserve",
        port: GRPC_PORT,
        headers: &headers,
    };
    let selected = routing::select(snapshot, &request).ok()?;
    let RouteAction::Forward(destinations) = &selected.route.action else {
        return None;
    };
    let mut weights = (0, 0);
    for d in destinations.iter() {
        match d.cluster.parse_outbound().and_then(|(_, subset, _)| subset) {
            Some("v1") => weights.0 += d.weight,
            Some("v2") => weights.1 += d.weight,
            _ => {}
        }
    }
    Some(weights)
}

/// The routes checkout serves.
pub fn routes(service: CheckoutService) -> tonic::service::Routes {
    tonic::service::Routes::new(CheckoutServer::new(service))
}
