//! What both socket upgrades (`/ws/realtime`, `/ws`) share: the checks made
//! before anything else, and opening the socket once the route has decided
//! who it is for. Every refusal is an HTTP error before the upgrade, counted
//! in `herald_socket_rejections_total` by reason.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::{
    core::{events::ConnId, metrics::METRICS},
    http::{error::ApiError, state::AppState},
    sessions::registry::{Disconnect, Reserve},
    socket::{
        queue::{self, Handoff, SendQueue},
        reader::{Frames, MessageLimit},
    },
};

/// Counts a refused upgrade under `reason`, and answers the error.
pub fn refuse(reason: &str, err: ApiError) -> ApiError {
    METRICS.socket_rejections.with_label_values(&[reason]).inc();
    err
}

/// What both upgrades check first: a browser page's origin, and the
/// per-address upgrade rate (a reconnect storm from one client must not
/// starve the others).
pub fn check_upgrade(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    state
        .origins
        .check_upgrade(req)
        .map_err(|e| refuse("origin", e))?;
    if let Some(peer) = req.peer_addr() {
        state
            .limits
            .check_upgrade(peer.ip())
            .map_err(|e| refuse("rate_limited", e.into()))?;
    }
    Ok(())
}

/// A socket, upgraded: its id (its place under the connection limit is
/// held until its session joins or leaves), the 101 answer, its send queue
/// and its incoming frames (at most its `limit` each, which its session may
/// raise up to `HERALD_MAX_MESSAGE_BYTES`).
pub struct Opened {
    pub conn_id: ConnId,
    pub response: HttpResponse,
    pub queue: SendQueue,
    pub frames: Frames,
    pub limit: MessageLimit,
}

/// Takes a place under `HERALD_MAX_CONNECTIONS` (503 when there is none),
/// then upgrades. Messages are limited to `first_limit` bytes until the
/// session raises it (none above `HERALD_MAX_MESSAGE_BYTES`).
pub async fn open_socket(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    first_limit: usize,
) -> Result<Opened, ApiError> {
    let conn_id = ConnId::from(uuid::Uuid::new_v4().to_string());
    let reserve = Reserve {
        conn_id: conn_id.clone(),
    };
    if !state.registry.send(reserve).await.unwrap_or(false) {
        return Err(refuse(
            "too_many",
            ApiError::unavailable("connection limit reached; retry later"),
        ));
    }
    let release = || {
        state.registry.do_send(Disconnect {
            conn_id: conn_id.clone(),
        })
    };
    // The handshake is actix-http's; what the client sends is read by our
    // reader, what we send is written by the connection itself
    // (socket::connection), from the queue handed to it here.
    let mut response = actix_http::ws::handshake(req.head()).map_err(|e| {
        release();
        ApiError::validation(format!("not a WebSocket upgrade: {e}"))
    })?;
    let Some(handoff) = req.extensions().get::<Handoff>().cloned() else {
        release();
        return Err(ApiError::internal(
            "this connection cannot be upgraded here (upgrades are served by src/wsio.rs)",
        ));
    };
    let response = HttpResponse::from(response.finish()).map_into_boxed_body();
    let max = state.settings.max_message_bytes as usize;
    let limit = MessageLimit::new(first_limit.min(max));
    let frames = Frames::new(body.into_inner(), limit.clone(), max);
    let (queue, outgoing) = queue::channel(state.settings.send_queue as usize);
    handoff.put(outgoing);
    Ok(Opened {
        conn_id,
        response,
        queue,
        frames,
        limit,
    })
}
