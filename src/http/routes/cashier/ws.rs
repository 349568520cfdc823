//! `GET /ws`: a cashier terminal's socket, authenticated at the upgrade or
//! by its `connect` message.

use actix::Actor;
use actix_web::{get, web, HttpRequest, HttpResponse};

use super::WsQuery;
use crate::{
    core::{
        auth::{Claims, Role},
        config::CashierAuth,
    },
    http::{
        auth::request_token,
        error::ApiError,
        routes::upgrade::{check_upgrade, open_socket, refuse, Opened},
        state::AppState,
    },
    sessions::terminal::{CashierConfig, CashierSession},
    socket::reader::PRE_AUTH_MESSAGE_BYTES,
};

#[get("/ws")]
pub async fn terminal(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_upgrade(&req, &state)?;
    let claims: Option<Claims> = match request_token(&req) {
        None => None,
        Some(token) => {
            let claims = state
                .keys
                .verify(&token)
                .map_err(|e| refuse("unauthorized", e.into()))?;
            if !matches!(claims.role, Role::Cashier | Role::Admin) {
                return Err(refuse(
                    "forbidden",
                    ApiError::forbidden(format!(
                        "role `{}` may not use /ws; it needs cashier or admin",
                        claims.role.as_str()
                    )),
                ));
            }
            Some(claims)
        }
    };
    let query = web::Query::<WsQuery>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or(WsQuery {
            venue: None,
            observe: None,
        });
    let observer = matches!(query.observe.as_deref(), Some("1" | "true"))
        || claims.as_ref().is_some_and(|c| c.role == Role::Admin);
    if let Some(v) = &query.venue {
        if v.is_empty() || v.len() > 64 {
            return Err(ApiError::validation("`venue` must be 1-64 characters"));
        }
    }
    let Opened {
        conn_id,
        response,
        queue,
        frames,
        limit,
    } = open_socket(&req, body, &state, PRE_AUTH_MESSAGE_BYTES).await?;
    let settings = &state.settings;
    let config = CashierConfig {
        auth_required: settings.cashier_auth == CashierAuth::Required,
        heartbeat: settings.heartbeat(),
        heartbeat_timeout: settings.heartbeat_timeout(),
        idle_timeout: settings.idle_timeout(),
        rate_per_second: settings.cashier_rate,
        writes: state.writes.clone(),
    };
    let session = CashierSession::new(
        conn_id,
        config,
        queue,
        state.registry.clone(),
        state.venues.clone(),
        state.keys.clone(),
        claims,
        query.venue,
        req.peer_addr().map(|a| a.to_string()),
    )
    .with_limit(limit, settings.max_message_bytes as usize)
    .observing(observer);
    CashierSession::create(|ctx| session.read_from(frames, ctx));
    Ok(response)
}
