//! `POST /api/publish`: back ends push any event through the same pipeline
//! as built-in events (stored and replayed unless `*_PROGRESS`).

use std::sync::Arc;

use actix::Addr;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde_json::{json, value::RawValue, Value};

use crate::{
    core::{
        auth::Role,
        ids::UserId,
        wire::realtime::{is_transient, RESERVED_TYPES},
    },
    http::{
        auth::Authenticated,
        error::ApiError,
        receipts::{respond, Keyed, Space},
        routes::device_id,
        schemas::{PublishAnswer, PublishBody, WriteErrors},
        state::AppState,
    },
    store::{
        self,
        receipts::{Reply, Stored},
    },
    writers::publisher::{Publish, PublishError, Publisher, Targets},
};

/// Most users one request may address by `userIds`.
const MAX_USERS: usize = 10_000;

fn valid_event_type(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && kind.starts_with(|c: char| c.is_ascii_uppercase())
}

/// The event types herald emits itself, with its own objects in their
/// payloads (the contract's list, and `JOB_QUEUED`): a publish of one with
/// another payload would break every client that reads them. Answers the
/// REST call that makes the change (and so emits the event) instead.
pub fn herald_owned(kind: &str) -> Option<&'static str> {
    Some(match kind {
        k if k.starts_with("DRAFT_") => {
            "change drafts with POST/PUT/DELETE /api/drafts (and POST /api/drafts/{id}/convert); each emits its event"
        }
        k if k.starts_with("PENDING_") => {
            "change pending orders with POST/PUT/DELETE /api/pending-orders; each emits its event"
        }
        "JOB_PROGRESS" | "JOB_STARTED" => {
            "a worker reports progress with POST /api/jobs/{id}/progress (the first report starts the job)"
        }
        "JOB_COMPLETED" => "a worker finishes a job with POST /api/jobs/{id}/complete",
        "JOB_FAILED" => {
            "a worker fails a job with POST /api/jobs/{id}/fail; an owner cancels it with POST /api/jobs/{id}/cancel"
        }
        "JOB_QUEUED" => "queue a job with POST /api/jobs",
        "PRESENCE_JOINED" | "PRESENCE_LEFT" => {
            "herald sends them as devices connect and leave; read who is connected with GET /api/presence"
        }
        "ORDER_NUMBERS_RESOLVED" => {
            "the built-in submit-pending-orders job emits it: queue one with POST /api/jobs"
        }
        _ => return None,
    })
}

/// Parses and checks a publish body; any problem is a 400 naming the field.
fn parse(body: &Value) -> Result<(Targets, String, Arc<RawValue>), ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::validation("the body must be a JSON object"))?;
    for key in obj.keys() {
        if !["userId", "userIds", "all", "type", "payload"].contains(&key.as_str()) {
            return Err(ApiError::validation(format!(
                "unknown field `{key}`; expected userId, userIds or all, type, payload"
            )));
        }
    }
    let kind = match obj.get("type") {
        Some(Value::String(k)) if valid_event_type(k) => k.clone(),
        Some(Value::String(k)) => {
            return Err(ApiError::validation(format!(
                "`type` must be UPPER_SNAKE_CASE, 1-64 characters (got `{k}`)"
            )))
        }
        Some(_) => return Err(ApiError::validation("`type` must be a string")),
        None => return Err(ApiError::validation("missing `type`")),
    };
    if RESERVED_TYPES.contains(&kind.as_str()) {
        return Err(ApiError::validation(format!(
            "`{kind}` is reserved for the server's own messages"
        )));
    }
    if let Some(instead) = herald_owned(&kind) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "RESERVED_TYPE",
            format!("`{kind}` carries herald's own objects and cannot be published: {instead}"),
        ));
    }
    let chosen = ["userId", "userIds", "all"]
        .iter()
        .filter(|k| obj.contains_key(**k))
        .count();
    if chosen != 1 {
        return Err(ApiError::validation(
            "give exactly one of `userId`, `userIds` or `all: true`",
        ));
    }
    let targets = if let Some(v) = obj.get("userId") {
        match v.as_str() {
            Some(id) if UserId::parse(id).is_ok() => Targets::Users(vec![id.to_owned()]),
            _ => return Err(ApiError::validation("`userId` must be a non-empty string")),
        }
    } else if let Some(v) = obj.get("userIds") {
        let list = v
            .as_array()
            .ok_or_else(|| ApiError::validation("`userIds` must be an array of strings"))?;
        if list.is_empty() || list.len() > MAX_USERS {
            return Err(ApiError::validation(format!(
                "`userIds` must hold 1 to {MAX_USERS} user ids"
            )));
        }
        let mut users = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            match item.as_str() {
                Some(id) if UserId::parse(id).is_ok() => users.push(id.to_owned()),
                _ => {
                    return Err(ApiError::validation(format!(
                        "`userIds[{i}]` must be a non-empty string"
                    )))
                }
            }
        }
        users.sort();
        users.dedup();
        Targets::Users(users)
    } else {
        match obj.get("all") {
            Some(Value::Bool(true)) => Targets::All,
            _ => return Err(ApiError::validation("`all` must be `true`")),
        }
    };
    let payload = obj.get("payload").cloned().unwrap_or(Value::Null);
    let payload = serde_json::value::to_raw_value(&payload)
        .map_err(|e| ApiError::validation(format!("bad payload: {e}")))?;
    Ok((targets, kind, payload.into()))
}

