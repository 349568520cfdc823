//! The receive side of one socket: the frames a client sends, decoded by
//! actix-http's WebSocket codec, with continuations put back together.
//!
//! actix-ws's `MessageStream` does the same, but only together with its
//! `Session`: its stream ends when the session's response body is dropped,
//! so using it kept actix-ws's 32-frame channel (1.7 KiB) alive for every
//! socket although we write frames ourselves (`writer.rs`). This stream
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

use crate::core::wire::close;
use actix_codec::Decoder;
use actix_http::{
    ws::{Codec, Frame, Item, ProtocolError},
    Payload,
};
use actix_web::web::{Bytes, BytesMut};
use actix_ws::AggregatedMessage;
use bytestring::ByteString;
use futures_util::Stream;

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
mod tests {
    use actix_http::ws::{Message, OpCode, Parser};
    use futures_util::StreamExt;

    use super::*;

    /// `frames`, encoded as a client sends them (masked), read in chunks of
    /// `chunk` bytes; what the stream gives, in order.
    async fn read(frames: Vec<Message>, chunk: usize, max: usize) -> Vec<String> {
        // Frame by frame (the codec's encoder would refuse broken sequences).
        let mut wire = BytesMut::new();
        for frame in frames {
            let (op, fin, data) = match frame {
                Message::Text(t) => (OpCode::Text, true, t.into_bytes()),
                Message::Ping(b) => (OpCode::Ping, true, b),
                Message::Pong(b) => (OpCode::Pong, true, b),
                Message::Close(reason) => {
                    Parser::write_close(&mut wire, reason, true);
                    continue;
                }
                Message::Continuation(Item::FirstText(b)) => (OpCode::Text, false, b),
                Message::Continuation(Item::FirstBinary(b)) => (OpCode::Binary, false, b),
                Message::Continuation(Item::Continue(b)) => (OpCode::Continue, false, b),
                Message::Continuation(Item::Last(b)) => (OpCode::Continue, true, b),
                _ => unreachable!("not used here"),
            };
            Parser::write_message(&mut wire, data, op, fin, true);
        }
        let chunks: Vec<Result<Bytes, actix_http::error::PayloadError>> = wire
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let payload: actix_http::BoxedPayloadStream = Box::pin(futures_util::stream::iter(chunks));
        Frames::new(Payload::from(payload), MessageLimit::new(max), max)
            .map(|msg| match msg {
                Ok(AggregatedMessage::Text(t)) => format!("text {t}"),
                Ok(AggregatedMessage::Binary(b)) => format!("binary {}", b.len()),
                Ok(AggregatedMessage::Ping(_)) => "ping".into(),
                Ok(AggregatedMessage::Pong(_)) => "pong".into(),
                Ok(AggregatedMessage::Close(r)) => format!("close {:?}", r.map(|r| r.code)),
                Err(FrameError::TooBig) => "overflow".into(),
                Err(FrameError::InvalidUtf8) => "utf8".into(),
                Err(err) => format!("error {err}"),
            })
            .collect()
            .await
    }

    fn piece(item: Item) -> Message {
        Message::Continuation(item)
    }

    #[actix_web::test]
    async fn frames_split_anywhere_are_read_whole_and_in_order() {
        let sent = || {
            vec![
                Message::Text("héllo".into()),
                Message::Ping(Bytes::new()),
                piece(Item::FirstText(Bytes::from_static(b"con"))),
                piece(Item::Continue(Bytes::from_static(b"tin"))),
                Message::Pong(Bytes::new()),
                piece(Item::Last(Bytes::from_static(b"ued"))),
                Message::Close(None),
            ]
        };
        let want = ["text héllo", "ping", "pong", "text continued", "close None"];
        for chunk in [1, 2, 3, 7, 1024] {
            assert_eq!(read(sent(), chunk, 1024).await, want, "chunk {chunk}");
        }
    }

    #[actix_web::test]
    async fn a_message_over_the_limit_is_an_overflow_whether_one_frame_or_pieces() {
        let big = Bytes::from(vec![b'a'; 11]);
        assert_eq!(
            read(vec![Message::Text("a".repeat(11).into())], 4, 10).await,
            ["overflow"]
        );
        let pieces = vec![
            piece(Item::FirstText(big.slice(..6))),
            piece(Item::Last(big.slice(6..))),
            Message::Text("after".into()),
        ];
        assert_eq!(read(pieces, 4, 10).await, ["overflow"]);
        let fits = vec![
            piece(Item::FirstBinary(big.slice(..5))),
            piece(Item::Last(big.slice(6..))),
        ];
        assert_eq!(read(fits, 4, 10).await, ["binary 10"]);
    }

