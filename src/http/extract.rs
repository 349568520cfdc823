//! Request helpers shared by the REST routes: JSON bodies read byte for byte
//! (so payloads are stored exactly as sent), and who a request acts for.

use actix_web::{http::header, web, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::{
    core::{auth::Role, ids::UserId, wire},
    http::{
        auth::Authenticated,
        error::{body_too_large, ApiError},
        state::AppState,
    },
};

/// Reads a JSON body (at most `HERALD_MAX_MESSAGE_BYTES`, else 413;
/// `Content-Type` must be JSON).
pub async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.max_message_bytes as usize)
        .unwrap_or(wire::MAX_MESSAGE_BYTES);
    let too_large = || body_too_large(limit);
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::validation(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses `bytes` as `T`: bad syntax is `INVALID_JSON`, a wrong shape is
/// `VALIDATION_FAILED` naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| json_problem(e, what))
}

pub fn json_problem(e: serde_json::Error, what: &str) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("{what} is not valid JSON: {e}"),
        ),
        Category::Data => ApiError::validation(format!("{what}: {e}")),
    }
}

/// The user a dashboard request acts for: agents act for themselves; admins
/// and services for `?userId=` (or themselves).
pub fn acting_user(auth: &Authenticated, requested: Option<&str>) -> Result<String, ApiError> {
    auth.require(&[Role::Agent, Role::Admin, Role::Service])?;
    let claims = &auth.0;
    match requested {
        None => Ok(claims.sub.clone()),
        Some(user) if user == claims.sub => Ok(user.to_owned()),
        Some(user) if claims.role.is_privileged() => UserId::parse(user)
            .map(UserId::into_string)
            .map_err(|e| ApiError::validation(format!("`userId`: {e}"))),
        Some(_) => Err(ApiError::forbidden(
            "agents act only for themselves; drop `userId`",
        )),
    }
}

/// The request's `Idempotency-Key` header, if it has one (1-255 visible
/// ASCII characters, else 400).
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(Some)
        .ok_or_else(|| {
            ApiError::validation("`Idempotency-Key` must be 1-255 visible ASCII characters")
        })
}

/// One unambiguous name for a tuple of strings: each part is prefixed by
/// its length, so no choice of parts (a `sub` with `:` in it, say) can
/// spell another tuple's name.
pub fn scope(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        out.push_str(&part.len().to_string());
        out.push(':');
        out.push_str(part);
    }
    out
}

/// The id a create with an `Idempotency-Key` gives its new resource: the
/// same key (of the same caller, for the same user) always names the same
/// id, so a retried create finds what the first one made, inside the
/// create's own transaction. `None` without the header.
pub fn idempotent_id(
    req: &HttpRequest,
    auth: &Authenticated,
    user: &str,
    what: &str,
) -> Result<Option<String>, ApiError> {
    let Some(key) = idempotency_key(req)? else {
        return Ok(None);
    };
    let name = scope(&[what, &auth.0.sub, user, key]);
    Ok(Some(
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string(),
    ))
}

/// Query parameters every dashboard list and change accepts.
#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ForUser {
    /// `admin` and `service` act for this user (agents: only themselves).
    pub user_id: Option<String>,
    /// Lists: tombstones too.
    #[serde(default)]
    pub include_deleted: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::scope;

    #[test]
    fn scopes_of_different_tuples_never_collide() {
        assert_ne!(
            scope(&["publish", "a:b", "c"]),
            scope(&["publish", "a", "b:c"])
        );
        assert_ne!(scope(&["x", "1:a"]), scope(&["x1", "a"]));
        assert_eq!(
            scope(&["publish", "svc", "k"]),
            scope(&["publish", "svc", "k"])
        );
    }
}
