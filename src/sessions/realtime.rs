//! One dashboard socket on `/ws/realtime`.
//!
//! Authentication already happened at the upgrade. The session joins its
//! user's room through the registry, then answers `PING`, `REFRESH_TOKEN` and
//! protocol pings, watches the heartbeat and the token's expiry, and closes
//! with the contract's codes. Everything it sends goes through its
//! [`SendQueue`], the same queue the room fans events into.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_ws::AggregatedMessage;

use crate::{
    core::{
        auth::{until_expiry, AuthError, Claims, TokenKeys},
        messages::{ConnInfo, SessionCtl},
        wire::{
            close,
            realtime::{self, ClientMessage},
        },
    },
    hub::room::{ConnId, JoinMode},
    sessions::registry::{Connect, Disconnect, Registry},
    socket::{
        queue::SendQueue,
        reader::{FrameError, Frames},
    },
};

pub struct RealtimeSession {
    id: ConnId,
    /// The user whose stream this socket reads: the token's `sub`, or for an
    /// admin the `?userId=` it asked to watch.
    stream_user: String,
    /// What the registry is told when the session starts; the registry
    /// keeps it, so the session lets go of its copy then.
    joining: Option<Box<(ConnInfo, JoinMode)>>,
    pub claims: Claims,
    pub queue: SendQueue,
    pub registry: Addr<Registry>,
    pub keys: TokenKeys,
    pub heartbeat: Duration,
    pub heartbeat_timeout: Duration,
    last_heard: Instant,
    expiry: Option<SpawnHandle>,
    /// The client's frames, until the server stops reading them.
    reading: Option<SpawnHandle>,
}

impl RealtimeSession {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        info: ConnInfo,
        claims: Claims,
        join: JoinMode,
        queue: SendQueue,
        registry: Addr<Registry>,
        keys: TokenKeys,
        heartbeat: Duration,
        heartbeat_timeout: Duration,
    ) -> Self {
        RealtimeSession {
            id: info.id.clone(),
            stream_user: info.user_id.clone(),
            joining: Some(Box::new((info, join))),
            claims,
            queue,
            registry,
            keys,
            heartbeat,
            heartbeat_timeout,
            last_heard: Instant::now(),
            expiry: None,
            reading: None,
        }
    }

    fn id(&self) -> ConnId {
        self.id.clone()
    }

    fn close(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        self.queue.close(code, reason);
        ctx.stop();
    }

    fn send_error(&mut self, code: &str, message: &str, ctx: &mut Context<Self>) {
        self.send(realtime::error_frame(code, message), ctx);
    }

    fn send(&mut self, frame: bytestring::ByteString, ctx: &mut Context<Self>) {
        if self.queue.push(frame).is_err() {
            self.too_slow(ctx);
        }
    }

    fn too_slow(&mut self, ctx: &mut Context<Self>) {
        self.queue.close_now(close::TOO_SLOW);
        ctx.stop();
    }

    /// Closes with 4001 at the token's `exp`.
    fn schedule_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        self.expiry = Some(ctx.run_later(until_expiry(self.claims.exp), |act, ctx| {
            act.close(close::TOKEN_EXPIRED, "token expired", ctx);
        }));
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match realtime::parse_client_message(text) {
            Ok(ClientMessage::Ping) => self.send(
                realtime::control_frame(realtime::PONG, &serde_json::json!({})),
                ctx,
            ),
            Ok(ClientMessage::RefreshToken(token)) => self.refresh(&token, ctx),
            Err(err) => self.send_error(err.code, &err.message, ctx),
        }
    }

    fn refresh(&mut self, token: &str, ctx: &mut Context<Self>) {
        let claims = match self.keys.verify(token) {
            Ok(claims) => claims,
            Err(AuthError::Expired) => {
                return self.send_error("INVALID_TOKEN", "the new token is already expired", ctx)
            }
            Err(err) => return self.send_error("INVALID_TOKEN", &err.to_string(), ctx),
        };
        if claims.sub != self.claims.sub {
            return self.send_error(
                "INVALID_TOKEN",
                "the new token is for another user; reconnect instead",
                ctx,
            );
        }
        // The checks of the upgrade, again: a token that could not open this
        // stream cannot keep it open either.
        if let Err(why) = may_read_stream(&claims, &self.stream_user) {
            self.send_error("FORBIDDEN", &why, ctx);
            return self.close(close::FORBIDDEN, &why, ctx);
        }
        if claims.exp <= self.claims.exp {
            return self.send_error(
                "INVALID_TOKEN",
                "the new token must expire later than the current one",
                ctx,
            );
        }
        self.claims = claims;
        self.schedule_expiry(ctx);
        let exp = self.claims.exp;
        self.send(
            realtime::control_frame(
                realtime::TOKEN_REFRESHED,
                &serde_json::json!({ "exp": exp }),
            ),
            ctx,
        );
    }
}

