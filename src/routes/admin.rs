//! Admin: stats, the list of open sockets, and closing one (4003).

use actix_web::{delete, get, web, HttpResponse};

use crate::{
    actors::registry::{GetStats, Kick, ListConnections},
    auth::Role,
    error::ApiError,
    routes::auth::Authenticated,
    state::AppState,
};

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How far back, in seconds (default 300, at most 600).
    seconds: Option<u32>,
}

/// One sample a second of connections and rates, for the admin view's charts.
#[utoipa::path(tag = "admin", params(HistoryQuery), responses((status = 200, body = [crate::actors::sampler::Sample]), crate::routes::openapi::ReadErrors))]
#[get("/api/admin/history")]
pub async fn history(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let seconds = q.seconds.unwrap_or(300).min(600) as usize;
    let samples = state
        .sampler
        .send(crate::actors::sampler::History { seconds })
        .await?;
    Ok(HttpResponse::Ok().json(samples))
}

#[utoipa::path(tag = "admin", responses((status = 200, body = crate::actors::registry::Stats), crate::routes::openapi::ReadErrors))]
#[get("/api/websocket/stats")]
pub async fn stats(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let stats = state.registry.send(GetStats).await?;
    Ok(HttpResponse::Ok().json(stats))
}

#[utoipa::path(tag = "admin", responses((status = 200, body = [crate::actors::registry::ConnInfo]), crate::routes::openapi::ReadErrors))]
#[get("/api/admin/connections")]
pub async fn connections(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let list = state.registry.send(ListConnections).await?;
    Ok(HttpResponse::Ok().json(list))
}

#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "The connection id")), responses((status = 204, description = "Closed with 4003"), crate::routes::openapi::ReadErrors))]
#[delete("/api/admin/connections/{id}")]
pub async fn kick(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let id = id.into_inner();
    let found = state
        .registry
        .send(Kick {
            conn_id: id.clone(),
        })
        .await?;
    if found {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("no open connection `{id}`")))
    }
}
