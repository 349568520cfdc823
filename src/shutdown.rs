//! A graceful stop, on SIGTERM or SIGINT, in the contract's order: nothing
//! the server has read is dropped.
//!
//! 1. Stop accepting connections.
//! 2. Stop reading: every session reads no more frames from its client.
//! 3. Drain: wait until every change already read is committed (cashier
//!    messages queued for the venue actor, counted in
//!    [`AppState::writes`]), and until the job runners have stopped between
//!    two orders (each order the order system answered is stored first).
//!    REST requests in flight go on meanwhile; their writers commit them.
//! 4. Close every socket with 1001.
//! 5. Stop the HTTP server: the requests in flight finish and are
//!    answered, then the connections close.
//!
//! A second signal, or a stop that takes longer than 9 s, ends the process
//! at once (the contract: exit within 10 s).

use std::time::{Duration, Instant};

use actix_server::ServerHandle;

use crate::{
    core::{
        messages::{CloseAll, StopReading},
        wire::close,
    },
    http::state::AppState,
    writers::jobs::Drain,
};

/// How long step 3 may take, leaving time for the rest within 10 s.
const DRAIN_LIMIT: Duration = Duration::from_secs(6);

/// SIGTERM and SIGINT, listened for from the moment this is made (their
/// default action would end the process at once).
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn listen() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for a signal, then stops the server through `server`.
pub async fn on_signal(mut signals: Signals, server: ServerHandle, state: AppState) {
    signals.next().await;
    let started = Instant::now();
    // A second signal, or a stuck shutdown, ends the process at once.
    actix_web::rt::spawn(async move {
        tokio::select! {
            _ = signals.next() => log::warn!("second signal: exiting now"),
            _ = tokio::time::sleep(Duration::from_secs(9)) => log::warn!("shutdown took too long: exiting now"),
        }
        std::process::exit(1);
    });
    log::info!("shutting down: no new connections, reading no more messages");
    server.pause().await;
    let sessions = state.registry.send(StopReading).await.unwrap_or(0);
    let in_flight = state.writes.count();
    let jobs = state.jobs.send(Drain);
    let (left, _) = tokio::join!(
        state.writes.settled(DRAIN_LIMIT),
        tokio::time::timeout(DRAIN_LIMIT, jobs)
    );
    if left > 0 {
        log::error!(
            "shutting down: {left} change(s) read from terminals were not committed within {DRAIN_LIMIT:?}"
        );
    }
    log::info!(
        "shutting down: {sessions} socket(s) stopped reading; {} of {in_flight} change(s) in flight committed, job runners stopped ({:?})",
        in_flight.saturating_sub(left),
        started.elapsed()
    );
    let closed = state
        .registry
        .send(CloseAll {
            code: close::GOING_AWAY,
            reason: "server shutting down".into(),
        })
        .await
        .unwrap_or(0);
    log::info!("closed {closed} socket(s); finishing requests in flight");
    server.stop(true).await;
}
