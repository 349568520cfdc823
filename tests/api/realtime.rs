//! `/ws/realtime` live behaviour: fan-out, ordering, control messages,
//! heartbeat, slow consumers, oversized messages, idle rooms.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn connected_comes_first_with_the_stream_position() {
    let app = spawn_app().await;
    app.publish("alice", "ORDER_EDIT_COMPLETE", json!({"n": 1}))
        .await;
    let (_ws, payload) = app.realtime_connected("alice", "deviceId=tab-1").await;
    assert_eq!(payload["userId"], "alice");
    assert_eq!(payload["lastSeq"], 1);
    assert_eq!(payload["heartbeatSec"], 30);
    assert_eq!(payload["deviceId"], "tab-1");
    assert!(payload["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(payload["connectionId"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
}

#[tokio::test]
async fn three_devices_get_every_event_and_another_user_gets_none() {
    let app = spawn_app().await;
    let mut devices = Vec::new();
    for d in ["tab-1", "tab-2", "phone"] {
        devices.push(
            app.realtime_connected("alice", &format!("deviceId={d}"))
                .await
                .0,
        );
    }
    let (mut bob, _) = app.realtime_connected("bob", "").await;

    let res = app
        .http
        .post(app.url("/api/publish"))
        .bearer_auth(app.token("backend", "service"))
        .header("X-Device-Id", "tab-1")
        .json(&json!({"userId": "alice", "type": "ORDER_EDIT_COMPLETE", "payload": {"order": {"id": "o1", "note": "كولا 🍕"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"seqs": {"alice": 1}}));
    app.publish(
        "alice",
        "FRESIS_HISTORY_UPDATED",
        json!({"order": {"id": "o1"}}),
    )
    .await;

    for ws in devices.iter_mut() {
        let first = ws.next_event().await;
        assert_eq!(first["type"], "ORDER_EDIT_COMPLETE");
        assert_eq!(first["seq"], 1);
        assert_eq!(first["originDeviceId"], "tab-1");
        assert_eq!(first["payload"]["order"]["note"], "كولا 🍕");
        let ts = first["timestamp"].as_str().unwrap();
        assert!(
            ts.ends_with('Z') && ts.len() == 24,
            "RFC 3339 UTC with ms: {ts}"
        );
        let second = ws.next_event().await;
        assert_eq!(second["type"], "FRESIS_HISTORY_UPDATED");
        assert_eq!(second["seq"], 2);
        assert_eq!(second["originDeviceId"], Value::Null);
    }
    bob.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn sixty_concurrent_publishes_arrive_everywhere_in_one_contiguous_order() {
    let app = spawn_app().await;
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(app.realtime_connected("alice", "").await.0);
    }
    let token = app.token("backend", "service");
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (http, url, token) = (app.http.clone(), app.url("/api/publish"), token.clone());
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"userId": "alice", "type": "SYNC_STARTED", "payload": {"i": i}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            (i, body["seqs"]["alice"].as_u64().unwrap())
        }));
    }
    let mut acked = std::collections::HashMap::new();
    for t in tasks {
        let (i, seq) = t.await.unwrap();
        acked.insert(seq, i);
    }
    let mut orders = Vec::new();
    for ws in devices.iter_mut() {
        let mut got = Vec::new();
        for _ in 0..60 {
            got.push(ws.next_json().await);
        }
        assert_seqs(&got, 1, 60);
        // Each seq carries the payload of the request that was answered with it.
        for ev in &got {
            let seq = ev["seq"].as_u64().unwrap();
            assert_eq!(ev["payload"]["i"], acked[&seq]);
        }
        orders.push(
            got.iter()
                .map(|e| e["payload"]["i"].clone())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
}

#[tokio::test]
async fn ping_gets_pong_and_bad_messages_get_errors_without_closing() {
    let app = spawn_app().await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    ws.send_json(&json!({"type": "PING"})).await;
    let pong = ws.next_json().await;
    assert_eq!(pong["type"], "PONG");
    assert_eq!(pong["seq"], Value::Null);

    let cases = [
        ("{not json", "INVALID_JSON"),
        ("[1,2]", "VALIDATION_FAILED"),
        (r#"{"no":"type"}"#, "VALIDATION_FAILED"),
        (r#"{"type":42}"#, "VALIDATION_FAILED"),
        (r#"{"type":"SUBSCRIBE"}"#, "UNKNOWN_TYPE"),
        (r#"{"type":"REFRESH_TOKEN","token":5}"#, "VALIDATION_FAILED"),
    ];
    for (text, code) in cases {
        ws.send_text(text).await;
        let err = ws.next_json().await;
        assert_eq!(err["type"], "ERROR", "{text}");
        assert_eq!(err["payload"]["code"], code, "{text} -> {err}");
        assert!(err["payload"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    ws.inner
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["payload"]["code"], "UNSUPPORTED");

    // None of it was published anywhere, and the socket still works.
    ws.send_json(&json!({"type": "PING"})).await;
    assert_eq!(ws.next_json().await["type"], "PONG");
    let (_other, payload) = app.realtime_connected("alice", "").await;
    assert_eq!(payload["lastSeq"], 0);
}

#[tokio::test]
async fn a_message_over_one_mebibyte_closes_with_1009() {
    let app = spawn_app().await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let (mut other, _) = app.realtime_connected("alice", "").await;
    let big = format!(r#"{{"type":"PING","pad":"{}"}}"#, "x".repeat(1024 * 1024));
    let _ = ws.inner.send(Message::text(big)).await;
    let (ended, _) = ws.until_closed(WAIT).await;
    assert_eq!(ended.code(), Some(1009), "{ended:?}");
    // The other device is unaffected.
    app.publish("alice", "AFTER_BIG", json!({})).await;
    assert_eq!(other.next_json().await["type"], "AFTER_BIG");

    // Just under the limit is fine.
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let fits = format!(
        r#"{{"type":"PING","pad":"{}"}}"#,
        "x".repeat(1024 * 1024 - 100)
    );
    ws.send_text(&fits).await;
    assert_eq!(ws.next_json().await["type"], "PONG");
}

#[tokio::test]
async fn transient_events_are_live_only_with_a_null_seq() {
    let app = spawn_app().await;
    let (mut ws, payload) = app.realtime_connected("alice", "").await;
    let epoch = payload["epoch"].as_str().unwrap().to_owned();
    app.publish("alice", "SYNC_STARTED", json!({"job": {"id": "j1"}}))
        .await;
    let res = app
        .post(
            "/api/publish",
            &app.token("backend", "service"),
            &json!({"userId": "alice", "type": "SYNC_PROGRESS",
                    "payload": {"job": {"id": "j1"}, "progress": 50, "label": "half"}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"seqs": {"alice": null}}),
        "transient publishes answer a null seq for each user"
    );
    app.publish("alice", "SYNC_COMPLETED", json!({"job": {"id": "j1"}}))
        .await;

    let a = ws.next_json().await;
    let b = ws.next_json().await;
    let c = ws.next_json().await;
    assert_eq!(
        (a["type"].as_str(), a["seq"].as_u64()),
        (Some("SYNC_STARTED"), Some(1))
    );
    assert_eq!(b["type"], "SYNC_PROGRESS");
    assert_eq!(b["seq"], Value::Null);
    assert_eq!(b["payload"]["progress"], 50);
    assert_eq!(
        (c["type"].as_str(), c["seq"].as_u64()),
        (Some("SYNC_COMPLETED"), Some(2))
    );

    // A replay from the start has the two buffered events only.
    let (mut late, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
        .await;
    let replayed = [late.next_json().await, late.next_json().await];
    assert_seqs(&replayed, 1, 2);
    let done = late.next_json().await;
    assert_eq!(done["type"], "REPLAY_COMPLETE");
    assert_eq!(
        done["payload"],
        json!({"replayed": 2, "recovered": true, "lastSeq": 2})
    );
}

#[tokio::test]
async fn a_silent_client_is_closed_after_two_and_a_half_heartbeats() {
    let app = spawn_app_with(&[("HERALD_HEARTBEAT_SECS", "1")]).await;
    let (lively, payload) = app.realtime_connected("alice", "").await;
    assert_eq!(payload["heartbeatSec"], 1);
    let token = app.token("alice", "agent");
    let quiet = RawWs::connect(&app.addr, &format!("/ws/realtime?token={token}")).await;
    let mut lively = closed_for_silence_while(quiet, lively).await;
    app.publish("alice", "STILL_OPEN", json!({})).await;
    assert_eq!(lively.next_json().await["type"], "STILL_OPEN");
    let stats: Value = app
        .get("/api/websocket/stats", &app.token("root", "admin"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["totalConnections"], 1);
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_the_others_keep_receiving() {
    let app = spawn_app_with(&[("HERALD_SEND_QUEUE", "16")]).await;
    let (mut slow, _) = app.realtime_connected("alice", "").await;
    let (mut fast, _) = app.realtime_connected("alice", "").await;
    let token = app.token("backend", "service");
    // Big events fill the socket buffers quickly; `slow` does not read at all.
    let pad = "p".repeat(64 * 1024);
    let total = 400u64;
    let publisher = {
        let (http, url) = (app.http.clone(), app.url("/api/publish"));
        tokio::spawn(async move {
            for i in 0..total {
                let res = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"userId": "alice", "type": "BULK", "payload": {"i": i, "pad": pad}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }
        })
    };
    // The fast one keeps up (it only looks at the head of each frame).
    for seq in 1..=total {
        let text = fast.next_text().await;
        let head = &text[..text.len().min(80)];
        assert!(
            head.contains(&format!(r#""seq":{seq},"#)),
            "expected seq {seq}: {head}"
        );
    }
    publisher.await.unwrap();

    let (ended, seen) = slow.until_closed(Duration::from_secs(20)).await;
    assert_eq!(ended.code(), Some(4008), "{ended:?}");
    assert!(
        (seen.len() as u64) < total,
        "the slow one did not get everything"
    );

    // It replays what it missed.
    let last = seen
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap_or(0);
    let (mut again, _) = app
        .realtime_connected("alice", &format!("since={last}"))
        .await;
    let mut replayed = Vec::new();
    loop {
        let msg = again.next_json().await;
        if msg["type"] == "REPLAY_COMPLETE" {
            assert_eq!(msg["payload"]["recovered"], true);
            break;
        }
        replayed.push(msg);
    }
    assert_seqs(&replayed, last + 1, total);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herald_slow_consumer_closes_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn empty_rooms_are_stopped() {
    let app = spawn_app_with(&[("HERALD_BUFFER_TTL_SECS", "1")]).await;
    let admin = app.token("root", "admin");
    let (ws, _) = app.realtime_connected("alice", "").await;
    let stats: Value = app
        .get("/api/websocket/stats", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["rooms"], 1);
    assert_eq!(stats["activeUsers"], 1);
    ws.close().await;
    let mut rooms = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats: Value = app
            .get("/api/websocket/stats", &admin)
            .await
            .json()
            .await
            .unwrap();
        rooms = stats["rooms"].clone();
        if rooms == 0 {
            assert_eq!(stats["totalConnections"], 0);
            return;
        }
    }
    panic!("the room was not stopped: rooms = {rooms}");
}

/// The server's end of the TCP connection whose client end is `client_port`:
/// its `TCP_NODELAY`, read on the server's own socket (`pidfd_getfd`).
fn server_nodelay(pid: u32, client_port: u16) -> bool {
    let inode = ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let remote = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
                    (remote == client_port).then(|| f.get(9).map(|s| s.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .next()
        .expect("the server's end of the connection in /proc/<pid>/net/tcp");
    let target = format!("socket:[{inode}]");
    let fd: i32 = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's fds")
        .filter_map(|e| e.ok())
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
        .expect("the server's fd of that socket");
    // SAFETY: plain syscalls on fds this function opens and closes.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) as libc::c_int;
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let mine = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as libc::c_int;
        assert!(
            mine >= 0,
            "pidfd_getfd on the server's socket: {} (this test reads its child's socket: it \
             needs Linux 5.6 or later and no seccomp or Yama rule against tracing children)",
            std::io::Error::last_os_error()
        );
        let mut on: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let got = libc::getsockopt(
            mine,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &mut on as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        );
        assert_eq!(got, 0, "getsockopt: {}", std::io::Error::last_os_error());
        libc::close(mine);
        libc::close(pidfd);
        on != 0
    }
}

/// Frames leave when they are written. With Nagle's algorithm on (the OS
/// default, which actix keeps unless told), a frame written while the
/// previous one is unacknowledged waits for the client's delayed ACK, tens
/// of milliseconds on a device that only listens. Node's `ws` and Go's
/// servers turn it off; so does herald, on every socket it accepts.
#[tokio::test]
async fn every_accepted_socket_sends_without_nagle_delay() {
    let app = spawn_app().await;
    let (dashboard, _) = app.realtime_connected("u1", "").await;
    let (terminal, _) = app.terminal("c-1", "v1", json!({})).await;
    // A keep-alive connection that has had its answer: the server has
    // accepted it and holds it open.
    let mut plain = tokio::net::TcpStream::connect(&app.addr).await.unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        plain.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200", "the plain connection is served");
    }
    let port = |ws: &Ws| match ws.inner.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.local_addr().unwrap().port(),
        _ => unreachable!("plain test sockets"),
    };
    for (what, client_port) in [
        ("a dashboard socket", port(&dashboard)),
        ("a terminal socket", port(&terminal)),
        (
            "a plain HTTP connection",
            plain.local_addr().unwrap().port(),
        ),
    ] {
        assert!(
            server_nodelay(app.pid(), client_port),
            "{what}: the server's socket has Nagle's algorithm on (no TCP_NODELAY)"
        );
    }
}
