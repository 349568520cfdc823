//! The send side of one socket: our own bounded queue in front of actix-ws.
//!
//! actix-ws's `Session` waits when its fixed 32-frame channel is full, which
//! would stall whoever sends. So nobody awaits the socket except one writer
//! task per socket: rooms and sessions `try_send` into a bounded queue, and a
//! full queue means the client is too slow (the room closes it with 4008; it
//! replays on reconnect). Frames are `ByteString`s, so a broadcast shares one
//! allocation between every queue.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web::web::Bytes;
use actix_ws::{CloseCode, CloseReason};
use bytestring::ByteString;
use tokio::sync::{
    mpsc::{self, error::TrySendError},
    oneshot, Notify,
};

/// How long a close frame may wait for a client that does not read.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) enum Frame {
    Text(ByteString),
    /// A replay: many frames in one queue slot, so a long replay is paced by
    /// the socket instead of overflowing the queue; the sender, if any, is
    /// told once the last of them was handed to the socket.
    Batch(Vec<ByteString>, Option<oneshot::Sender<()>>),
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

/// A close that jumps the queue: the code (0 = none yet) and a wake-up.
/// Lighter than a second channel, which costs every socket a 1 KiB block.
#[derive(Debug, Default)]
struct Urgent {
    code: AtomicU32,
    wake: Notify,
}

/// Cheap to clone; every clone feeds the same socket.
#[derive(Clone, Debug)]
pub struct SendQueue {
    frames: mpsc::Sender<Frame>,
    urgent: Arc<Urgent>,
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
        self.push_frame(Frame::Batch(texts, None))
    }

    /// Queues a page of a replay; the answer resolves once the socket took
    /// all of it (or fails when the socket is gone), which paces the next page.
    pub fn push_page(&self, texts: Vec<ByteString>) -> Result<oneshot::Receiver<()>, QueueError> {
        let (done, taken) = oneshot::channel();
        self.push_frame(Frame::Batch(texts, Some(done)))?;
        Ok(taken)
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
            self.close_now(code);
        }
    }

    /// Closes ahead of anything queued (the first such close wins).
    pub fn close_now(&self, code: u16) {
        if self
            .urgent
            .code
            .compare_exchange(0, u32::from(code), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.urgent.wake.notify_one();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }
}

/// A queue with no socket behind it, for tests: the receiver sees exactly
/// what a socket's writer would write.
#[cfg(test)]
pub(crate) fn detached(capacity: usize) -> (SendQueue, mpsc::Receiver<Frame>) {
    let (frames, rx) = mpsc::channel(capacity);
    let urgent = Arc::new(Urgent::default());
    (SendQueue { frames, urgent }, rx)
}

#[cfg(test)]
impl Frame {
    /// The text frames this entry writes, in order (acknowledging a page).
    pub(crate) fn texts(self) -> Vec<String> {
        match self {
            Frame::Text(t) => vec![t.to_string()],
            Frame::Batch(texts, done) => {
                if let Some(done) = done {
                    let _ = done.send(());
                }
                texts.into_iter().map(|t| t.to_string()).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Starts the writer task of `session` on the current arbiter.
pub fn spawn(session: actix_ws::Session, capacity: usize) -> SendQueue {
    let (frames, rx) = mpsc::channel(capacity);
    let urgent = Arc::new(Urgent::default());
    actix_web::rt::spawn(run(session, rx, urgent.clone()));
    SendQueue { frames, urgent }
}

/// The reason sent with an urgent close.
fn urgent_reason(code: u16) -> &'static str {
    match code {
        crate::wire::close::TOO_SLOW => "too slow; reconnect and replay",
        crate::wire::close::TOO_BIG => "message over the size limit",
        crate::wire::close::PROTOCOL => "protocol error",
        _ => "",
    }
}

async fn run(
    mut session: actix_ws::Session,
    mut frames: mpsc::Receiver<Frame>,
    urgent: Arc<Urgent>,
) {
    let urgent_close = || async {
        loop {
            let code = urgent.code.load(Ordering::Acquire);
            if code != 0 {
                return code as u16;
            }
            urgent.wake.notified().await;
        }
    };
    loop {
        let frame = tokio::select! {
            biased;
            code = urgent_close() => return close(session, code, urgent_reason(code).into()).await,
            frame = frames.recv() => frame,
        };
        let sent = match frame {
            None => return close(session, crate::wire::close::NORMAL, String::new()).await,
            Some(Frame::Close(code, reason)) => return close(session, code, reason).await,
            Some(Frame::Text(text)) => {
                tokio::select! {
                    biased;
                    code = urgent_close() => return close(session, code, urgent_reason(code).into()).await,
                    sent = session.text(text) => sent,
                }
            }
            Some(Frame::Batch(texts, done)) => {
                let mut sent = Ok(());
                for text in texts {
                    sent = tokio::select! {
                        biased;
                        code = urgent_close() => return close(session, code, urgent_reason(code).into()).await,
                        sent = session.text(text) => sent,
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                if sent.is_ok() {
                    if let Some(done) = done {
                        let _ = done.send(());
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
