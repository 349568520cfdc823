//! The receive side of one socket: the frames a client sends, decoded by
//! actix-http's WebSocket codec, with continuations put back together.
//!
//! actix-ws's `MessageStream` does the same, but only together with its
//! `Session`: its stream ends when the session's response body is dropped,
//! so using it kept actix-ws's 32-frame channel (1.7 KiB) alive for every
//! socket although we write frames ourselves ([`queue`](super::queue)). This stream
//! holds no buffer while the client is quiet: only a frame that arrives in
//! pieces is kept, until it is whole.
//!
//! **Sizes are checked at the header.** actix-http's codec checks a frame's
//! length only once the whole frame has arrived, so a header announcing
//! 4 GiB would be buffered as it streams in. Here each frame's announced
//! length (and, for a message sent in pieces, the pieces so far plus the
//! announced one) is checked against the socket's [`MessageLimit`] as soon
//! as its header is read: an oversized message ends the stream with
//! [`FrameError::TooBig`] (close 1009) having buffered at most the limit
//! plus one read. The limit is per socket and can change: a terminal that
//! has not authenticated yet gets a small one ([`PRE_AUTH_MESSAGE_BYTES`]).

use std::{
    cell::Cell,
    io, mem,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use actix_codec::Decoder;
use actix_http::{
    ws::{Codec, Frame, Item, ProtocolError},
    Payload,
};
use actix_web::web::{Bytes, BytesMut};
use actix_ws::AggregatedMessage;
use bytestring::ByteString;
use futures_util::Stream;

use crate::core::wire::close;

/// The largest message a socket may send before it has authenticated (a
/// cashier terminal that opened `/ws` without a token and has not sent an
/// accepted `connect`): a `connect` with its token is well under 1 KiB, and
/// nobody should make the server hold a megabyte per anonymous socket.
pub const PRE_AUTH_MESSAGE_BYTES: usize = 16 * 1024;

/// The largest message one socket may send now; shared between the socket's
/// [`Frames`] and its session, which raises it once the client has
/// authenticated. Both live on the socket's thread.
#[derive(Clone, Debug)]
pub struct MessageLimit(Rc<Cell<usize>>);

impl MessageLimit {
    pub fn new(bytes: usize) -> Self {
        MessageLimit(Rc::new(Cell::new(bytes)))
    }

    pub fn get(&self) -> usize {
        self.0.get()
    }

    pub fn set(&self, bytes: usize) {
        self.0.set(bytes);
    }
}

/// Why a socket's stream of messages ended in error; each has its close code.
#[derive(Debug)]
pub enum FrameError {
    /// A message (one frame, or a message's pieces together) over the limit: 1009.
    TooBig,
    /// A text message that is not UTF-8: 1007 (RFC 6455 §8.1).
    InvalidUtf8,
    /// Anything else that is not WebSocket as RFC 6455 says: 1002.
    Protocol(ProtocolError),
}

impl FrameError {
    /// The close code RFC 6455 gives this error.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooBig => close::TOO_BIG,
            FrameError::InvalidUtf8 => close::INVALID_DATA,
            FrameError::Protocol(_) => close::PROTOCOL,
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooBig => f.write_str("message over the size limit"),
            FrameError::InvalidUtf8 => f.write_str("text message is not UTF-8"),
            FrameError::Protocol(err) => write!(f, "{err}"),
        }
    }
}

impl From<ProtocolError> for FrameError {
    fn from(err: ProtocolError) -> Self {
        match err {
            ProtocolError::Overflow => FrameError::TooBig,
            other => FrameError::Protocol(other),
        }
    }
}

/// What a client sends: whole messages, at most the [`MessageLimit`] each
/// (a single frame or all of a message's continuations together). A
/// message over it is [`FrameError::TooBig`], found at its frame's header;
/// bytes that are not WebSocket are an error of their own. After an error
/// the stream ends.
pub struct Frames {
    payload: Payload,
    codec: Codec,
    /// Bytes read but not yet a whole frame.
    buf: BytesMut,
    /// A message sent as continuations: its kind, and its pieces so far.
    partial: Option<(Kind, Vec<Bytes>)>,
    limit: MessageLimit,
    done: bool,
}

/// What a frame's header announces: its opcode and payload length. `None`
/// until the header is whole.
fn announced(buf: &[u8]) -> Option<(u8, u64)> {
    let (first, second) = (*buf.first()?, *buf.get(1)?);
    let opcode = first & 0x0F;
    let length = match second & 0x7F {
        126 => u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
        127 => u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?),
        n => u64::from(n),
    };
    Some((opcode, length))
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Binary,
}

impl Frames {
    /// A socket's messages, at most `limit` each; `max` (the setting) bounds
    /// every limit the socket may later be given.
    pub fn new(payload: Payload, limit: MessageLimit, max: usize) -> Self {
        Frames {
            payload,
            codec: Codec::new().max_size(max),
            buf: BytesMut::new(),
            partial: None,
            limit,
            done: false,
        }
    }

