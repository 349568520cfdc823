//! One cashier terminal on `/ws`.
//!
//! The terminal says `connect` first (with its `clientId`, and a token when
//! the upgrade carried none); the session then joins the venue's room, which
//! answers `connected`. Every change message is validated here, applied by
//! the venue actor in one transaction, and broadcast by the room to every
//! other terminal; errors go back to the sender only. A terminal silent for
//! `HERALD_IDLE_TIMEOUT_SECS` is closed with 1000.

mod connect;
mod rate;

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_ws::AggregatedMessage;

pub use rate::RateLimit;

use crate::{
    core::auth::{until_expiry, Claims, TokenKeys},
    core::drain::Inflight,
    core::messages::SessionCtl,
    core::wire::{
        cashier::{self, codes, ClientMessage},
        close,
    },
    hub::room::ConnId,
    sessions::realtime::{on_frame, Incoming},
    sessions::registry::{Disconnect, Registry},
    socket::queue::SendQueue,
    socket::reader::{FrameError, Frames, MessageLimit},
    store::command::DomainError,
    store::venue,
    writers::crud::{Exec, VenueActor},
};

/// How long a terminal may take to send `connect`.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Settings a terminal session needs.
#[derive(Clone)]
pub struct CashierConfig {
    pub auth_required: bool,
    pub heartbeat: Duration,
    pub heartbeat_timeout: Duration,
    pub idle_timeout: Duration,
    pub rate_per_second: u32,
    /// Changes read and not yet committed (a graceful stop waits for them).
    pub writes: Inflight,
}

pub struct CashierSession {
    id: ConnId,
    config: CashierConfig,
    queue: SendQueue,
    registry: Addr<Registry>,
    venues: Addr<VenueActor>,
    keys: TokenKeys,
    /// From the upgrade's token, or the `connect` message's.
    claims: Option<Claims>,
    /// `?venue=` of the upgrade (admins, or terminals when auth is off).
    asked_venue: Option<String>,
    remote: Option<String>,
    venue: Option<String>,
    client_id: Option<String>,
    /// A board watching the venue, not one of its terminals.
    observer: bool,
    last_frame: Instant,
    last_message: Instant,
    rate: RateLimit,
    /// Closes with 4001 at the token's `exp`.
    expiry: Option<SpawnHandle>,
    /// The client's frames, until the server stops reading them.
    reading: Option<SpawnHandle>,
    duties: Duties,
    /// The largest message this terminal may send: small until its
    /// `connect` is accepted, then `HERALD_MAX_MESSAGE_BYTES`.
    limit: Option<(MessageLimit, usize)>,
}

/// When the session's periodic checks are next due. They share one timer,
/// which keeps a terminal's actor context within its inline slots: an idle
/// socket costs no heap for its list of timers.
#[derive(Clone, Copy)]
struct Duties {
    /// A terminal that has not sent `connect` by then is closed.
    connect_by: Option<Instant>,
    /// The next ping, and heartbeat-timeout check (every `heartbeat`).
    heartbeat: Instant,
    /// The next idle-timeout check.
    idle_check: Instant,
}

/// How often the idle timeout is checked: a tenth of it, within 0.2-10 s.
fn idle_check(idle_timeout: Duration) -> Duration {
    (idle_timeout / 10).clamp(Duration::from_millis(200), Duration::from_secs(10))
}

impl CashierSession {
    /// Marks this socket as a board watching the venue (not a terminal of
    /// it, for presence).
    pub fn observing(mut self, observer: bool) -> Self {
        self.observer = observer;
        self
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ConnId,
        config: CashierConfig,
        queue: SendQueue,
        registry: Addr<Registry>,
        venues: Addr<VenueActor>,
        keys: TokenKeys,
        claims: Option<Claims>,
        asked_venue: Option<String>,
        remote: Option<String>,
    ) -> Self {
        let rate = RateLimit::new(config.rate_per_second);
        let now = Instant::now();
        let idle_check = idle_check(config.idle_timeout);
        CashierSession {
            id,
            queue,
            registry,
            venues,
            keys,
            claims,
            asked_venue,
            remote,
            venue: None,
            client_id: None,
            observer: false,
            last_frame: now,
            last_message: now,
            rate,
            expiry: None,
            reading: None,
            duties: Duties {
                connect_by: Some(now + CONNECT_DEADLINE),
                heartbeat: now + config.heartbeat,
                idle_check: now + idle_check,
            },
            config,
            limit: None,
        }
    }

