//! `GET /ws/realtime`: authenticate, then hand the socket to a session actor.
//!
//! Every refusal (no token, bad token, bad query, too many sockets) is an
//! HTTP error before the upgrade: no socket is opened.

use actix::Actor;
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::{
    core::{
        auth::Role,
        events::RoomKey,
        ids::UserId,
        messages::{ConnInfo, ConnKind},
        wire,
    },
    http::{
        auth::request_token,
        error::ApiError,
        routes::upgrade::{check_upgrade, open_socket, refuse, Opened},
        state::AppState,
    },
    hub::room::{JoinMode, ResumeFrom},
    sessions::realtime::RealtimeSession,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RealtimeQuery {
    #[allow(dead_code)]
    token: Option<String>,
    since: Option<u64>,
    epoch: Option<String>,
    last_event_ts: Option<String>,
    device_id: Option<String>,
    /// Admins only: watch this user's stream (the admin view's inspector).
    user_id: Option<String>,
}

#[get("/ws/realtime")]
pub async fn realtime(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_upgrade(&req, &state)?;
    let token = request_token(&req).ok_or_else(|| {
        refuse(
            "unauthorized",
            ApiError::unauthorized("missing token: add ?token= or `Authorization: Bearer`"),
        )
    })?;
    let claims = state
        .keys
        .verify(&token)
        .map_err(|e| refuse("unauthorized", e.into()))?;
    // The stream of the token's own `sub`, for people only: a cashier or
    // service token whose `sub` happens to be a user id opens nothing.
    if !matches!(claims.role, Role::Agent | Role::Admin) {
        return Err(refuse(
            "forbidden",
            ApiError::forbidden(format!(
                "role `{}` may not open /ws/realtime; it needs agent or admin",
                claims.role.as_str()
            )),
        ));
    }
    let query = web::Query::<RealtimeQuery>::from_query(req.query_string())
        .map_err(|e| {
            refuse(
                "bad_request",
                ApiError::validation(format!("bad query: {e}")),
            )
        })?
        .into_inner();
    // An admin may watch any user's stream; everyone else gets their own.
    let stream_user = match (&query.user_id, claims.role) {
        (None, _) => claims.sub.clone(),
        (Some(user), Role::Admin) if UserId::parse(user).is_ok() => user.clone(),
        (Some(_), Role::Admin) => {
            return Err(refuse(
                "bad_request",
                ApiError::validation("`userId` must be a user id"),
            ))
        }
        (Some(_), _) => {
            return Err(refuse(
                "forbidden",
                ApiError::forbidden("only an admin may watch another user's stream (`userId`)"),
            ))
        }
    };
    let from = match (query.since, query.last_event_ts.as_deref()) {
        (Some(since), _) => ResumeFrom::Seq {
            since,
            epoch: query.epoch.clone(),
        },
        (None, Some(ts)) => ResumeFrom::Time(wire::parse_time_ms(ts).ok_or_else(|| {
            refuse(
                "bad_request",
                ApiError::validation("`lastEventTs` must be ms since the epoch or RFC 3339"),
            )
        })?),
        (None, None) => ResumeFrom::Now,
    };
    if let Some(device) = &query.device_id {
        if device.is_empty() || device.len() > 128 {
            return Err(refuse(
                "bad_request",
                ApiError::validation("`deviceId` must be 1-128 characters"),
            ));
        }
    }
    let Opened {
        conn_id,
        response,
        queue,
        frames,
        ..
    } = open_socket(
        &req,
        body,
        &state,
        state.settings.max_message_bytes as usize,
    )
    .await?;
    let settings = &state.settings;
    let info = ConnInfo {
        node: String::new(),
        id: conn_id,
        kind: ConnKind::Realtime,
        user_id: stream_user.clone(),
        role: claims.role.as_str().to_owned(),
        room: RoomKey::User(stream_user.clone()).stream_id(),
        device_id: query.device_id.clone(),
        remote_addr: req.peer_addr().map(|a| a.to_string()),
        connected_at: wire::format_ms(wire::now_ms()),
        // Only an agent's own sockets are its devices.
        observer: claims.role != Role::Agent,
        room_key: RoomKey::User(stream_user.clone()),
    };
    let join = JoinMode::Realtime {
        user_id: stream_user,
        device_id: query.device_id,
        from,
    };
    let session = RealtimeSession::new(
        info,
        claims,
        join,
        queue,
        state.registry.clone(),
        state.keys.clone(),
        settings.heartbeat(),
        settings.heartbeat_timeout(),
    );
    RealtimeSession::create(|ctx| session.read_from(frames, ctx));
    Ok(response)
}
