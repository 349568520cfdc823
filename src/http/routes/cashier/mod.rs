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

use actix_web::{http::StatusCode, web, HttpResponse};
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
        extract::parse_json,
        receipts::{Answer, Keyed, Space},
        state::AppState,
    },
    store::venue,
};

#[derive(Deserialize)]
struct WsQuery {
    venue: Option<String>,
    /// `observe=1`: a board watching the venue, not a terminal of it (not
    /// counted in presence).
    observe: Option<String>,
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

/// A body read by [`read_json`](crate::http::extract::read_json) as a JSON object.
fn object(bytes: Result<web::Bytes, ApiError>) -> Result<serde_json::Map<String, Value>, ApiError> {
    match parse_json::<Value>(&bytes?, "the body")? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::validation("the body must be a JSON object")),
    }
}

/// The key space of a venue write: the venue an admin names, else the
/// token's own (a refused venue's key stays the caller's).
fn venue_space<'a>(auth: &'a Authenticated, query: &'a VenueQuery) -> Space<'a> {
    match (&query.venue, auth.0.role) {
        (Some(v), Role::Admin) => Space::Venue(v),
        _ => Space::Venue(auth.0.venue()),
    }
}

/// A terminal change made over REST: the same command a terminal's message
/// runs, answered with the station.
fn apply(venue: String, change: Change) -> venue::Apply {
    venue::Apply {
        venue,
        change,
        client_id: None,
        conn: None,
        answer_device: true,
    }
}

/// The station a change leaves (200), or 204 when it is gone.
fn answer(device: &Option<cashier::Device>) -> Answer {
    match device {
        Some(d) => Answer::json(StatusCode::OK, d),
        None => Answer::no_content(),
    }
}

/// Runs a venue write under its key (if any).
async fn write<C, R>(
    keyed: Keyed,
    state: &AppState,
    cmd: Result<C, ApiError>,
    render: R,
) -> Result<HttpResponse, ApiError>
where
    C: crate::writers::crud::VenueCommand,
    R: FnOnce(&C::Output) -> Answer + Send + 'static,
{
    keyed.write(state, &state.venues, cmd, render).await
}

fn check_id(id: &str) -> Result<String, ApiError> {
    if id.trim().is_empty() || id.len() > 64 {
        return Err(ApiError::validation("a device id is 1-64 characters"));
    }
    Ok(id.to_owned())
}
