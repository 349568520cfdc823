//! Shapes the API's description names that no handler's own type gives:
//! error bodies, the error statuses of reads and writes, and bodies that
//! handlers read as JSON values. Routes name them in their
//! `#[utoipa::path]` attributes; [`openapi`](super::openapi) lists them.

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// The error shape of every failed call.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// A 409 on a draft carries the stored one; a 410 its tombstone.
    #[schema(value_type = Option<Object>)]
    pub current: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `VALIDATION_FAILED`, `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`, ...
    pub code: String,
    /// What went wrong and what to do next.
    pub message: String,
}

/// The errors a read can answer.
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum ReadErrors {
    /// A bad query or path.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, or a bad or expired one.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The token's role may not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Over the REST rate limit; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The database is unavailable or the server is stopping; retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The `Idempotency-Key` header every write takes.
#[allow(dead_code)]
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Keyed {
    /// Any 1-255 printable characters (a UUID). Repeating it within
    /// `HERALD_IDEMPOTENCY_SECS` answers the first answer (with
    /// `Idempotent-Replayed: true`) and changes nothing; the same key with
    /// another route or body is 409 `IDEMPOTENCY_KEY_REUSED`. The events
    /// the write causes carry it as `mutationId`.
    #[serde(rename = "Idempotency-Key")]
    pub idempotency_key: Option<String>,
}

/// The errors a write can answer.
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum WriteErrors {
    /// Invalid JSON or a field of the wrong shape; nothing was changed.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    #[response(status = 403)]
    Forbidden(ErrorBody),
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A conflict (stale `baseServerUpdatedAt`, an id taken, a job
    /// finished, an `Idempotency-Key` used for another request).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Deleted (a tombstone wins).
    #[response(status = 410)]
    Gone(ErrorBody),
    /// The body is over `HERALD_MAX_MESSAGE_BYTES`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    #[response(status = 429)]
    RateLimited(ErrorBody),
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// `POST /api/publish`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct PublishBody {
    /// One user (give exactly one of `userId`, `userIds`, `all`).
    #[schema(value_type = Option<String>)]
    user_id: Option<String>,
    /// 1 to 10,000 users.
    #[schema(value_type = Option<Vec<String>>)]
    user_ids: Option<Vec<String>>,
    /// Every user with a stream and every user connected now.
    #[schema(value_type = Option<bool>)]
    all: Option<bool>,
    /// `UPPER_SNAKE_CASE`; a type ending in `_PROGRESS` is transient.
    #[schema(rename = "type")]
    kind: String,
    #[schema(value_type = Option<Value>)]
    payload: Option<serde_json::Value>,
}

/// The seq given to each user (`null` for a transient event).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PublishAnswer {
    #[schema(value_type = Object, additional_properties)]
    seqs: std::collections::BTreeMap<String, Option<u64>>,
}

/// Station fields a REST call may set (`POST`/`PUT /api/devices`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct DeviceBody {
    /// Required on create; 1-64 characters.
    device_id: Option<String>,
    name: Option<String>,
    is_running: Option<bool>,
    elapsed_seconds: Option<u64>,
    /// `single` or `multi`.
    mode: Option<String>,
    customer_count: Option<u64>,
    notes: Option<String>,
}

/// Orders to append (`POST /api/devices/{id}/orders`), as a terminal sends them.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrdersBody {
    orders: Vec<NewOrder>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct NewOrder {
    name: String,
    /// Any number from 0 (`1000`, `1000.0`, `12.5`).
    #[schema(minimum = 0)]
    price: f64,
    /// A whole number (`3.0` is 3).
    #[schema(minimum = 0)]
    quantity: u64,
    notes: Option<String>,
    first_order_time: Option<String>,
    last_order_time: Option<String>,
}

/// `POST /api/devices/transfer`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct TransferBody {
    from_device_id: String,
    to_device_id: String,
}

/// `GET /api/me`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Me {
    sub: String,
    role: String,
    venue: Option<String>,
    exp: u64,
}
