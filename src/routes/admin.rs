//! Admin: stats, the list of open sockets, and closing one (4003).

use actix_web::{delete, get, web, HttpResponse};

use crate::{
    actors::registry::{GetStats, Kick, ListConnections},
    auth::Role,
    error::ApiError,
    routes::auth::Authenticated,
    state::AppState,
};

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
