//! Upgraded sockets leave the HTTP/1 dispatcher.
//!
//! actix-http's HTTP/1 dispatcher holds a read and a write buffer of 8 KiB
//! each for as long as a connection lives: for an idle WebSocket that was
//! most of its memory. So requests that ask for an upgrade are handed to
//! [`serve`] with the raw connection instead (actix-http's `upgrade`
//! service; the dispatcher is dropped). The actix-web `App` still answers
//! them, every middleware and route check included; when it answers `101`
//! (actix-http's handshake), the connection is split:
//!
//! - the read half becomes the request's payload, which the session's
//!   reader ([`reader`](super::reader)) decodes frames from. It reads into a stack
//!   buffer only when the session asks for more, so an idle socket holds no
//!   read buffer;
//! - the write half is written by this same task from the socket's send
//!   queue ([`queue::write`]), which the route leaves in the
//!   request's extensions (a [`Handoff`]); when the queue closes, the
//!   connection is shut down. No writer task and no second channel per
//!   socket.
//!
//! Any other answer to an upgrade request is written as is, and the
//! connection closed (HTTP/1 cannot go back to requests after an upgrade
//! was asked for and refused without reading the whole exchange again).

use std::{
    io,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
    time::Duration,
};

use actix_codec::{AsyncRead, AsyncWrite, Encoder, Framed, FramedParts};
use actix_http::{
    body::{BodySize, BoxBody, MessageBody},
    error::PayloadError,
    h1, ConnectionType, HttpMessage, Payload, Request, Response, StatusCode,
};
use actix_service::Service;
use actix_web::{
    dev::ServiceResponse,
    web::{Bytes, BytesMut},
};
use futures_util::Stream;
use tokio::io::{AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};

use crate::socket::queue::{self, write_all, Handoff, Outgoing};

/// How long the last frames (a close) may take to leave once a socket is done.
const LINGER: Duration = Duration::from_secs(1);

/// The bytes read at most per poll (on the stack, not kept).
const READ_CHUNK: usize = 8 * 1024;

/// An upgraded socket's incoming bytes: what the client sent right after
/// its handshake (already read by the dispatcher), then reads on demand.
/// It always ends cleanly (`None`), never with an error: a reader stops at
/// its payload's error, so the frames it had buffered but not decoded would
/// be lost, and actix-http's dispatcher fails an upgraded payload at end of
/// stream (`Incomplete`), which lost a terminal's last messages when it
/// closed.
struct Incoming<T> {
    early: Option<Bytes>,
    read: ReadHalf<T>,
    done: bool,
}

impl<T: AsyncRead> Stream for Incoming<T> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(early) = this.early.take() {
            return Poll::Ready(Some(Ok(early)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let mut stack = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut stack);
        match Pin::new(&mut this.read).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(Bytes::copy_from_slice(buf.filled())))),
            // A reset ends the stream like a close: what the client sent
            // before it is still decoded and handled (an error here would
            // make the reader drop the frames it has buffered).
            Poll::Ready(Err(err)) => {
                log::debug!("upgraded connection read failed: {err}");
                this.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// Serves one request that asked for an upgrade, with its connection. A
/// connection that breaks is a client gone, not a server error: it is
/// logged at debug.
///
/// This future lives as long as the socket, inline in the connection's
/// task, so its handshake (the App's call, the answer) runs boxed and only
/// the writing of the socket's queue stays inline.
pub async fn serve<T, S, B>(app: Rc<S>, req: Request, framed: Framed<T, h1::Codec>)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let result = match Box::pin(handshake(app, req, framed)).await {
        Ok(Some(mut upgraded)) => {
            let result = queue::write(upgraded.outgoing, &mut upgraded.write).await;
            linger(&mut upgraded.write).await;
            result
        }
        Ok(None) => Ok(()),
        Err(err) => Err(err),
    };
    if let Err(err) = result {
        log::debug!("upgraded connection ended: {err}");
    }
}

/// A socket after its `101`: where to write, and what.
struct Upgraded<T> {
    write: WriteHalf<T>,
    outgoing: Outgoing,
}

/// The App answers the upgrade request; a `101` is written and its socket
/// returned, any other answer is written and the connection shut (`None`).
async fn handshake<T, S, B>(
    app: Rc<S>,
    req: Request,
    framed: Framed<T, h1::Codec>,
) -> io::Result<Option<Upgraded<T>>>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    log::debug!(
        "upgrade request {} taken off the HTTP/1 dispatcher",
        req.path()
    );
    // The dispatcher's buffers go now (the write buffer is empty; what the
    // read buffer holds is copied out of its 8 KiB).
    let FramedParts {
        io,
        mut codec,
        read_buf,
        ..
    } = framed.into_parts();
    let early = (!read_buf.is_empty()).then(|| Bytes::copy_from_slice(&read_buf));
    drop(read_buf);
    let (read, mut write) = tokio::io::split(io);
    let incoming: actix_http::BoxedPayloadStream = Box::pin(Incoming {
        early,
        read,
        done: false,
    });
    let (req, _) = req.replace_payload(Payload::from(incoming));
    let handoff = Handoff::default();
    req.extensions_mut().insert(handoff.clone());
    let res: Response<BoxBody> = match app.call(req).await {
        Ok(res) => res.map_into_boxed_body().into(),
        Err(err) => err.error_response().into(),
    };
    let (mut head, body) = res.into_parts();
    let mut out = BytesMut::new();
    if head.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(outgoing) = handoff.take() else {
            return Err(io::Error::other("a 101 without a send queue"));
        };
        codec.encode(h1::Message::Item((head, BodySize::None)), &mut out)?;
        write_all(&mut write, &out).await?;
        return Ok(Some(Upgraded { write, outgoing }));
    }
    // Refused (or not a WebSocket): the answer, then the connection ends.
    head.head_mut().set_connection_type(ConnectionType::Close);
    let bytes = actix_http::body::to_bytes(body)
        .await
        .map_err(|_| io::Error::other("the answer's body failed"))?;
    codec.encode(
        h1::Message::Item((head, BodySize::Sized(bytes.len() as u64))),
        &mut out,
    )?;
    codec.encode(h1::Message::Chunk(Some(bytes)), &mut out)?;
    codec.encode(h1::Message::Chunk(None), &mut out)?;
    write_all(&mut write, &out).await?;
    linger(&mut write).await;
    Ok(None)
}

/// Shuts the connection down, waiting at most [`LINGER`] for the last bytes.
async fn linger<T: AsyncWrite>(write: &mut WriteHalf<T>) {
    let _ = queue::within(LINGER, write.shutdown()).await;
}
