//! `Idempotency-Key` on every REST write: the edge of [`store::receipts`](crate::store::receipts).
//!
//! A write route takes its key first ([`Keyed::of`]), before anything is
//! decided, and ends in [`Keyed::write`]: a repeat of an answered request
//! gets the stored answer (`Idempotent-Replayed: true`) without running; a
//! rejection decided at the edge (a bad body, a forbidden user) is stored
//! under the key; the command itself stores its answer in its own
//! transaction. Without the header the write runs as it always did.

use actix::{dev::ToEnvelope, Actor, Addr, Handler};
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde::Serialize;
use sha2::Digest;

use crate::{
    core::{metrics::METRICS, wire},
    http::{auth::Authenticated, error::ApiError, extract, state::AppState},
    store::{
        command::{Command, DomainError},
        receipts::{self, Found, Receipt, Reply, Stored, WithReceipt},
    },
    writers::crud::Exec,
};

/// The response header that marks a stored answer given again.
pub const REPLAYED: &str = "Idempotent-Replayed";

/// Whose key space a write's key is in: a user's (what an agent acts for;
/// what an admin or service names with `?userId=`) or a venue's.
pub enum Space<'a> {
    User(&'a str),
    Venue(&'a str),
}

/// The user space of a dashboard write: the user it acts for when the
/// caller may act for them, else the caller's own (a refused request's key
/// stays the caller's).
pub fn user_space<'a>(auth: &'a Authenticated, requested: Option<&'a str>) -> Space<'a> {
    match requested {
        Some(user) if auth.0.role.is_privileged() => Space::User(user),
        _ => Space::User(&auth.0.sub),
    }
}

/// A write's key, if it has one.
pub struct Keyed(Option<Receipt>);

impl Keyed {
    /// Reads the request's `Idempotency-Key` (400 when malformed) and
    /// hashes what the request is: method, path and body (parsed, so the
    /// same JSON spelled otherwise is the same request; a body that could
    /// not be read counts by its error).
    pub fn of(
        req: &HttpRequest,
        state: &AppState,
        space: Space<'_>,
        body: Option<&Result<web::Bytes, ApiError>>,
    ) -> Result<Keyed, ApiError> {
        let body = match body {
            None => String::new(),
            Some(Ok(bytes)) => match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(value) => value.to_string(),
                Err(_) => String::from_utf8_lossy(bytes).into_owned(),
            },
            Some(Err(err)) => format!("<{}>", err.code),
        };
        Self::of_text(req, state, space, &body)
    }

    /// [`Keyed::of`] for a body already parsed.
    pub fn of_value(
        req: &HttpRequest,
        state: &AppState,
        space: Space<'_>,
        body: &serde_json::Value,
    ) -> Result<Keyed, ApiError> {
        Self::of_text(req, state, space, &body.to_string())
    }

    fn of_text(
        req: &HttpRequest,
        state: &AppState,
        space: Space<'_>,
        body: &str,
    ) -> Result<Keyed, ApiError> {
        let Some(key) = extract::idempotency_key(req)? else {
            return Ok(Keyed(None));
        };
        let id = match space {
            Space::User(user) => extract::scope(&["user", user, key]),
            Space::Venue(venue) => extract::scope(&["venue", venue, key]),
        };
        Ok(Keyed(Some(Receipt {
            id,
            request_hash: hash(&[req.method().as_str(), req.path(), body]),
            mutation_id: key.into(),
            ttl_ms: state.settings.idempotency_ms(),
        })))
    }

    pub fn receipt(&self) -> Option<&Receipt> {
        self.0.as_ref()
    }

    /// A repeat's stored answer, looked up before anything runs.
    pub async fn stored(&self, state: &AppState) -> Result<Option<HttpResponse>, ApiError> {
        let Some(receipt) = &self.0 else {
            return Ok(None);
        };
        match receipts::lookup(&state.db.read, receipt, wire::now_ms()).await? {
            Found::Nothing | Found::Expired => Ok(None),
            Found::Answer(stored) => Ok(Some(respond(Reply {
                stored,
                replayed: true,
            }))),
            Found::Reused => Err(receipts::reused().into()),
        }
    }

    /// A rejection decided before the command: kept under the key when it
    /// is one to keep, so a retry gets the same answer.
    pub async fn refuse(&self, state: &AppState, err: ApiError) -> Result<HttpResponse, ApiError> {
        let Some(receipt) = &self.0 else {
            return Err(err);
        };
        if !kept(err.status) {
            return Err(err);
        }
        let stored = Stored {
            status: err.status.as_u16(),
            body: err.body().to_string(),
        };
        let reply = receipts::store(&state.db, receipt, stored, wire::now_ms()).await?;
        Ok(respond(reply))
    }

    /// Runs `cmd` on the writer `addr` (under the key, if any) and answers
    /// it as `render` says.
    pub async fn write<A, C, R>(
        self,
        state: &AppState,
        addr: &Addr<A>,
        cmd: Result<C, ApiError>,
        render: R,
    ) -> Result<HttpResponse, ApiError>
    where
        C: Command,
        R: FnOnce(&C::Output) -> Answer + Send + 'static,
        A: Actor + Handler<Exec<C>> + Handler<Exec<WithReceipt<C>>>,
        A::Context: ToEnvelope<A, Exec<C>> + ToEnvelope<A, Exec<WithReceipt<C>>>,
    {
        if let Some(stored) = self.stored(state).await? {
            return Ok(stored);
        }
        let cmd = match cmd {
            Ok(cmd) => cmd,
            Err(err) => return self.refuse(state, err).await,
        };
        let Some(receipt) = self.0 else {
            let output = addr.send(Exec(cmd)).await??;
            return Ok(render(&output).response());
        };
        let command = WithReceipt {
            command: cmd,
            receipt,
            render: renderer(render),
        };
        let reply = addr.send(Exec(command)).await??;
        Ok(respond(reply))
    }
}

