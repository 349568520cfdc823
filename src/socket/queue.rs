//! The send side of one socket: a bounded queue, and the loop that writes it.
//!
//! Nobody awaits a socket but its connection: rooms and sessions `try_send`
//! into a bounded queue, and a full queue means the client is too slow (the
//! room closes it with 4008; it replays on reconnect). Frames are
//! `ByteString`s, so a broadcast shares one allocation between every queue.
//!
//! The queue is written by the connection's own task once it is upgraded
//! ([`connection`](super::connection) calls [`write()`]): no writer task and no second channel per
//! socket, which an idle socket would pay for in memory, and what is queued
//! when the socket can take it leaves in one write. Frames are encoded by
//! actix-http's WebSocket codec.

use std::{
    cell::Cell,
    future::{poll_fn, Future},
    io,
    pin::Pin,
    rc::Rc,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    task::Poll,
    time::Duration,
};

use actix_codec::Encoder;
use actix_http::ws::{CloseCode, CloseReason, Codec, Message};
use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::{oneshot, Notify},
};

use crate::core::wire::close;

/// How long a close frame may wait for a client that does not read.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write may make no progress at all before the client counts
/// as gone (the queue's 4008 handles clients that are merely slow).
const WRITE_STALL: Duration = Duration::from_secs(30);

/// Encoded bytes gathered at most before they are written: frames queued
/// while the socket was busy leave together, a long replay in slices.
const WRITE_CHUNK: usize = 64 * 1024;

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
    frames: flume::Sender<Frame>,
    urgent: Arc<Urgent>,
}

impl SendQueue {
    fn push_frame(&self, frame: Frame) -> Result<(), QueueError> {
        self.frames.try_send(frame).map_err(|e| match e {
            flume::TrySendError::Full(_) => QueueError::Full,
            flume::TrySendError::Disconnected(_) => QueueError::Closed,
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
        self.frames.is_disconnected()
    }
}

/// A queue with no socket behind it, for tests: the receiver sees exactly
/// what a socket's writer would write.
#[cfg(test)]
pub(crate) fn detached(capacity: usize) -> (SendQueue, flume::Receiver<Frame>) {
    let (frames, rx) = flume::bounded(capacity);
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

/// The receiving end of a socket's queue, for its connection to write.
#[derive(Debug)]
pub struct Outgoing {
    frames: flume::Receiver<Frame>,
    urgent: Arc<Urgent>,
}

/// A new socket's queue (`capacity` entries) and its receiving end.
pub fn channel(capacity: usize) -> (SendQueue, Outgoing) {
    let (frames, rx) = flume::bounded(capacity);
    let urgent = Arc::new(Urgent::default());
    (
        SendQueue {
            frames,
            urgent: urgent.clone(),
        },
        Outgoing { frames: rx, urgent },
    )
}

/// Where the upgrade route leaves its socket's [`Outgoing`] for the
/// connection, which takes it once the `101` is written. It travels in the
/// request's extensions, on the connection's own thread.
#[derive(Clone, Default)]
pub struct Handoff(Rc<Cell<Option<Outgoing>>>);

impl Handoff {
    pub fn put(&self, outgoing: Outgoing) {
        self.0.set(Some(outgoing));
    }

    pub fn take(&self) -> Option<Outgoing> {
        self.0.take()
    }
}

/// The reason sent with an urgent close.
fn urgent_reason(code: u16) -> &'static str {
    match code {
        close::TOO_SLOW => "too slow; reconnect and replay",
        close::TOO_BIG => "message over the size limit",
        close::PROTOCOL => "protocol error",
        close::INVALID_DATA => "text message is not UTF-8",
        _ => "",
    }
}

impl Urgent {
    fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code as u16),
        }
    }

    async fn wait(&self) -> u16 {
        loop {
            let notified = self.wake.notified();
            if let Some(code) = self.code() {
                return code;
            }
            notified.await;
        }
    }
}

