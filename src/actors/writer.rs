//! The send side of one socket: our own bounded queue in front of actix-ws.
//!
//! actix-ws's `Session` waits when its fixed 32-frame channel is full, which
//! would stall whoever sends. So nobody awaits the socket except one writer
//! task per socket: rooms and sessions `try_send` into a bounded queue, and a
//! full queue means the client is too slow (the room closes it with 4008; it
//! replays on reconnect). Frames are `ByteString`s, so a broadcast shares one
//! allocation between every queue.

use std::time::Duration;

use actix_web::web::Bytes;
use actix_ws::{CloseCode, CloseReason};
use bytestring::ByteString;
use tokio::sync::mpsc::{self, error::TrySendError};

/// How long a close frame may wait for a client that does not read.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Frame {
    Text(ByteString),
    /// A replay: many frames in one queue slot, so a long replay is paced by
    /// the socket instead of overflowing the queue.
    Batch(Vec<ByteString>),
    Ping,
    Pong(Bytes),
    Close(u16, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The client is not reading fast enough.
    Full,
    /// The socket is gone.
    Closed,
}

/// Cheap to clone; every clone feeds the same socket.
#[derive(Clone, Debug)]
pub struct SendQueue {
    frames: mpsc::Sender<Frame>,
    urgent: mpsc::Sender<(u16, String)>,
}

impl SendQueue {
    fn push_frame(&self, frame: Frame) -> Result<(), QueueError> {
        self.frames.try_send(frame).map_err(|e| match e {
            TrySendError::Full(_) => QueueError::Full,
            TrySendError::Closed(_) => QueueError::Closed,
        })
    }

    /// Queues a text frame without waiting.
    pub fn push(&self, text: ByteString) -> Result<(), QueueError> {
        self.push_frame(Frame::Text(text))
    }

    /// Queues many frames as one slot (they are written in order).
    pub fn push_batch(&self, texts: Vec<ByteString>) -> Result<(), QueueError> {
        if texts.is_empty() {
            return Ok(());
        }
        self.push_frame(Frame::Batch(texts))
    }

    pub fn ping(&self) -> Result<(), QueueError> {
        self.push_frame(Frame::Ping)
    }

    pub fn pong(&self, data: Bytes) -> Result<(), QueueError> {
        self.push_frame(Frame::Pong(data))
    }

    /// Closes after the frames already queued (or at once if the queue is full).
    pub fn close(&self, code: u16, reason: &str) {
        if self
            .push_frame(Frame::Close(code, reason.to_owned()))
            .is_err()
        {
            self.close_now(code, reason);
        }
    }

    /// Closes ahead of anything queued.
    pub fn close_now(&self, code: u16, reason: &str) {
        let _ = self.urgent.try_send((code, reason.to_owned()));
    }

    pub fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }
}

/// Starts the writer task of `session` on the current arbiter.
pub fn spawn(session: actix_ws::Session, capacity: usize) -> SendQueue {
    let (frames, rx) = mpsc::channel(capacity);
    let (urgent, urgent_rx) = mpsc::channel(4);
    actix_web::rt::spawn(run(session, rx, urgent_rx));
    SendQueue { frames, urgent }
}

async fn run(
    mut session: actix_ws::Session,
    mut frames: mpsc::Receiver<Frame>,
    mut urgent: mpsc::Receiver<(u16, String)>,
) {
    loop {
        let frame = tokio::select! {
            biased;
            Some((code, reason)) = urgent.recv() => return close(session, code, reason).await,
            frame = frames.recv() => frame,
        };
        let sent = match frame {
            None => return close(session, crate::wire::close::NORMAL, String::new()).await,
            Some(Frame::Close(code, reason)) => return close(session, code, reason).await,
            Some(Frame::Text(text)) => {
                tokio::select! {
                    biased;
                    Some((code, reason)) = urgent.recv() => return close(session, code, reason).await,
                    sent = session.text(text) => sent,
                }
            }
            Some(Frame::Batch(texts)) => {
                let mut sent = Ok(());
                for text in texts {
                    sent = tokio::select! {
                        biased;
                        Some((code, reason)) = urgent.recv() => return close(session, code, reason).await,
                        sent = session.text(text) => sent,
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                sent
            }
            Some(Frame::Ping) => session.ping(b"").await,
            Some(Frame::Pong(data)) => session.pong(&data).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn close(session: actix_ws::Session, code: u16, reason: String) {
    let reason = CloseReason {
        code: CloseCode::from(code),
        description: (!reason.is_empty()).then_some(reason),
    };
    // A client that never reads cannot take the close frame either; give up
    // after a while, which drops the connection.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.close(Some(reason))).await;
}