    /// A header announcing 4 GiB is refused as soon as it is read: the
    /// stream stops asking for bytes instead of buffering what follows.
    #[actix_web::test]
    async fn an_oversized_frame_is_refused_at_its_header_not_after_buffering() {
        use std::sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        };
        for (opcode, fin) in [(0x1u8, true), (0x2, false)] {
            let mut header = vec![opcode | if fin { 0x80 } else { 0 }, 0x80 | 127];
            header.extend_from_slice(&(4u64 << 30).to_be_bytes());
            header.extend_from_slice(&[1, 2, 3, 4]);
            let pulled = Arc::new(AtomicUsize::new(0));
            let counter = pulled.clone();
            let chunks = futures_util::stream::iter([Ok(Bytes::from(header))]).chain(
                futures_util::stream::repeat_with(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, actix_http::error::PayloadError>(Bytes::from(vec![0u8; 64 * 1024]))
                }),
            );
            let payload: actix_http::BoxedPayloadStream = Box::pin(chunks);
            let mut frames = Frames::new(Payload::from(payload), MessageLimit::new(1024), 1024);
            assert!(matches!(frames.next().await, Some(Err(FrameError::TooBig))));
            assert_eq!(
                pulled.load(Ordering::SeqCst),
                0,
                "nothing after the header was read"
            );
            assert!(frames.next().await.is_none(), "the stream ended");
        }
    }

    /// Pieces of a message are refused when the next piece's header would
    /// take it over the limit, before that piece arrives.
    #[actix_web::test]
    async fn a_continuation_that_would_pass_the_limit_is_refused_at_its_header() {
        let mut wire = BytesMut::new();
        Parser::write_message(&mut wire, vec![b'a'; 600], OpCode::Text, false, true);
        let mut next = BytesMut::new();
        Parser::write_message(&mut next, vec![b'b'; 600], OpCode::Continue, true, true);
        // Only the second frame's header arrives.
        wire.extend_from_slice(&next[..8]);
        let payload: actix_http::BoxedPayloadStream = Box::pin(
            futures_util::stream::iter([Ok::<_, actix_http::error::PayloadError>(wire.freeze())])
                .chain(futures_util::stream::pending()),
        );
        let mut frames = Frames::new(Payload::from(payload), MessageLimit::new(1000), 1000);
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), frames.next()).await;
        assert!(matches!(got, Ok(Some(Err(FrameError::TooBig)))), "{got:?}");
    }

    /// A limit lowered for a socket that has not authenticated holds for
    /// it alone, and raising it lets larger messages through.
    #[actix_web::test]
    async fn the_limit_is_the_sockets_own_and_can_be_raised() {
        assert_eq!(
            read(vec![Message::Text("a".repeat(100).into())], 7, 64).await,
            ["overflow"]
        );
        let limit = MessageLimit::new(64);
        limit.set(128);
        let mut wire = BytesMut::new();
        Parser::write_message(&mut wire, vec![b'a'; 100], OpCode::Text, true, true);
        let payload: actix_http::BoxedPayloadStream =
            Box::pin(futures_util::stream::iter([Ok::<
                _,
                actix_http::error::PayloadError,
            >(wire.freeze())]));
        let mut frames = Frames::new(Payload::from(payload), limit, 1024);
        assert!(matches!(
            frames.next().await,
            Some(Ok(AggregatedMessage::Text(_)))
        ));
    }

    #[actix_web::test]
    async fn text_that_is_not_utf8_is_its_own_error() {
        let mut wire = BytesMut::new();
        Parser::write_message(&mut wire, vec![0xC3, 0x28], OpCode::Text, true, true);
        let payload: actix_http::BoxedPayloadStream =
            Box::pin(futures_util::stream::iter([Ok::<
                _,
                actix_http::error::PayloadError,
            >(wire.freeze())]));
        let mut frames = Frames::new(Payload::from(payload), MessageLimit::new(64), 64);
        let got = frames.next().await;
        assert!(matches!(got, Some(Err(FrameError::InvalidUtf8))), "{got:?}");
        assert_eq!(FrameError::InvalidUtf8.close_code(), 1007);
    }

    #[actix_web::test]
    async fn broken_continuations_are_errors_that_end_the_stream() {
        let orphan = vec![
            piece(Item::Continue(Bytes::from_static(b"x"))),
            Message::Text("after".into()),
        ];
        let got = read(orphan, 8, 64).await;
        assert!(got.len() == 1 && got[0].starts_with("error"), "{got:?}");
        let got = read(vec![piece(Item::Last(Bytes::new()))], 8, 64).await;
        assert!(got.len() == 1 && got[0].starts_with("error"), "{got:?}");
        let twice = vec![
            piece(Item::FirstText(Bytes::from_static(b"a"))),
            piece(Item::FirstText(Bytes::from_static(b"b"))),
        ];
        let got = read(twice, 8, 64).await;
        assert!(got.len() == 1 && got[0].starts_with("error"), "{got:?}");
    }
}