    /// Bytes of the message in pieces so far.
    fn partial_len(&self) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |(_, pieces)| pieces.iter().map(Bytes::len).sum())
    }

    /// Refuses the next frame as soon as its header says it is too big:
    /// the frame alone, or the message it continues with it.
    fn check_header(&self) -> Result<(), FrameError> {
        let Some((opcode, length)) = announced(&self.buf) else {
            return Ok(());
        };
        let limit = self.limit.get() as u64;
        match opcode {
            // A continuation adds to the message so far.
            0x0 if self.partial_len() as u64 + length > limit => Err(FrameError::TooBig),
            0x1 | 0x2 if length > limit => Err(FrameError::TooBig),
            // Control frames carry at most 125 bytes (RFC 6455 §5.5).
            0x8..=0xA if length > 125 => Err(FrameError::Protocol(ProtocolError::InvalidLength(
                length as usize,
            ))),
            _ => Ok(()),
        }
    }

    /// The next whole message among the bytes read, if there is one.
    fn decode(&mut self) -> Result<Option<AggregatedMessage>, FrameError> {
        loop {
            self.check_header()?;
            let Some(frame) = self.codec.decode(&mut self.buf)? else {
                break;
            };
            if let Some(msg) = self.assemble(frame)? {
                return Ok(Some(msg));
            }
        }
        if self.buf.is_empty() {
            // Nothing left over: no buffer is kept while the client is quiet.
            self.buf = BytesMut::new();
        }
        Ok(None)
    }

    fn assemble(&mut self, frame: Frame) -> Result<Option<AggregatedMessage>, FrameError> {
        Ok(Some(match frame {
            Frame::Text(bytes) => AggregatedMessage::Text(text(bytes)?),
            Frame::Binary(bytes) => AggregatedMessage::Binary(bytes),
            Frame::Ping(bytes) => AggregatedMessage::Ping(bytes),
            Frame::Pong(bytes) => AggregatedMessage::Pong(bytes),
            Frame::Close(reason) => AggregatedMessage::Close(reason),
            Frame::Continuation(item) => return self.continuation(item),
        }))
    }

    fn continuation(&mut self, item: Item) -> Result<Option<AggregatedMessage>, FrameError> {
        let (bytes, last) = match item {
            Item::FirstText(bytes) => (self.start(Kind::Text, bytes)?, false),
            Item::FirstBinary(bytes) => (self.start(Kind::Binary, bytes)?, false),
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        let limit = self.limit.get();
        let Some((kind, pieces)) = self.partial.as_mut() else {
            return Err(ProtocolError::ContinuationNotStarted.into());
        };
        let size: usize = pieces.iter().map(Bytes::len).sum::<usize>() + bytes.len();
        if size > limit {
            return Err(FrameError::TooBig);
        }
        if !bytes.is_empty() {
            pieces.push(bytes);
        }
        if !last {
            return Ok(None);
        }
        let kind = *kind;
        let pieces = mem::take(pieces);
        self.partial = None;
        let mut whole = BytesMut::with_capacity(size);
        for piece in pieces {
            whole.extend_from_slice(&piece);
        }
        let whole = whole.freeze();
        Ok(Some(match kind {
            Kind::Text => AggregatedMessage::Text(text(whole)?),
            Kind::Binary => AggregatedMessage::Binary(whole),
        }))
    }

    /// A first continuation frame: its pieces start empty (it is added next).
    fn start(&mut self, kind: Kind, bytes: Bytes) -> Result<Bytes, FrameError> {
        if self.partial.is_some() {
            return Err(ProtocolError::ContinuationStarted.into());
        }
        self.partial = Some((kind, Vec::new()));
        Ok(bytes)
    }
}

fn text(bytes: Bytes) -> Result<ByteString, FrameError> {
    ByteString::try_from(bytes).map_err(|_| FrameError::InvalidUtf8)
}

impl Stream for Frames {
    type Item = Result<AggregatedMessage, FrameError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.decode() {
                Ok(Some(msg)) => return Poll::Ready(Some(Ok(msg))),
                Ok(None) if this.done => return Poll::Ready(None),
                Ok(None) => {}
                Err(err) => {
                    this.done = true;
                    this.buf = BytesMut::new();
                    this.partial = None;
                    return Poll::Ready(Some(Err(err)));
                }
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) if this.buf.is_empty() => {
                    // No copy when nothing is left over.
                    this.buf = BytesMut::from(bytes);
                }
                Poll::Ready(Some(Ok(bytes))) => this.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(FrameError::Protocol(ProtocolError::Io(
                        io::Error::other(err),
                    )))));
                }
                Poll::Ready(None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests;
