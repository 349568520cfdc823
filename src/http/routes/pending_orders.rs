//! `/api/pending-orders`: list, create one, batch upsert an array, update,
//! delete.

use actix_web::{delete, get, http::StatusCode, post, put, web, HttpRequest, HttpResponse};
use serde_json::value::RawValue;

use crate::{
    core::wire::dashboard::PendingOrder,
    http::{
        auth::Authenticated,
        error::ApiError,
        extract::{self, acting_user, json_problem, parse_json, read_json, ForUser},
        receipts::{self, user_space, Answer},
        routes::{device_id, drafts::ok_json},
        schemas::{Keyed, ReadErrors, WriteErrors},
        state::AppState,
    },
    store::{
        drafts::Created,
        pending_orders::{self, parse_uuid, OrderInput, MAX_BATCH},
    },
};

#[utoipa::path(tag = "pending-orders", params(ForUser), responses((status = 200, body = [PendingOrder]), ReadErrors))]
#[get("/api/pending-orders")]
pub async fn list(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ForUser>,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    Ok(HttpResponse::Ok().json(pending_orders::list(&state.db.read, &user).await?))
}

#[utoipa::path(tag = "pending-orders", params(("id" = String, Path), ForUser), responses((status = 200, body = PendingOrder), ReadErrors))]
#[get("/api/pending-orders/{id}")]
pub async fn get_one(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ForUser>,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    let id = parse_uuid(&path, "the order id")?;
    Ok(HttpResponse::Ok().json(pending_orders::get(&state.db.read, &user, &id).await?))
}

/// One object creates an order; an array upserts a batch in one transaction.
#[utoipa::path(tag = "pending-orders", params(ForUser, Keyed), request_body(content = Value, description = "One order `{id?, payload, status?, orderNumber?, jobId?}`, or an array of them: a batch upsert in one transaction"), responses((status = 201, description = "Created (`PENDING_CREATED`)", body = PendingOrder), (status = 200, description = "The stored order (a repeated id), or a batch's `{created, updated}` (`PENDING_BATCH_UPSERTED`)", body = Object), WriteErrors))]
#[post("/api/pending-orders")]
pub async fn create(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ForUser>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&req, payload).await;
    let asked = query.user_id.as_deref();
    let keyed = receipts::Keyed::of(&req, &state, user_space(&auth, asked), Some(&bytes))?;
    let parsed = (|| -> Result<(String, Box<RawValue>), ApiError> {
        let user = acting_user(&auth, asked)?;
        Ok((user, parse_json(&bytes?, "the body")?))
    })();
    let (user, raw) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return keyed.refuse(&state, err).await,
    };
    let origin = device_id(&req);
    if raw.get().trim_start().starts_with('[') {
        let cmd = (|| {
            let items: Vec<Box<RawValue>> = parse_json(raw.get().as_bytes(), "the body")?;
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(ApiError::validation(format!(
                    "a batch holds 1 to {MAX_BATCH} orders"
                )));
            }
            let mut inputs = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let what = format!("items[{i}]");
                let mut input: OrderInput =
                    serde_json::from_str(item.get()).map_err(|e| json_problem(e, &what))?;
                input.validate(&what)?;
                if input.id.is_none() && input.payload.is_none() {
                    return Err(ApiError::validation(format!(
                        "{what}.payload is required for a new order"
                    )));
                }
                inputs.push(input);
            }
            Ok(pending_orders::BatchUpsert {
                user_id: user,
                items: inputs,
                origin,
            })
        })();
        return keyed.write(&state, &state.orders, cmd, ok_json).await;
    }
    let mut repeat_answers_created = false;
    let cmd = (|| {
        let mut input: OrderInput = parse_json(raw.get().as_bytes(), "the body")?;
        input.validate("the order")?;
        if input.payload.is_none() {
            return Err(ApiError::validation("`payload` is required"));
        }
        // The key also names the new order's id (see drafts).
        let keyed_id = extract::idempotent_id(&req, &auth, &user, "pending-orders")?;
        repeat_answers_created = keyed_id.is_some() && input.id.is_none();
        if input.id.is_none() {
            input.id = keyed_id;
        }
        Ok(pending_orders::Create {
            user_id: user,
            input,
            origin,
        })
    })();
    keyed
        .write(
            &state,
            &state.orders,
            cmd,
            move |created: &Created<PendingOrder>| match created {
                Created::New(order) => Answer::json(StatusCode::CREATED, order),
                Created::Existing(order) if repeat_answers_created => {
                    Answer::json(StatusCode::CREATED, order)
                }
                Created::Existing(order) => Answer::json(StatusCode::OK, order),
            },
        )
        .await
}

#[utoipa::path(tag = "pending-orders", params(("id" = String, Path), ForUser, Keyed), request_body(content = Object, description = "`{payload?, status?, orderNumber?, jobId?}`"), responses((status = 200, description = "Updated (`PENDING_UPDATED`)", body = PendingOrder), WriteErrors))]
#[put("/api/pending-orders/{id}")]
pub async fn update(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ForUser>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&req, payload).await;
    let asked = query.user_id.as_deref();
    let keyed = receipts::Keyed::of(&req, &state, user_space(&auth, asked), Some(&bytes))?;
    let cmd = (|| {
        let user = acting_user(&auth, asked)?;
        let id = parse_uuid(&path, "the order id")?;
        let mut input: OrderInput = parse_json(&bytes?, "the body")?;
        if input
            .id
            .as_ref()
            .is_some_and(|given| parse_uuid(given, "`id`").ok().as_ref() != Some(&id))
        {
            return Err(ApiError::validation(
                "`id` in the body differs from the path",
            ));
        }
        input.id = None;
        input.validate("the order")?;
        if input.payload.is_none()
            && input.status.is_none()
            && input.order_number.is_none()
            && input.job_id.is_none()
        {
            return Err(ApiError::validation(
                "nothing to change: give payload, status, orderNumber or jobId",
            ));
        }
        Ok(pending_orders::Update {
            user_id: user,
            id,
            input,
            origin: device_id(&req),
        })
    })();
    keyed.write(&state, &state.orders, cmd, ok_json).await
}

#[utoipa::path(tag = "pending-orders", params(("id" = String, Path), ForUser, Keyed), responses((status = 200, description = "The deleted order (`PENDING_DELETED`)", body = PendingOrder), WriteErrors))]
#[delete("/api/pending-orders/{id}")]
pub async fn remove(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ForUser>,
) -> Result<HttpResponse, ApiError> {
    let asked = query.user_id.as_deref();
    let keyed = receipts::Keyed::of(&req, &state, user_space(&auth, asked), None)?;
    let cmd = (|| {
        Ok(pending_orders::Delete {
            user_id: acting_user(&auth, asked)?,
            id: parse_uuid(&path, "the order id")?,
            origin: device_id(&req),
        })
    })();
    keyed.write(&state, &state.orders, cmd, ok_json).await
}