/// Writes the socket's queue to `io` until a close (queued, urgent, or the
/// queue's last sender gone), then sends that close frame. An urgent close
/// goes ahead of everything still queued, though never into the middle of a
/// frame: bytes already being written are finished first.
pub async fn write<W: AsyncWrite + Unpin>(outgoing: Outgoing, io: &mut W) -> io::Result<()> {
    let Outgoing { frames, urgent } = outgoing;
    let mut codec = Codec::new();
    loop {
        let frame = tokio::select! {
            biased;
            code = urgent.wait() => return close(io, &mut codec, code, urgent_reason(code)).await,
            frame = frames.recv_async() => frame.ok(),
        };
        let mut buf = BytesMut::new();
        let mut taken = Vec::new();
        let mut next = frame;
        // What is queued already goes out with it, up to `WRITE_CHUNK`.
        let closing = loop {
            let close = match next {
                None => Some((close::NORMAL, String::new())),
                Some(Frame::Close(code, reason)) => Some((code, reason)),
                Some(Frame::Text(text)) => {
                    encode(&mut codec, Message::Text(text), &mut buf)?;
                    None
                }
                Some(Frame::Ping) => {
                    encode(&mut codec, Message::Ping(Bytes::new()), &mut buf)?;
                    None
                }
                Some(Frame::Pong(data)) => {
                    encode(&mut codec, Message::Pong(data), &mut buf)?;
                    None
                }
                Some(Frame::Batch(texts, done)) => {
                    for text in texts {
                        if let Some(code) = urgent.code() {
                            // What is gathered is whole frames, none written
                            // yet: they are dropped, the close goes now.
                            return close(io, &mut codec, code, urgent_reason(code)).await;
                        }
                        encode(&mut codec, Message::Text(text), &mut buf)?;
                        if buf.len() >= WRITE_CHUNK {
                            write_all(io, &buf).await?;
                            buf.clear();
                        }
                    }
                    taken.extend(done);
                    None
                }
            };
            if close.is_some() || buf.len() >= WRITE_CHUNK {
                break close;
            }
            match frames.try_recv() {
                Ok(frame) => next = Some(frame),
                Err(flume::TryRecvError::Empty) => break None,
                Err(flume::TryRecvError::Disconnected) => next = None,
            }
        };
        if let Some(code) = urgent.code() {
            return close(io, &mut codec, code, urgent_reason(code)).await;
        }
        write_all(io, &buf).await?;
        for done in taken {
            let _ = done.send(());
        }
        if let Some((code, reason)) = closing {
            return close(io, &mut codec, code, &reason).await;
        }
    }
}

fn encode(codec: &mut Codec, msg: Message, buf: &mut BytesMut) -> io::Result<()> {
    codec.encode(msg, buf).map_err(io::Error::other)
}

/// Sends a close frame; a client that never reads cannot take it either,
/// so it is given up after [`CLOSE_TIMEOUT`]. Boxed: it runs once, and its
/// state should not weigh on every idle socket's future (inline, it cost
/// each idle socket about 200 bytes).
async fn close<W: AsyncWrite + Unpin>(
    io: &mut W,
    codec: &mut Codec,
    code: u16,
    reason: &str,
) -> io::Result<()> {
    Box::pin(async move {
        let reason = CloseReason {
            code: CloseCode::from(code),
            description: (!reason.is_empty()).then(|| reason.to_owned()),
        };
        let mut buf = BytesMut::new();
        encode(codec, Message::Close(Some(reason)), &mut buf)?;
        within(CLOSE_TIMEOUT, write_all(io, &buf)).await
    })
    .await
}

/// Writes and flushes `bytes`; gives up when nothing moves for [`WRITE_STALL`].
///
/// Most writes complete at once: the deadline is only made (boxed, off this
/// future) when the socket is full, so a socket's long-lived future does
/// not carry a timer.
pub async fn write_all<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> io::Result<()> {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let n = match poll_fn(|cx| Poll::Ready(Pin::new(&mut *io).poll_write(cx, rest))).await {
            Poll::Ready(n) => n?,
            Poll::Pending => within(WRITE_STALL, io.write(rest)).await?,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        at += n;
    }
    match poll_fn(|cx| Poll::Ready(Pin::new(&mut *io).poll_flush(cx))).await {
        Poll::Ready(done) => done,
        Poll::Pending => within(WRITE_STALL, io.flush()).await,
    }
}

/// `op`, given up (`TimedOut`) when it has not completed within `limit`.
/// Boxed: the timer exists only while `op` waits, so a socket's long-lived
/// future does not carry one.
pub async fn within<T>(limit: Duration, op: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match Box::pin(tokio::time::timeout(limit, op)).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}
