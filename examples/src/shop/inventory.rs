//! `inventory`: reserves stock. Versions v1 and v2 run side by side and answer with their
//! version, so callers can see which one the canary picked.

use std::sync::atomic::{AtomicU32, Ordering};

use tonic::{Request, Response, Status};

use super::pb::inventory_server::{Inventory, InventoryServer};
use super::pb::{ReserveReply, ReserveRequest};

/// Items in stock at start; reservations count down and wrap.
const STOCK: u32 = 1_000_000;

/// One version of the inventory service.
#[derive(Debug)]
pub struct InventoryService {
    version: &'static str,
    reserved: AtomicU32,
}

#[tonic::async_trait]
impl Inventory for InventoryService {
    async fn reserve(
        &self,
        request: Request<ReserveRequest>,
    ) -> Result<Response<ReserveReply>, Status> {
        let quantity = request.into_inner().quantity.max(1);
        let before = self.reserved.fetch_add(quantity, Ordering::Relaxed);
        Ok(Response::new(ReserveReply {
            version: self.version.to_owned(),
            remaining: STOCK - (before.wrapping_add(quantity) % STOCK),
        }))
    }
}

/// The routes inventory `version` serves.
pub fn routes(version: &'static str) -> tonic::service::Routes {
    tonic::service::Routes::new(InventoryServer::new(InventoryService {
        version,
        reserved: AtomicU32::new(0),
    }))
}
