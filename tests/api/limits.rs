//! What a socket may make the server hold: a frame is refused at its
//! header, before its bytes are buffered; a socket that has not
//! authenticated is held to a small message; close codes follow RFC 6455.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// Streams a frame that announces 4 GiB in 1 MiB chunks (up to 64 MiB) on
/// `path`; answers the close code the server sent and how much the
/// server's memory grew meanwhile (KiB).
async fn stream_a_4_gib_frame(app: &TestApp, path: &str) -> (Option<u16>, u64) {
    let before = rss_kib(app.pid());
    let mut ws = RawWs::connect(&app.addr, path).await;
    ws.send(&RawWs::header(0x1, true, 4 << 30)).await.unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    let mut peak = before;
    for _ in 0..64 {
        if ws.send(&chunk).await.is_err() {
            break; // the server hung up
        }
        peak = peak.max(rss_kib(app.pid()));
    }
    let code = ws.close_code(Duration::from_secs(5)).await;
    peak = peak.max(rss_kib(app.pid()));
    (code, peak.saturating_sub(before))
}

#[tokio::test]
async fn a_frame_announcing_4_gib_is_refused_at_its_header_without_a_token() {
    let app = spawn_app().await;
    let (code, grew) = stream_a_4_gib_frame(&app, "/ws").await;
    assert_eq!(code, Some(1009), "closed as too big");
    assert!(
        grew < 16 * 1024,
        "the server held {grew} KiB of a frame it should have refused at its header"
    );
    // Nothing else was disturbed.
    let (mut t, _) = app.terminal("t1", "main", json!({})).await;
    t.send_json(&json!({"type": "ping"})).await;
    assert_eq!(t.next_json().await["type"], "pong");
}

#[tokio::test]
async fn a_frame_announcing_4_gib_is_refused_at_its_header_on_the_dashboard_stream() {
    let app = spawn_app().await;
    let token = app.token("alice", "agent");
    let (code, grew) = stream_a_4_gib_frame(&app, &format!("/ws/realtime?token={token}")).await;
    assert_eq!(code, Some(1009), "closed as too big");
    assert!(grew < 16 * 1024, "the server held {grew} KiB");
}

/// A message in pieces is refused when the header of the piece that would
/// take it over the limit arrives, not after that piece was buffered.
#[tokio::test]
async fn a_message_in_pieces_is_refused_at_the_header_that_passes_the_limit() {
    let app = spawn_app().await;
    let token = app.token("alice", "agent");
    let mut ws = RawWs::connect(&app.addr, &format!("/ws/realtime?token={token}")).await;
    let piece = vec![b'a'; 700 * 1024];
    ws.send(&RawWs::frame(0x1, false, &piece)).await.unwrap();
    // The second piece's header only: 700 KiB more would be 1.4 MiB.
    ws.send(&RawWs::header(0x0, true, piece.len() as u64))
        .await
        .unwrap();
    assert_eq!(ws.close_code(WAIT).await, Some(1009));
}

/// A terminal that has not said `connect` (and opened `/ws` without a
/// token) may send only small messages: nobody anonymous makes the server
/// hold a mebibyte per socket. Once connected, the full limit holds.
#[tokio::test]
async fn a_terminal_that_has_not_connected_is_held_to_a_small_message() {
    let app = spawn_app().await;
    let mut ws = RawWs::connect(&app.addr, "/ws").await;
    let padded = json!({"type": "ping", "pad": "x".repeat(20 * 1024)}).to_string();
    ws.send(&RawWs::frame(0x1, true, padded.as_bytes()))
        .await
        .unwrap();
    assert_eq!(ws.close_code(WAIT).await, Some(1009));

    // Connected, a 900 KiB message is read (and answered).
    let (mut t, _) = app.terminal("t1", "main", json!({})).await;
    let big = json!({"type": "ping", "pad": "x".repeat(900 * 1024)}).to_string();
    t.send_text(&big).await;
    assert_eq!(t.next_json().await["type"], "pong");
}

/// RFC 6455 §7.4.1: text that is not UTF-8 closes with 1007, on both sockets.
#[tokio::test]
async fn text_that_is_not_utf8_closes_with_1007() {
    let app = spawn_app().await;
    let token = app.token("alice", "agent");
    for path in [format!("/ws/realtime?token={token}"), "/ws".to_owned()] {
        let mut ws = RawWs::connect(&app.addr, &path).await;
        ws.send(&RawWs::frame(0x1, true, &[b'{', 0xC3, 0x28, b'}']))
            .await
            .unwrap();
        assert_eq!(ws.close_code(WAIT).await, Some(1007), "{path}");
    }
}

/// A reconnect storm lands while the server is busy: the kernel must hold
/// the connections it cannot hand over yet (the documented backlog, 4,096)
/// rather than drop their SYNs, which a client retries only after a
/// second. The server is stopped (SIGSTOP) so that it accepts nothing
/// while 600 connects arrive; each must complete its handshake at once.
#[tokio::test]
async fn a_burst_of_connects_to_a_busy_server_waits_in_the_listen_queue() {
    let app = spawn_app().await;
    let pid = app.pid() as i32;
    // SAFETY: signals to the child process this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let addr = app.addr.clone();
    let connects = (0..600).map(|_| {
        let addr = addr.clone();
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .ok()
            .and_then(Result::ok)
        })
    });
    let mut held = Vec::new();
    for connect in connects.collect::<Vec<_>>() {
        if let Some(stream) = connect.await.unwrap() {
            held.push(stream);
        }
    }
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(
        held.len(),
        600,
        "only {} of 600 connects completed while the server was busy: the \
         listen queue dropped the others' SYNs",
        held.len()
    );
    // And the queued connections are served once the server runs again.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut last = held.pop().unwrap();
    drop(held);
    last.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), last.read_to_end(&mut answer))
        .await
        .expect("served within 10 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