    /// The socket's message limit, raised to `max` once `connect` is accepted.
    pub fn with_limit(mut self, limit: MessageLimit, max: usize) -> Self {
        self.limit = Some((limit, max));
        self
    }

    /// Runs the checks that are due at the earliest of them.
    fn schedule_duties(&mut self, ctx: &mut Context<Self>) {
        let d = self.duties;
        let next = d.connect_by.map_or(d.heartbeat, |t| t.min(d.heartbeat));
        let next = next.min(d.idle_check);
        ctx.run_later(
            next.saturating_duration_since(Instant::now()),
            |act, ctx| act.run_duties(ctx),
        );
    }

    /// The connect deadline, the heartbeat (ping, or close after
    /// `heartbeat_timeout` of silence) and the idle timeout, each on its own
    /// period as if it had a timer of its own.
    fn run_duties(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if self.duties.connect_by.is_some_and(|t| now >= t) {
            self.duties.connect_by = None;
            if self.venue.is_none() {
                self.error(codes::UNAUTHORIZED, "no `connect` within 10 s", ctx);
                return self.close(close::POLICY, "send connect first", ctx);
            }
        }
        if now >= self.duties.heartbeat {
            self.duties.heartbeat += self.config.heartbeat;
            if self.last_frame.elapsed() > self.config.heartbeat_timeout {
                return self.close(close::NORMAL, "heartbeat timeout", ctx);
            } else if self.queue.ping().is_err() {
                self.queue.close_now(close::TOO_SLOW);
                return ctx.stop();
            }
        }
        if now >= self.duties.idle_check {
            self.duties.idle_check += idle_check(self.config.idle_timeout);
            if self.last_message.elapsed() >= self.config.idle_timeout {
                return self.close(close::NORMAL, "idle timeout", ctx);
            }
        }
        if ctx.state().alive() {
            self.schedule_duties(ctx);
        }
    }

