//! `/api/devices/{id}/orders`: a station's orders over REST.

use actix_web::{delete, http::StatusCode, post, put, web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::{answer, apply, check_id, object, refused, venue_of, venue_space, write, VenueQuery};
use crate::{
    core::wire::{
        cashier::{self, Change, Device, Fields},
        format_ms, now_ms,
    },
    http::{
        auth::Authenticated,
        error::ApiError,
        extract::{json_problem, read_json},
        receipts::{self, Answer},
        schemas::{Keyed, OrdersBody, WriteErrors},
        state::AppState,
    },
};

/// Body: `{"orders": [...]}`, an array of orders, or one order.
#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery, Keyed), request_body = OrdersBody, responses((status = 200, description = "The station (`order_added`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[post("/api/devices/{id}/orders")]
pub async fn add_orders(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&req, payload).await;
    let keyed = receipts::Keyed::of(&req, &state, venue_space(&auth, &q), Some(&bytes))?;
    let cmd = (|| {
        let venue = venue_of(&auth, &q)?;
        let value: Value =
            serde_json::from_slice(&bytes?).map_err(|e| json_problem(e, "the body"))?;
        let orders_value = match value {
            Value::Object(mut m) if m.contains_key("orders") => {
                m.remove("orders").unwrap_or(Value::Null)
            }
            Value::Object(m) => Value::Array(vec![Value::Object(m)]),
            other => other,
        };
        let orders =
            cashier::new_orders(Some(&orders_value), &format_ms(now_ms())).map_err(refused)?;
        let change = Change::OrderPlaced {
            device_id: check_id(&id)?,
            orders,
        };
        Ok(apply(venue, change))
    })();
    write(keyed, &state, cmd, |device: &Option<Device>| {
        Answer::json(StatusCode::CREATED, device)
    })
    .await
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), ("index" = i64, Path, description = "The order's index, from 0"), VenueQuery, Keyed), request_body(content = Object, description = "The fields to change: `name`, `price`, `quantity`, `notes`, `firstOrderTime`, `lastOrderTime`"), responses((status = 200, description = "The station (`order_modified`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[put("/api/devices/{id}/orders/{index}")]
pub async fn update_order(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    path: web::Path<(String, i64)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&req, payload).await;
    let keyed = receipts::Keyed::of(&req, &state, venue_space(&auth, &q), Some(&bytes))?;
    let cmd = (|| {
        let venue = venue_of(&auth, &q)?;
        let (id, index) = path.into_inner();
        if index < 0 {
            return Err(ApiError::validation("the order index must not be negative"));
        }
        let body = object(bytes)?;
        let data = cashier::order_patch(&Fields(&body)).map_err(refused)?;
        let change = Change::OrderUpdated {
            device_id: check_id(&id)?,
            order_index: index,
            data,
        };
        Ok(apply(venue, change))
    })();
    write(keyed, &state, cmd, answer).await
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), ("index" = i64, Path), VenueQuery, Keyed), responses((status = 200, description = "The station (`order_removed`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[delete("/api/devices/{id}/orders/{index}")]
pub async fn remove_order(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    path: web::Path<(String, i64)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let keyed = receipts::Keyed::of(&req, &state, venue_space(&auth, &q), None)?;
    let cmd = (|| {
        let venue = venue_of(&auth, &q)?;
        let (id, index) = path.into_inner();
        if index < 0 {
            return Err(ApiError::validation("the order index must not be negative"));
        }
        let change = Change::OrderDeleted {
            device_id: check_id(&id)?,
            order_index: index,
        };
        Ok(apply(venue, change))
    })();
    write(keyed, &state, cmd, answer).await
}