impl RealtimeSession {
    /// Reads the client's frames from `frames` (until the server stops).
    pub fn read_from(mut self, frames: Frames, ctx: &mut Context<Self>) -> Self {
        self.reading = Some(ctx.add_stream(frames));
        self
    }
}

impl Actor for RealtimeSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (info, mode) = *self.joining.take().expect("a session starts once");
        let connect = Connect {
            info,
            queue: self.queue.clone(),
            ctl: ctx.address().recipient(),
            mode,
        };
        // Nothing (not even a PONG) may overtake CONNECTED: wait for the join.
        ctx.wait(
            self.registry
                .send(connect)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        log::warn!("connection {} refused: {err}", act.id);
                        act.close(err.close_code(), &err.to_string(), ctx);
                    }
                    Err(_) => act.close(close::INTERNAL, "server busy; reconnect", ctx),
                }),
        );
        self.schedule_expiry(ctx);
        ctx.run_interval(self.heartbeat, |act, ctx| {
            if act.last_heard.elapsed() > act.heartbeat_timeout {
                log::info!("connection {} missed its heartbeats; closing", act.id);
                act.close(close::NORMAL, "heartbeat timeout", ctx);
            } else if act.queue.ping().is_err() {
                act.too_slow(ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Also after a refused join: the registry ignores unknown ids.
        self.registry.do_send(Disconnect { conn_id: self.id() });
    }
}

impl StreamHandler<Result<AggregatedMessage, FrameError>> for RealtimeSession {
    fn handle(&mut self, msg: Result<AggregatedMessage, FrameError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match on_frame(&self.queue, msg) {
            Incoming::Text(text) => self.on_text(&text, ctx),
            Incoming::Binary => self.send_error(
                "UNSUPPORTED",
                "binary frames are not supported; send JSON text",
                ctx,
            ),
            Incoming::Handled => {}
            Incoming::Close(code) => self.close(code, "", ctx),
            Incoming::CloseNow(code) => {
                self.queue.close_now(code);
                ctx.stop();
            }
        }
    }
}

/// Whether `claims` may read `stream_user`'s stream on `/ws/realtime`: agents
/// and admins their own, admins any user's (`?userId=`). The upgrade and
/// every `REFRESH_TOKEN` ask the same question.
pub fn may_read_stream(claims: &Claims, stream_user: &str) -> Result<(), String> {
    use crate::core::auth::Role;
    match claims.role {
        Role::Agent | Role::Admin if claims.sub == stream_user => Ok(()),
        Role::Admin => Ok(()),
        Role::Agent => Err(format!(
            "an agent token reads only its own stream, not `{stream_user}`'s; only an admin may watch another user"
        )),
        role => Err(format!(
            "role `{}` may not read /ws/realtime; it needs agent or admin",
            role.as_str()
        )),
    }
}

/// What a frame from the client leaves for its session to do. Both socket
/// kinds read frames the same way: protocol pings are answered here, a close
/// is echoed, a broken or oversized frame closes at once with its code; only
/// text (and what to say about binary) is theirs.
pub enum Incoming {
    Text(bytestring::ByteString),
    Binary,
    /// Nothing more to do (a ping answered, a pong).
    Handled,
    /// Close after what is queued, with this code.
    Close(u16),
    /// Close ahead of anything queued (too slow, protocol error, too big).
    CloseNow(u16),
}

pub fn on_frame(queue: &SendQueue, msg: Result<AggregatedMessage, FrameError>) -> Incoming {
    match msg {
        Ok(AggregatedMessage::Text(text)) => Incoming::Text(text),
        Ok(AggregatedMessage::Binary(_)) => Incoming::Binary,
        Ok(AggregatedMessage::Ping(data)) => match queue.pong(data) {
            Ok(()) => Incoming::Handled,
            Err(_) => Incoming::CloseNow(close::TOO_SLOW),
        },
        Ok(AggregatedMessage::Pong(_)) => Incoming::Handled,
        Ok(AggregatedMessage::Close(reason)) => {
            Incoming::Close(reason.map(|r| u16::from(r.code)).unwrap_or(close::NORMAL))
        }
        Err(err) => {
            log::debug!("closing a socket: {err}");
            Incoming::CloseNow(err.close_code())
        }
    }
}

impl Handler<SessionCtl> for RealtimeSession {
    type Result = ();

    fn handle(&mut self, msg: SessionCtl, ctx: &mut Self::Context) {
        match msg {
            SessionCtl::Close { code, reason } => self.close(code, &reason, ctx),
            SessionCtl::TooSlow => self.too_slow(ctx),
            SessionCtl::StopReading | SessionCtl::Replaced => {
                if let Some(reading) = self.reading.take() {
                    ctx.cancel_future(reading);
                }
            }
        }
    }
}