fn too_large(users: usize, bytes: usize, cap: u64) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        "PUBLISH_TOO_LARGE",
        format!(
            "{users} recipients × {bytes} payload bytes is over the {cap}-byte limit \
             (HERALD_MAX_PUBLISH_BYTES); split the recipients over several requests \
             or send a smaller payload"
        ),
    )
}

#[utoipa::path(tag = "publish", request_body = PublishBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key and body within 24 h answers the first publish and publishes nothing again"),
        ("X-Device-Id" = Option<String>, Header, description = "Echoed as `originDeviceId`"),
    ),
    responses((status = 200, description = "The seq given to each user", body = PublishAnswer), WriteErrors))]
#[post("/api/publish")]
pub async fn publish(
    auth: Authenticated,
    state: web::Data<AppState>,
    publisher: web::Data<Addr<Publisher>>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Service, Role::Admin])?;
    // A publish's key is its caller's: two back ends may pick the same.
    let keyed = Keyed::of_value(&req, &state, Space::User(&auth.0.sub), &body)?;
    if let Some(stored) = keyed.stored(&state).await? {
        return Ok(stored);
    }
    let (targets, kind, payload) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(err) => return keyed.refuse(&state, err).await,
    };
    let cap = state.settings.max_publish_bytes;
    let mutation_id = keyed.receipt().map(|r| r.mutation_id.clone());
    // A transient event is not stored, nor is its answer: a repeated
    // progress report is harmless.
    let idempotency = keyed.receipt().filter(|_| !is_transient(&kind)).cloned();
    let sent = publisher
        .send(Publish {
            targets,
            kind,
            payload,
            origin: device_id(&req),
            idempotency,
            mutation_id,
        })
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down; retry"))?;
    let published = match sent {
        Ok(published) => published,
        Err(PublishError::TooLarge { users, bytes }) => {
            return keyed.refuse(&state, too_large(users, bytes, cap)).await
        }
        Err(PublishError::Database(msg)) => {
            return Err(ApiError::unavailable(format!(
                "the event was not stored ({msg}); nothing was sent, retry later"
            )))
        }
        Err(PublishError::Stopped) => {
            return Err(ApiError::unavailable("the server is shutting down; retry"))
        }
        Err(PublishError::KeyReused) => return Err(store::receipts::reused().into()),
    };
    Ok(respond(Reply {
        stored: Stored {
            status: 200,
            body: json!({ "seqs": published.seqs }).to_string(),
        },
        replayed: published.replayed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let ok = |v: Value| parse(&v).is_ok();
        assert!(ok(json!({"userId":"a","type":"X_CREATED","payload":{}})));
        assert!(ok(json!({"userIds":["a","b"],"type":"SYNC_PROGRESS"})));
        assert!(ok(json!({"all":true,"type":"SYNC_COMPLETED","payload":1})));
        assert!(!ok(json!([])));
        assert!(!ok(json!({"userId":"a"})));
        assert!(!ok(json!({"userId":"a","type":"lower"})));
        assert!(!ok(json!({"userId":"a","type":"CONNECTED"})));
        assert!(!ok(json!({"userId":"a","userIds":["b"],"type":"X"})));
        assert!(!ok(json!({"userIds":[],"type":"X"})));
        assert!(!ok(json!({"userIds":["a", 3],"type":"X"})));
        assert!(!ok(json!({"all":false,"type":"X"})));
        assert!(!ok(json!({"userId":"","type":"X"})));
        assert!(!ok(json!({"userId":"a","type":"X","extra":1})));
        for reserved in [
            "DRAFT_CREATED",
            "PENDING_DELETED",
            "JOB_PROGRESS",
            "JOB_STARTED",
            "JOB_COMPLETED",
            "JOB_FAILED",
            "ORDER_NUMBERS_RESOLVED",
        ] {
            let err = parse(&json!({"userId":"a","type":reserved,"payload":{}})).unwrap_err();
            assert_eq!(err.code, "RESERVED_TYPE", "{reserved}");
        }
        assert!(ok(json!({"userId":"a","type":"SYNC_PROGRESS"})));
        assert!(ok(json!({"userId":"a","type":"ORDER_EDIT_COMPLETE"})));
    }
}
