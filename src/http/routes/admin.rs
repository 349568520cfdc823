//! Admin: stats, the list of open sockets, and closing one (4003).

use std::time::Duration;

use actix_web::{delete, get, web, HttpResponse};

use crate::{
    bus::{
        told::{self, Told},
        view::{self, ClusterView, NodeView},
    },
    core::{
        auth::Role,
        messages::{ConnInfo, GetStats, Kick, ListConnections, Stats},
    },
    http::{
        auth::Authenticated,
        error::ApiError,
        sampler::{History, Sample},
        schemas::ReadErrors,
        state::AppState,
    },
};

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How far back, in seconds (default 300, at most 600).
    seconds: Option<u32>,
}

/// One sample a second of connections and rates, for the admin view's charts.
#[utoipa::path(tag = "admin", params(HistoryQuery), responses((status = 200, body = [Sample]), ReadErrors))]
#[get("/api/admin/history")]
pub async fn history(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let seconds = q.seconds.unwrap_or(300).min(600) as usize;
    let samples = state.sampler.send(History { seconds }).await?;
    Ok(HttpResponse::Ok().json(samples))
}

/// `/api/websocket/stats`: totals over every live node, and the nodes.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStats {
    #[serde(flatten)]
    pub totals: Stats,
    /// Every live node (one on SQLite).
    pub nodes: Vec<NodeView>,
}

/// This node now, and every other live node as of its last heartbeat.
async fn cluster_view(state: &AppState) -> Result<ClusterView, ApiError> {
    let here = state.registry.send(GetStats).await?;
    let list = state.registry.send(ListConnections).await?;
    Ok(view::view(
        &state.db,
        &state.node,
        state.settings.node_lease(),
        (here, list),
    )
    .await?)
}

#[utoipa::path(tag = "admin", responses((status = 200, body = ClusterStats), ReadErrors))]
#[get("/api/websocket/stats")]
pub async fn stats(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let view = cluster_view(&state).await?;
    Ok(HttpResponse::Ok().json(ClusterStats {
        totals: view.totals(),
        nodes: view.nodes,
    }))
}

#[utoipa::path(tag = "admin", responses((status = 200, body = [ConnInfo]), ReadErrors))]
#[get("/api/admin/connections")]
pub async fn connections(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    Ok(HttpResponse::Ok().json(cluster_view(&state).await?.connections()))
}

/// Closes a socket with 4003, on whichever node holds it (another node's
/// socket is closed by that node's tailer when it reads the kick).
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "The connection id")), responses((status = 204, description = "Closed with 4003"), (status = 202, description = "Held by another node that has not read the kick within 3 s; it closes the connection when it does"), ReadErrors))]
#[delete("/api/admin/connections/{id}")]
pub async fn kick(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let id = id.into_inner();
    let here = state
        .registry
        .send(Kick {
            conn_id: id.clone(),
        })
        .await?;
    if here {
        return Ok(HttpResponse::NoContent().finish());
    }
    let view = cluster_view(&state).await?;
    match view.holder(&id).filter(|n| !n.this_node) {
        Some(node) => {
            // The holder closes it when it reads the message; the answer
            // says whether it has, so a 204 is never a promise.
            let told = Told::Kick {
                conn_id: id.clone(),
            };
            let txid = told::tell_one(&state.db, state.node.id, node.id, &told).await?;
            if told::read_by(&state.db, node.id, txid, Duration::from_secs(3)).await {
                return Ok(HttpResponse::NoContent().finish());
            }
            Ok(HttpResponse::Accepted().json(serde_json::json!({
                "connectionId": id,
                "node": node.name,
                "message": format!(
                    "node {} has not read the kick yet; it closes the connection (4003) when it does, \
                     and the kick is kept until then",
                    node.name
                ),
            })))
        }
        None => Err(ApiError::not_found(format!("no open connection `{id}`"))),
    }
}
