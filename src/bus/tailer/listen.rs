//! The dedicated `LISTEN herald` connection: it wakes the tailer on each
//! notification, and is made again with backoff when it drops, after which
//! the tailer reads at once (what was announced meanwhile is not lost, only
//! unannounced).

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use crate::core::metrics::METRICS;

/// The `LISTEN` connection's first and longest wait before reconnecting.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Ends the `LISTEN` connection while the runtime still runs (its pool
/// cannot be dropped outside it).
pub struct Stopper {
    stop: tokio::sync::watch::Sender<bool>,
    listener: tokio::task::JoinHandle<()>,
}

impl Stopper {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.listener.await;
    }
}

/// Listens on its own connection to `url`, waking `wake` at each
/// notification, until stopped.
pub(super) fn spawn(url: String, wake: Arc<Notify>) -> Stopper {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let listener = actix_web::rt::spawn(async move {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => {}
            _ = listen(url, wake) => {}
        }
    });
    Stopper { stop, listener }
}

async fn listen(url: String, wake: Arc<Notify>) {
    use sea_orm::sqlx::postgres::PgListener;
    let mut delay = RECONNECT_FIRST;
    let mut was_connected = false;
    loop {
        let listener = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen("herald").await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        };
        match listener.await {
            Ok(mut listener) => {
                if was_connected {
                    METRICS.notify_reconnects.inc();
                    log::info!("tailer: LISTEN connection made again");
                }
                was_connected = true;
                delay = RECONNECT_FIRST;
                wake.notify_one();
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => wake.notify_one(),
                        Ok(None) => break,
                        Err(err) => {
                            log::warn!("tailer: LISTEN connection lost: {err}");
                            break;
                        }
                    }
                }
                wake.notify_one();
            }
            Err(err) => {
                log::warn!("tailer: cannot LISTEN ({err}); polling every interval until it can, retrying in {delay:?}");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}
