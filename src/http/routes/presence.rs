//! `GET /api/presence`: which devices are connected now, on every node.

use actix_web::{get, web, HttpResponse};

use crate::{
    core::{auth::Role, ids::UserId},
    http::{auth::Authenticated, error::ApiError, schemas::ReadErrors, state::AppState},
    sessions::presence::{GetPresence, Snapshot},
};

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PresenceQuery {
    /// Admins and services: one user's devices.
    user_id: Option<String>,
    /// Admins and services: one venue's terminals.
    venue: Option<String>,
}

/// An agent sees its own user's devices, a cashier token its venue's
/// terminals, an admin or a service every stream (or those it names).
#[utoipa::path(tag = "presence", params(PresenceQuery), responses((status = 200, description = "Devices per user and per venue", body = Snapshot), ReadErrors))]
#[get("/api/presence")]
pub async fn presence(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<PresenceQuery>,
) -> Result<HttpResponse, ApiError> {
    let claims = &auth.0;
    let ask = match claims.role {
        Role::Admin | Role::Service => GetPresence {
            user: query
                .user_id
                .as_deref()
                .map(|u| UserId::parse(u).map(UserId::into_string))
                .transpose()
                .map_err(|e| ApiError::validation(format!("`userId`: {e}")))?,
            venue: match query.venue.as_deref() {
                Some(v) if v.is_empty() || v.len() > 64 => {
                    return Err(ApiError::validation("`venue` must be 1-64 characters"))
                }
                other => other.map(str::to_owned),
            },
            only_named: query.user_id.is_some() || query.venue.is_some(),
        },
        Role::Agent => {
            if query.venue.is_some() || query.user_id.as_deref().is_some_and(|u| u != claims.sub) {
                return Err(ApiError::forbidden(
                    "an agent sees only its own devices; drop `userId` and `venue`",
                ));
            }
            GetPresence {
                user: Some(claims.sub.clone()),
                venue: None,
                only_named: true,
            }
        }
        Role::Cashier => {
            if query.user_id.is_some()
                || query.venue.as_deref().is_some_and(|v| v != claims.venue())
            {
                return Err(ApiError::forbidden(
                    "a terminal's token sees only its own venue",
                ));
            }
            GetPresence {
                user: None,
                venue: Some(claims.venue().to_owned()),
                only_named: true,
            }
        }
    };
    let snapshot = state.presence.send(ask).await?;
    Ok(HttpResponse::Ok().json(snapshot))
}
