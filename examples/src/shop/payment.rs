//! `payment`: charges customers. It trusts its caller to be checkout because mesh enforces it
//! (the AuthorizationPolicy in `security.yaml`), not because of any code here.

use std::sync::atomic::{AtomicU64, Ordering};

use tonic::{Request, Response, Status};

use super::pb::payment_server::{Payment, PaymentServer};
use super::pb::{ChargeReply, ChargeRequest};

/// The payment service.
#[derive(Debug, Default)]
pub struct PaymentService {
    charged: AtomicU64,
}

#[tonic::async_trait]
impl Payment for PaymentService {
    async fn charge(
        &self,
        request: Request<ChargeRequest>,
    ) -> Result<Response<ChargeReply>, Status> {
        let n = self.charged.fetch_add(1, Ordering::Relaxed);
        let order = request.into_inner().order_id;
        Ok(Response::new(ChargeReply {
            payment_id: format!("pay-{n}-{order}"),
        }))
    }
}

/// The routes payment serves.
pub fn routes() -> tonic::service::Routes {
    tonic::service::Routes::new(PaymentServer::new(PaymentService::default()))
}
