//! The receive side of one socket: the frames a client sends, decoded by
//! actix-http's WebSocket codec, with continuations put back together.
//!
//! actix-ws's `MessageStream` does the same, but only together with its
//! `Session`: its stream ends when the session's response body is dropped,
//! so using it kept actix-ws's 32-frame channel (1.7 KiB) alive for every
//! socket although we write frames ourselves (`writer.rs`). This stream
//! holds no buffer while the client is quiet: only a frame that arrives in
//! pieces is kept, until it is whole.

use std::{
    io, mem,
    pin::Pin,
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

/// What a client sends: whole messages, at most `max` bytes each (a single
/// frame or all of a message's continuations together). A message over
/// `max` is [`ProtocolError::Overflow`]; bytes that are not WebSocket are
/// an error of their own. After an error the stream ends.
pub struct Frames {
    payload: Payload,
    codec: Codec,
    /// Bytes read but not yet a whole frame.
    buf: BytesMut,
    /// A message sent as continuations: its kind, and its pieces so far.
    partial: Option<(Kind, Vec<Bytes>)>,
    max: usize,
    done: bool,
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Binary,
}

impl Frames {
    pub fn new(payload: Payload, max: usize) -> Self {
        Frames {
            payload,
            codec: Codec::new().max_size(max),
            buf: BytesMut::new(),
            partial: None,
            max,
            done: false,
        }
    }

    /// The next whole message among the bytes read, if there is one.
    fn decode(&mut self) -> Result<Option<AggregatedMessage>, ProtocolError> {
        while let Some(frame) = self.codec.decode(&mut self.buf)? {
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

    fn assemble(&mut self, frame: Frame) -> Result<Option<AggregatedMessage>, ProtocolError> {
        Ok(Some(match frame {
            Frame::Text(bytes) => AggregatedMessage::Text(text(bytes)?),
            Frame::Binary(bytes) => AggregatedMessage::Binary(bytes),
            Frame::Ping(bytes) => AggregatedMessage::Ping(bytes),
            Frame::Pong(bytes) => AggregatedMessage::Pong(bytes),
            Frame::Close(reason) => AggregatedMessage::Close(reason),
            Frame::Continuation(item) => return self.continuation(item),
        }))
    }

    fn continuation(&mut self, item: Item) -> Result<Option<AggregatedMessage>, ProtocolError> {
        let (bytes, last) = match item {
            Item::FirstText(bytes) => (self.start(Kind::Text, bytes)?, false),
            Item::FirstBinary(bytes) => (self.start(Kind::Binary, bytes)?, false),
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        let Some((kind, pieces)) = self.partial.as_mut() else {
            return Err(ProtocolError::ContinuationNotStarted);
        };
        let size: usize = pieces.iter().map(Bytes::len).sum::<usize>() + bytes.len();
        if size > self.max {
            return Err(ProtocolError::Overflow);
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
    fn start(&mut self, kind: Kind, bytes: Bytes) -> Result<Bytes, ProtocolError> {
        if self.partial.is_some() {
            return Err(ProtocolError::ContinuationStarted);
        }
        self.partial = Some((kind, Vec::new()));
        Ok(bytes)
    }
}

fn text(bytes: Bytes) -> Result<ByteString, ProtocolError> {
    ByteString::try_from(bytes)
        .map_err(|err| ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, err)))
}

impl Stream for Frames {
    type Item = Result<AggregatedMessage, ProtocolError>;

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
                    return Poll::Ready(Some(Err(ProtocolError::Io(io::Error::other(err)))));
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
        Frames::new(Payload::from(payload), max)
            .map(|msg| match msg {
                Ok(AggregatedMessage::Text(t)) => format!("text {t}"),
                Ok(AggregatedMessage::Binary(b)) => format!("binary {}", b.len()),
                Ok(AggregatedMessage::Ping(_)) => "ping".into(),
                Ok(AggregatedMessage::Pong(_)) => "pong".into(),
                Ok(AggregatedMessage::Close(r)) => format!("close {:?}", r.map(|r| r.code)),
                Err(ProtocolError::Overflow) => "overflow".into(),
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
