//! Writes in flight: read from a client, not yet committed. A graceful stop
//! waits for them ([`Inflight::settled`]) before it closes the sockets, so
//! nothing the server has read is dropped.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::Notify;

/// Counts writes in flight; cheap to clone (every clone counts the same).
#[derive(Clone, Default, Debug)]
pub struct Inflight(Arc<Counter>);

#[derive(Default, Debug)]
struct Counter {
    count: AtomicUsize,
    idle: Notify,
}

/// One write in flight; dropping it (committed, refused or failed) ends it.
#[derive(Debug)]
pub struct InflightGuard(Inflight);

impl Inflight {
    /// A write was read: it is in flight until the guard drops.
    pub fn begin(&self) -> InflightGuard {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        InflightGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }

    /// Waits until no write is in flight, at most `limit`; answers how many
    /// still were when it gave up (0: all settled).
    pub async fn settled(&self, limit: Duration) -> usize {
        let wait = async {
            loop {
                let idle = self.0.idle.notified();
                if self.count() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.count()
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0 .0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0 .0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_when_the_last_write_ends() {
        let inflight = Inflight::default();
        assert_eq!(inflight.settled(Duration::from_millis(10)).await, 0);
        let (a, b) = (inflight.begin(), inflight.begin());
        assert_eq!(inflight.settled(Duration::from_millis(20)).await, 2);
        let waiter = {
            let inflight = inflight.clone();
            tokio::spawn(async move { inflight.settled(Duration::from_secs(5)).await })
        };
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(b);
        assert_eq!(waiter.await.unwrap(), 0);
    }
}
