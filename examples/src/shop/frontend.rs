//! `frontend`: the shop's HTTP API (axum), calling checkout over gRPC.
//!
//! - `GET /api/checkout?item=…` places an order and answers with the order, the inventory
//!   version that served it and the canary weights in force;
//! - `GET /api/refund` is the bug the AuthorizationPolicy exists for: it calls payment directly.
//!   Mesh refuses it at payment's door (`PERMISSION_DENIED`), and the frontend answers 403.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use mesh_tonic::MeshChannel;
use serde::{Deserialize, Serialize};
use tonic::Code;

use super::checkout::END_USER;
use super::pb::checkout_client::CheckoutClient;
use super::pb::payment_client::PaymentClient;
use super::pb::{ChargeRequest, OrderRequest};
use super::plan::GRPC_PORT;

/// The frontend's clients.
#[derive(Clone, Debug)]
struct Clients {
    checkout: CheckoutClient<MeshChannel>,
    payment: PaymentClient<MeshChannel>,
}

/// `GET /api/checkout` parameters.
#[derive(Debug, Deserialize)]
struct OrderQuery {
    item: Option<String>,
}

/// An order as the frontend reports it.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrderView {
    /// Order id.
    pub order_id: String,
    /// Version label of the inventory that served it.
    pub inventory_version: String,
    /// Canary weights (v1, v2) checkout routed by.
    pub weights: (u32, u32),
}

/// An error as the frontend reports it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorView {
    /// The gRPC status code name of the failed call (`PERMISSION_DENIED`, …).
    pub grpc_status: String,
    /// Its message.
    pub message: String,
}

/// The frontend's routes, calling out through `channel`.
pub fn router(channel: MeshChannel) -> Result<Router, http::uri::InvalidUri> {
    let checkout_uri = format!("http://checkout:{GRPC_PORT}").parse()?;
    let payment_uri = format!("http://payment:{GRPC_PORT}").parse()?;
    let clients = Clients {
        checkout: CheckoutClient::with_origin(channel.clone(), checkout_uri),
        payment: PaymentClient::with_origin(channel, payment_uri),
    };
    Ok(Router::new()
        .route("/api/checkout", get(checkout))
        .route("/api/refund", get(refund))
        .with_state(clients))
}

type Answer<T> = Result<Json<T>, (StatusCode, Json<ErrorView>)>;

async fn checkout(
    State(clients): State<Clients>,
    Query(query): Query<OrderQuery>,
    headers: HeaderMap,
) -> Answer<OrderView> {
    let mut request = tonic::Request::new(OrderRequest {
        item: query.item.unwrap_or_else(|| "book".to_owned()),
        quantity: 1,
    });
    if let Some(user) = headers.get(END_USER).and_then(|v| v.to_str().ok())
        && let Ok(value) = user.parse()
    {
        request.metadata_mut().insert(END_USER, value);
    }
    let reply = clients
        .checkout
        .clone()
        .place_order(request)
        .await
        .map_err(failure)?
        .into_inner();
    Ok(Json(OrderView {
        order_id: reply.order_id,
        inventory_version: reply.inventory_version,
        weights: (reply.weight_v1, reply.weight_v2),
    }))
}

async fn refund(State(clients): State<Clients>) -> Answer<String> {
    let reply = clients
        .payment
        .clone()
        .charge(ChargeRequest {
            order_id: "refund".to_owned(),
            amount_cents: 0,
        })
        .await
        .map_err(failure)?;
    Ok(Json(reply.into_inner().payment_id))
}

/// A failed gRPC call as an HTTP answer: denied → 403, anything else → 502.
fn failure(status: tonic::Status) -> (StatusCode, Json<ErrorView>) {
    let code = match status.code() {
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_GATEWAY,
    };
    (
        code,
        Json(ErrorView {
            grpc_status: grpc_name(status.code()),
            message: status.message().to_owned(),
        }),
    )
}

/// The gRPC name of a code (`PERMISSION_DENIED`).
fn grpc_name(code: Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}
