//! `/api/drafts`: list, create, update, delete (tombstone), convert.

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
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
        routes::device_id,
        schemas::{ReadErrors, WriteErrors},
        state::AppState,
    },
    store::{
        drafts::{self, Created},
        pending_orders::parse_uuid,
    },
    writers::crud::Exec,
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

#[utoipa::path(tag = "drafts", params(ForUser, ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key answers the first result and creates nothing again")), request_body = CreateBody, responses((status = 201, description = "Created (`DRAFT_CREATED`)", body = Draft), (status = 200, description = "The stored draft: this id was created before", body = Draft), WriteErrors))]
#[post("/api/drafts")]
pub async fn create(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ForUser>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    let body: CreateBody = parse_json(&read_json(&req, payload).await?, "the body")?;
    let keyed = extract::idempotent_id(&req, &auth, &user, "drafts")?;
    let repeat_answers_created = keyed.is_some() && body.id.is_none();
    let id = match (body.id, keyed) {
        (Some(id), _) => parse_uuid(&id, "`id`")?,
        (None, Some(id)) => id,
        (None, None) => uuid::Uuid::new_v4().to_string(),
    };
    let cmd = drafts::Create {
        user_id: user,
        id,
        device_id: body_device(body.device_id, &req)?,
        payload: body.payload,
        origin: device_id(&req),
    };
    match state.drafts.send(Exec(cmd)).await?? {
        Created::New(draft) => Ok(HttpResponse::Created().json(draft)),
        // A retry under the same Idempotency-Key answers as the first did.
        Created::Existing(draft) if repeat_answers_created => {
            Ok(HttpResponse::Created().json(draft))
        }
        Created::Existing(draft) => Ok(HttpResponse::Ok().json(draft)),
    }
}

#[utoipa::path(tag = "drafts", params(("id" = String, Path), ForUser), request_body = UpdateBody, responses((status = 200, description = "Updated (`DRAFT_UPDATED`)", body = Draft), WriteErrors))]
#[put("/api/drafts/{id}")]
pub async fn update(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ForUser>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    let id = draft_id(&path)?;
    let body: UpdateBody = parse_json(&read_json(&req, payload).await?, "the body")?;
    let cmd = drafts::Update {
        user_id: user,
        id,
        device_id: body_device(body.device_id, &req)?,
        payload: body.payload,
        base: base_stamp(body.base_server_updated_at)?,
        origin: device_id(&req),
    };
    let draft = state.drafts.send(Exec(cmd)).await??;
    Ok(HttpResponse::Ok().json(draft))
}

#[utoipa::path(tag = "drafts", params(("id" = String, Path), ForUser), responses((status = 200, description = "The tombstone (`DRAFT_DELETED`)", body = Draft), WriteErrors))]
#[delete("/api/drafts/{id}")]
pub async fn remove(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ForUser>,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    let cmd = drafts::Delete {
        user_id: user,
        id: draft_id(&path)?,
        device_id: device_id(&req),
        origin: device_id(&req),
    };
    let draft = state.drafts.send(Exec(cmd)).await??;
    Ok(HttpResponse::Ok().json(draft))
}

#[utoipa::path(tag = "drafts", params(("id" = String, Path), ForUser), request_body(content = Option<ConvertBody>, description = "Optional: the new order's id"), responses((status = 201, description = "The new pending order (`DRAFT_CONVERTED` + `PENDING_CREATED`)", body = PendingOrder), WriteErrors))]
#[post("/api/drafts/{id}/convert")]
pub async fn convert(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ForUser>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    let id = draft_id(&path)?;
    let has_body = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "0")
        || req
            .headers()
            .contains_key(actix_web::http::header::CONTENT_TYPE);
    let body: ConvertBody = if has_body {
        parse_json(&read_json(&req, payload).await?, "the body")?
    } else {
        ConvertBody::default()
    };
    let order_id = match body.pending_order_id {
        Some(id) => parse_uuid(&id, "`pendingOrderId`")?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let cmd = drafts::Convert {
        user_id: user,
        id,
        device_id: device_id(&req),
        order_id,
        origin: device_id(&req),
    };
    let order = state.drafts.send(Exec(cmd)).await??;
    Ok(HttpResponse::Created().json(order))
}
