//! A graceful stop, on SIGTERM or SIGINT: stop accepting, close every
//! socket with 1001, finish the requests in flight, then exit (within 10 s:
//! a second signal, or a stop that takes too long, ends the process at once).

use std::time::Duration;

use actix_server::ServerHandle;

use crate::{
    core::{messages::CloseAll, wire::close},
    http::state::AppState,
};

/// Waits for a signal, then stops the server through `server`.
pub async fn on_signal(server: ServerHandle, state: AppState) {
    wait_for_signal().await;
    log::info!("shutting down: closing sockets, finishing requests");
    let stopping = server.stop(true);
    let closed = state
        .registry
        .send(CloseAll {
            code: close::GOING_AWAY,
            reason: "server shutting down".into(),
        })
        .await
        .unwrap_or(0);
    log::info!("closed {closed} socket(s)");
    // A second signal, or a stuck shutdown, ends the process at once.
    actix_web::rt::spawn(async {
        tokio::select! {
            _ = wait_for_signal() => log::warn!("second signal: exiting now"),
            _ = tokio::time::sleep(Duration::from_secs(9)) => log::warn!("shutdown took too long: exiting now"),
        }
        std::process::exit(1);
    });
    stopping.await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
        let mut int = signal(SignalKind::interrupt()).expect("can listen for SIGINT");
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
