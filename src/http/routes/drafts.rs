//! `/api/drafts`: list, create, update, delete (tombstone), convert.

use actix_web::{delete, get, http::StatusCode, post, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    core::wire::{
        self,
        dashboard::{Draft, PendingOrder},
    },
    http::{
        auth::Authenticated,
        error::ApiError,
        extract::{self, acting_user, parse_json, read_json, ForUser},
        receipts::{self, user_space, Answer},
        routes::device_id,
        schemas::{Keyed, ReadErrors, WriteErrors},
        state::AppState,
    },
    store::{
        drafts::{self, Created},
        pending_orders::parse_uuid,
    },
};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DraftCreate)]
struct CreateBody {
    id: Option<String>,
    #[schema(value_type = Value)]
    payload: Box<RawValue>,
    device_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DraftUpdate)]
struct UpdateBody {
    #[schema(value_type = Value)]
    payload: Box<RawValue>,
    /// The `serverUpdatedAt` the change is based on (RFC 3339 or ms); another one is 409.
    #[schema(value_type = Option<String>)]
    base_server_updated_at: Option<serde_json::Value>,
    device_id: Option<String>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConvertBody {
    pending_order_id: Option<String>,
}

fn draft_id(path: &str) -> Result<String, ApiError> {
    Ok(parse_uuid(path, "the draft id")?)
}

fn base_stamp(value: Option<serde_json::Value>) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::validation("`baseServerUpdatedAt` must be a time")),
        Some(serde_json::Value::String(s)) => wire::parse_time_ms(&s).map(Some).ok_or_else(|| {
            ApiError::validation("`baseServerUpdatedAt` must be RFC 3339 (as in `serverUpdatedAt`)")
        }),
        Some(_) => Err(ApiError::validation(
            "`baseServerUpdatedAt` must be a string",
        )),
    }
}

fn body_device(body: Option<String>, req: &HttpRequest) -> Result<Option<String>, ApiError> {
    match body {
        Some(d) if d.is_empty() || d.len() > 128 => {
            Err(ApiError::validation("`deviceId` must be 1-128 characters"))
        }
        Some(d) => Ok(Some(d)),
        None => Ok(device_id(req)),
    }
}

#[utoipa::path(tag = "drafts", params(ForUser), responses((status = 200, body = [Draft]), ReadErrors))]
#[get("/api/drafts")]
pub async fn list(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ForUser>,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    let drafts = drafts::list(
        &state.db.read,
        &user,
        query.include_deleted.unwrap_or(false),
    )
    .await?;
    Ok(HttpResponse::Ok().json(drafts))
}

#[utoipa::path(tag = "drafts", params(("id" = String, Path), ForUser), responses((status = 200, body = Draft), ReadErrors))]
#[get("/api/drafts/{id}")]
pub async fn get_one(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ForUser>,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    let id = draft_id(&path)?;
    Ok(HttpResponse::Ok().json(drafts::get(&state.db.read, &user, &id).await?))
}

#[utoipa::path(tag = "drafts", params(ForUser, Keyed), request_body = CreateBody, responses((status = 201, description = "Created (`DRAFT_CREATED`)", body = Draft), (status = 200, description = "The stored draft: this id was created before", body = Draft), WriteErrors))]
#[post("/api/drafts")]
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
    let mut repeat_answers_created = false;
    let cmd = (|| {
        let user = acting_user(&auth, asked)?;
        let body: CreateBody = parse_json(&bytes?, "the body")?;
        // A create's key also names the new draft's id, so a create
        // retried after its stored answer expired still finds it (and
        // answers as the first did).
        let keyed_id = extract::idempotent_id(&req, &auth, &user, "drafts")?;
        repeat_answers_created = keyed_id.is_some() && body.id.is_none();
        let id = match (body.id, keyed_id) {
            (Some(id), _) => parse_uuid(&id, "`id`")?,
            (None, Some(id)) => id,
            (None, None) => uuid::Uuid::new_v4().to_string(),
        };
        Ok(drafts::Create {
            user_id: user,
            id,
            device_id: body_device(body.device_id, &req)?,
            payload: body.payload,
            origin: device_id(&req),
        })
    })();
    keyed
        .write(
            &state,
            &state.drafts,
            cmd,
            move |created: &Created<Draft>| match created {
                Created::New(draft) => Answer::json(StatusCode::CREATED, draft),
                Created::Existing(draft) if repeat_answers_created => {
                    Answer::json(StatusCode::CREATED, draft)
                }
                Created::Existing(draft) => Answer::json(StatusCode::OK, draft),
            },
        )
        .await
}

#[utoipa::path(tag = "drafts", params(("id" = String, Path), ForUser, Keyed), request_body = UpdateBody, responses((status = 200, description = "Updated (`DRAFT_UPDATED`)", body = Draft), WriteErrors))]
#[put("/api/drafts/{id}")]
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
        let id = draft_id(&path)?;
        let body: UpdateBody = parse_json(&bytes?, "the body")?;
        Ok(drafts::Update {
            user_id: user,
            id,
            device_id: body_device(body.device_id, &req)?,
            payload: body.payload,
            base: base_stamp(body.base_server_updated_at)?,
            origin: device_id(&req),
        })
    })();
    keyed.write(&state, &state.drafts, cmd, ok_json).await
}

#[utoipa::path(tag = "drafts", params(("id" = String, Path), ForUser, Keyed), responses((status = 200, description = "The tombstone (`DRAFT_DELETED`)", body = Draft), WriteErrors))]
#[delete("/api/drafts/{id}")]
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
        Ok(drafts::Delete {
            user_id: acting_user(&auth, asked)?,
            id: draft_id(&path)?,
            device_id: device_id(&req),
            origin: device_id(&req),
        })
    })();
    keyed.write(&state, &state.drafts, cmd, ok_json).await
}

#[utoipa::path(tag = "drafts", params(("id" = String, Path), ForUser, Keyed), request_body(content = Option<ConvertBody>, description = "Optional: the new order's id"), responses((status = 201, description = "The new pending order (`DRAFT_CONVERTED` + `PENDING_CREATED`)", body = PendingOrder), WriteErrors))]
#[post("/api/drafts/{id}/convert")]
pub async fn convert(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ForUser>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let has_body = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "0")
        || req
            .headers()
            .contains_key(actix_web::http::header::CONTENT_TYPE);
    let bytes = match has_body {
        true => Some(read_json(&req, payload).await),
        false => None,
    };
    let asked = query.user_id.as_deref();
    let keyed = receipts::Keyed::of(&req, &state, user_space(&auth, asked), bytes.as_ref())?;
    let cmd = (|| {
        let user = acting_user(&auth, asked)?;
        let id = draft_id(&path)?;
        let body: ConvertBody = match bytes {
            Some(bytes) => parse_json(&bytes?, "the body")?,
            None => ConvertBody::default(),
        };
        let order_id = match body.pending_order_id {
            Some(id) => parse_uuid(&id, "`pendingOrderId`")?,
            None => uuid::Uuid::new_v4().to_string(),
        };
        Ok(drafts::Convert {
            user_id: user,
            id,
            device_id: device_id(&req),
            order_id,
            origin: device_id(&req),
        })
    })();
    keyed
        .write(&state, &state.drafts, cmd, |order: &PendingOrder| {
            Answer::json(StatusCode::CREATED, order)
        })
        .await
}

/// A 200 with the resource.
pub(super) fn ok_json<T: serde::Serialize>(value: &T) -> Answer {
    Answer::json(StatusCode::OK, value)
}
