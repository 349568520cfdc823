//! REST errors: `{"error": {"code": "SNAKE_CASE_CODE", "message": "..."}}`
//! with a fitting status, for every way a request can fail.

use actix_web::{
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::StatusCode,
    HttpRequest, HttpResponse, ResponseError,
};
use serde_json::{json, Value};

use crate::{core::auth::AuthError, store::command::DomainError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra top-level fields (a 409 carries the `current` resource).
    pub extra: Option<(&'static str, Value)>,
    /// `Retry-After` seconds (a 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
            retry_after: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "GONE", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra = Some((key, value));
        self
    }

    pub fn body(&self) -> Value {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some((key, value)) = &self.extra {
            body[*key] = value.clone();
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs));
        }
        res.json(self.body())
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        ApiError::unauthorized(err.to_string())
    }
}

/// An actor that no longer answers: the server is stopping.
impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::unavailable("the server is shutting down; retry")
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        log::error!("database error: {err}");
        ApiError::unavailable(format!(
            "the database refused the change ({err}); nothing was applied, retry later"
        ))
    }
}

/// 413 for a body over the limit (`HERALD_MAX_MESSAGE_BYTES`).
pub fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("the body is over the {limit}-byte limit (HERALD_MAX_MESSAGE_BYTES); send less"),
    )
}

/// Bad or oversized JSON bodies.
pub fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => body_too_large(*limit),
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonPayloadError::Deserialize(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("invalid JSON body: {e}"),
        ),
        other => ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", other.to_string()),
    };
    api.into()
}

pub fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::validation(format!("bad query string: {err}")).into()
}

pub fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::validation(format!("bad path: {err}")).into()
}

/// A domain's refusal as the REST answer the contract gives it.
impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Db(e) => e.into(),
            refusal => ApiError::of_refusal(&refusal).expect("not a database error"),
        }
    }
}

impl ApiError {
    /// The answer a command's refusal gets; `None` for a database failure
    /// (no answer to keep: a retry runs again).
    pub fn of_refusal(err: &DomainError) -> Option<ApiError> {
        Some(match err {
            DomainError::Validation(m) => ApiError::validation(m.clone()),
            DomainError::NotFound(m) => ApiError::not_found(m.clone()),
            DomainError::Conflict {
                code,
                message,
                current,
            } => {
                let e = ApiError::conflict(code, message.clone());
                match current {
                    Some(c) => e.with("current", c.clone()),
                    None => e,
                }
            }
            DomainError::Gone { message, current } => {
                ApiError::gone(message.clone()).with("current", current.clone())
            }
            DomainError::Refused { code, message } => {
                let status = match *code {
                    "DEVICE_NOT_FOUND" | "ORDER_NOT_FOUND" => StatusCode::NOT_FOUND,
                    "DEVICE_EXISTS" => StatusCode::CONFLICT,
                    "UNAUTHORIZED" => StatusCode::UNAUTHORIZED,
                    "RATE_LIMITED" => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, code, message.clone())
            }
            DomainError::Db(_) => return None,
        })
    }
}