    /// Closes with 4001 at the current token's `exp` (none: auth is off).
    fn schedule_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        if let Some(exp) = self.claims.as_ref().map(|c| c.exp) {
            self.expiry = Some(ctx.run_later(until_expiry(exp), |act, ctx| {
                act.close(close::TOKEN_EXPIRED, "token expired", ctx);
            }));
        }
    }

    fn send(&mut self, frame: bytestring::ByteString, ctx: &mut Context<Self>) {
        if self.queue.push(frame).is_err() {
            self.queue.close_now(close::TOO_SLOW);
            ctx.stop();
        }
    }

    fn error(&mut self, code: &str, message: &str, ctx: &mut Context<Self>) {
        self.send(cashier::error_frame(code, message), ctx);
    }

    fn close(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        self.queue.close(code, reason);
        ctx.stop();
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        self.last_message = Instant::now();
        if !self.rate.allow() {
            return self.error(codes::RATE_LIMITED, "too many messages; slow down", ctx);
        }
        let message = match cashier::parse(text) {
            Ok(m) => m,
            Err(refusal) => return self.error(refusal.code, &refusal.message, ctx),
        };
        match message {
            ClientMessage::Ping => self.send(cashier::pong_frame(), ctx),
            ClientMessage::RefreshToken(token) => self.refresh(&token, ctx),
            ClientMessage::Connect {
                client_id,
                last_seq,
                token,
                epoch,
            } => self.on_connect(client_id, last_seq, token, epoch, ctx),
            ClientMessage::Change(change) => {
                let Some(venue) = self.venue.clone() else {
                    return self.error(codes::UNAUTHORIZED, "send `connect` first", ctx);
                };
                let apply = venue::Apply {
                    venue,
                    change,
                    client_id: self.client_id.clone(),
                    conn: Some(self.id.clone()),
                    answer_device: false,
                };
                // The change is queued for the venue's writer now, in the
                // order the terminal sent it, and its answer awaited by a task
                // of its own: actix skips a request whose sender stopped
                // waiting, and a terminal that closes right after sending must
                // still have its change stored (it gets no acknowledgement).
                let request = self.venues.send(Exec(apply));
                let (queue, client) = (self.queue.clone(), self.client_id.clone());
                let in_flight = self.config.writes.begin();
                actix_web::rt::spawn(async move {
                    let answer = request.await;
                    drop(in_flight);
                    let (code, message) = match answer {
                        Ok(Ok(_)) => return,
                        Ok(Err(DomainError::Refused { code, message })) => (code, message),
                        Ok(Err(DomainError::Db(e))) => {
                            log::error!("venue change failed: {e}");
                            (
                                "UNAVAILABLE",
                                "the change could not be saved; nothing was applied, retry"
                                    .to_owned(),
                            )
                        }
                        Ok(Err(other)) => (codes::VALIDATION_FAILED, other.to_string()),
                        Err(_) => (
                            "UNAVAILABLE",
                            "the server is shutting down; retry".to_owned(),
                        ),
                    };
                    log::debug!(
                        "{}: change refused: {code}: {message}",
                        client.as_deref().unwrap_or("?")
                    );
                    // Gone already, or too slow to take it: nothing to tell.
                    if queue.push(cashier::error_frame(code, &message)).is_err() {
                        queue.close_now(close::TOO_SLOW);
                    }
                });
            }
        }
    }
}

impl CashierSession {
    /// Reads the client's frames from `frames` (until the server stops).
    pub fn read_from(mut self, frames: Frames, ctx: &mut Context<Self>) -> Self {
        self.reading = Some(ctx.add_stream(frames));
        self
    }
}

impl Actor for CashierSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.schedule_expiry(ctx);
        self.schedule_duties(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.registry.do_send(Disconnect {
            conn_id: self.id.clone(),
        });
    }
}

impl StreamHandler<Result<AggregatedMessage, FrameError>> for CashierSession {
    fn handle(&mut self, msg: Result<AggregatedMessage, FrameError>, ctx: &mut Self::Context) {
        self.last_frame = Instant::now();
        match on_frame(&self.queue, msg) {
            Incoming::Text(text) => self.on_text(&text, ctx),
            Incoming::Binary => {
                self.last_message = Instant::now();
                self.error(
                    codes::VALIDATION_FAILED,
                    "binary frames are not supported; send JSON text",
                    ctx,
                )
            }
            Incoming::Handled => {}
            Incoming::Close(code) => self.close(code, "", ctx),
            Incoming::CloseNow(code) => {
                self.queue.close_now(code);
                ctx.stop();
            }
        }
    }
}

impl Handler<SessionCtl> for CashierSession {
    type Result = ();

    fn handle(&mut self, msg: SessionCtl, ctx: &mut Self::Context) {
        match msg {
            SessionCtl::Close { code, reason } => self.close(code, &reason, ctx),
            SessionCtl::TooSlow => {
                self.queue.close_now(close::TOO_SLOW);
                ctx.stop();
            }
            SessionCtl::StopReading => {
                if let Some(reading) = self.reading.take() {
                    ctx.cancel_future(reading);
                }
            }
            SessionCtl::Replaced => {
                if let Some(reading) = self.reading.take() {
                    ctx.cancel_future(reading);
                }
                self.close(
                    close::NORMAL,
                    "replaced by a newer connection with the same clientId",
                    ctx,
                );
            }
        }
    }
}
