//! `GET /ws` (cashier terminals) and the venue REST API: devices, their
//! orders, categories and products. REST changes go through the same venue
//! actor and commands as terminal messages and broadcast to every terminal.

mod catalog;
mod devices;
mod orders;
mod ws;

pub use catalog::*;
pub use devices::*;
pub use orders::*;
pub use ws::*;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    core::{
        auth::Role,
        wire::cashier::{self, Change, Refusal},
    },
    http::{
        auth::Authenticated,
        error::ApiError,
        extract::{parse_json, read_json},
        state::AppState,
    },
    store::venue,
    writers::crud::Exec,
};

#[derive(Deserialize)]
struct WsQuery {
    venue: Option<String>,
}

pub(super) fn refused(refusal: Refusal) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::BAD_REQUEST,
        refusal.code,
        refusal.message,
    )
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VenueQuery {
    /// An admin may act on another venue than the token's.
    venue: Option<String>,
}

/// The venue a REST call acts on: the token's; admins may name another.
fn venue_of(auth: &Authenticated, query: &VenueQuery) -> Result<String, ApiError> {
    auth.require(&[Role::Cashier, Role::Admin])?;
    match (&query.venue, auth.0.role) {
        (Some(v), Role::Admin) if !v.is_empty() && v.len() <= 64 => Ok(v.clone()),
        (Some(v), _) if v == auth.0.venue() => Ok(v.clone()),
        (Some(_), Role::Admin) => Err(ApiError::validation("`venue` must be 1-64 characters")),
        (Some(_), _) => Err(ApiError::forbidden("this token is for another venue")),
        (None, _) => Ok(auth.0.venue().to_owned()),
    }
}

async fn object(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let bytes = read_json(req, payload).await?;
    match parse_json::<Value>(&bytes, "the body")? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::validation("the body must be a JSON object")),
    }
}

async fn apply(
    state: &AppState,
    venue: String,
    change: Change,
) -> Result<Option<cashier::Device>, ApiError> {
    let cmd = venue::Apply {
        venue,
        change,
        client_id: None,
        conn: None,
        answer_device: true,
    };
    Ok(state.venues.send(Exec(cmd)).await??)
}

fn answer(device: Option<cashier::Device>) -> HttpResponse {
    match device {
        Some(d) => HttpResponse::Ok().json(d),
        None => HttpResponse::NoContent().finish(),
    }
}

fn check_id(id: &str) -> Result<String, ApiError> {
    if id.trim().is_empty() || id.len() > 64 {
        return Err(ApiError::validation("a device id is 1-64 characters"));
    }
    Ok(id.to_owned())
}