/// A write's answer before it is sent or stored.
pub struct Answer {
    pub status: StatusCode,
    /// JSON; empty for a 204.
    pub body: String,
}

impl Answer {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Answer {
        Answer {
            status,
            body: serde_json::to_string(value).expect("answers are plain JSON"),
        }
    }

    pub fn no_content() -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: String::new(),
        }
    }

    pub fn response(self) -> HttpResponse {
        build(self.status.as_u16(), self.body, false)
    }
}

/// The store's render of a command's result: the answer of a success, the
/// error answer of a refusal worth keeping; `None` otherwise.
pub fn renderer<O, R>(render: R) -> receipts::Render<O>
where
    R: FnOnce(&O) -> Answer + Send + 'static,
{
    Box::new(move |result: Result<&O, &DomainError>| match result {
        Ok(output) => {
            let answer = render(output);
            Some(Stored {
                status: answer.status.as_u16(),
                body: answer.body,
            })
        }
        Err(err) => {
            let api = ApiError::of_refusal(err)?;
            kept(api.status).then(|| Stored {
                status: api.status.as_u16(),
                body: api.body().to_string(),
            })
        }
    })
}

/// Whether an answer with `status` is kept under its key: successes and
/// rejections are; 401 (a token to renew), 408, 429 and every 5xx are not,
/// so a retry runs again.
pub fn kept(status: StatusCode) -> bool {
    status.is_success() || (status.is_client_error() && !matches!(status.as_u16(), 401 | 408 | 429))
}

/// A keyed write's answer; a repeat's is marked `Idempotent-Replayed`.
pub fn respond(reply: Reply) -> HttpResponse {
    build(reply.stored.status, reply.stored.body, reply.replayed)
}

fn build(status: u16, body: String, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    if replayed {
        METRICS.idempotent_replays.inc();
        res.insert_header((REPLAYED, "true"));
    }
    if body.is_empty() {
        res.finish()
    } else {
        res.content_type("application/json").body(body)
    }
}

/// SHA-256 (hex) of length-prefixed parts.
pub fn hash(parts: &[&str]) -> String {
    let digest = sha2::Sha256::digest(extract::scope(parts).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
