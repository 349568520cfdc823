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
