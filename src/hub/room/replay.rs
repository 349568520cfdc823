//! Replays read from the database, a page at a time.
//!
//! A device that resumes from far back must not cost the server its whole
//! gap in memory, nor stall the rooms' thread while thousands of frames are
//! built. So a database replay is a task of its own: it reads one page of
//! rows by seq, builds their frames on a blocking thread, hands the page to
//! the member's socket and waits until the socket took it before it reads
//! the next one. Memory stays at one page per replaying device; a slow
//! device slows only its own replay. The room holds the member's live events
//! meanwhile (as for any replay) and, when the task reports back with
//! [`ReplayDone`], sends `REPLAY_COMPLETE` and the held events.

use actix::prelude::*;

use crate::{
    core::events::{ConnId, Event, RoomKey},
    hub::room::Room,
    socket::queue::SendQueue,
    store::{db::Db, event_log},
};

/// Events per page.
pub const PAGE_EVENTS: u64 = 256;

/// A database replay to run for one member.
pub struct ReplayTask {
    pub db: Db,
    pub key: RoomKey,
    pub conn: ConnId,
    pub queue: SendQueue,
    /// Replays `since < seq <= upto`.
    pub since: u64,
    pub upto: u64,
    /// Events from this origin are not sent (a terminal's own broadcasts).
    pub skip_origin: Option<String>,
    pub room: Addr<Room>,
}

/// Why a database replay stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading seqs {from}..={to} failed: {source}")]
    Read {
        from: u64,
        to: u64,
        #[source]
        source: sea_orm::DbErr,
    },
    /// Pruned while replaying: the client must start over.
    #[error("seqs {from}..={to} are no longer stored")]
    Pruned { from: u64, to: u64 },
    #[error("building the replay's frames failed: {0}")]
    Frames(#[source] actix_web::rt::task::JoinError),
    #[error("the socket is gone or too slow")]
    SocketGone,
    #[error("the socket closed")]
    SocketClosed,
}

/// A database replay ended: how many events it sent, or why it stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReplayDone {
    pub conn: ConnId,
    pub upto: u64,
    pub sent: u64,
    pub result: Result<(), ReplayError>,
}

/// Runs `task` on the current thread's executor (its heavy part, building
/// frames, on a blocking thread) and reports to the room.
pub fn spawn(task: ReplayTask) {
    actix_web::rt::spawn(async move {
        let (conn, upto, room) = (task.conn.clone(), task.upto, task.room.clone());
        let (sent, result) = run(task).await;
        room.do_send(ReplayDone {
            conn,
            upto,
            sent,
            result,
        });
    });
}

async fn run(task: ReplayTask) -> (u64, Result<(), ReplayError>) {
    let mut from = task.since;
    let mut sent = 0u64;
    while from < task.upto {
        let to = (from + PAGE_EVENTS).min(task.upto);
        let rows = match event_log::fetch_rows(&task.db.read, &task.key, from, to).await {
            Ok(rows) => rows,
            Err(source) => {
                let from = from + 1;
                return (sent, Err(ReplayError::Read { from, to, source }));
            }
        };
        if rows.len() as u64 != to - from {
            // Pruned while replaying: the client must start over.
            let from = from + 1;
            return (sent, Err(ReplayError::Pruned { from, to }));
        }
        let (key, skip) = (task.key.clone(), task.skip_origin.clone());
        let frames = actix_web::rt::task::spawn_blocking(move || {
            rows.into_iter()
                .filter(|row| skip.is_none() || row.origin != skip)
                .map(|row| {
                    Event::from_record(&event_log::to_record(&key, row))
                        .frame
                        .clone()
                })
                .collect::<Vec<_>>()
        })
        .await;
        let frames = match frames {
            Ok(frames) => frames,
            Err(err) => return (sent, Err(ReplayError::Frames(err))),
        };
        sent += frames.len() as u64;
        if !frames.is_empty() {
            let Ok(taken) = task.queue.push_page(frames) else {
                return (sent, Err(ReplayError::SocketGone));
            };
            if taken.await.is_err() {
                return (sent, Err(ReplayError::SocketClosed));
            }
        }
        from = to;
    }
    (sent, Ok(()))
}
