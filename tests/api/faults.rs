//! Faults: a SIGKILL in the middle of a publish load, a consumer that stops
//! reading, a flood of garbage, and a full disk.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn an_acknowledged_publish_survives_a_sigkill_in_the_middle_of_a_load() {
    let mut app = spawn_app().await;
    let (_ws, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    let token = app.token("backend", "service");
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (http, url, token) = (app.http.clone(), app.url("/api/publish"), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                let body = json!({"userIds": ["alice", "bob"], "type": "LOAD", "payload": {"w": worker, "i": i}});
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(res) if res.status() == 200 => {
                        let seqs: Value = res.json::<Value>().await.unwrap()["seqs"].clone();
                        acked.push((worker, i, seqs["alice"].as_u64().unwrap(), seqs["bob"].as_u64().unwrap()));
                    }
                    _ => break, // the server is gone
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    app.kill();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(acked.len() > 20, "the load ran: {} acked", acked.len());
    app.start().await;

    for (user, column) in [("alice", 2), ("bob", 3)] {
        let (mut ws, hello) = app
            .realtime_connected(user, &format!("since=0&epoch={epoch}"))
            .await;
        let last = hello["lastSeq"].as_u64().unwrap();
        // Every frame counted: a duplicate must not collapse into one.
        let mut frames = Vec::new();
        loop {
            let ev = ws.next_json().await;
            if ev["type"] == "REPLAY_COMPLETE" {
                assert_eq!(ev["payload"]["recovered"], true);
                assert_eq!(ev["payload"]["replayed"], frames.len(), "{user}");
                break;
            }
            frames.push(ev);
        }
        assert_eq!(frames.len() as u64, last, "{user}: one frame per seq");
        assert_seqs(&frames, 1, last);
        let replayed: std::collections::HashMap<u64, Value> = frames
            .iter()
            .map(|ev| (ev["seq"].as_u64().unwrap(), ev["payload"].clone()))
            .collect();
        for a in &acked {
            let seq = if column == 2 { a.2 } else { a.3 };
            let got = replayed
                .get(&seq)
                .unwrap_or_else(|| panic!("{user}: acked seq {seq} lost"));
            assert_eq!(got, &json!({"w": a.0, "i": a.1}), "{user} seq {seq}");
        }
    }
}

#[tokio::test]
async fn a_consumer_that_stops_reading_neither_grows_memory_nor_holds_up_the_others() {
    let app = spawn_app_with(&[("HERALD_SEND_QUEUE", "64")]).await;
    let (_stalled, _) = app.realtime_connected("alice", "").await;
    let (mut reader, _) = app.realtime_connected("alice", "").await;
    let pid = app.pid();
    let before = rss_kib(pid);
    let token = app.token("backend", "service");
    let pad = "m".repeat(32 * 1024);
    let total = 2400u64; // ~75 MiB of events
    let publisher = {
        let (http, url) = (app.http.clone(), app.url("/api/publish"));
        tokio::spawn(async move {
            for i in 0..total {
                let res = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(
                        &json!({"userId": "alice", "type": "BIG", "payload": {"i": i, "pad": pad}}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }
        })
    };
    // Memory may grow while caches warm up (ring, SQLite pages), but not with
    // the amount the stalled socket failed to read: compare the two halves.
    let mut at_half = 0;
    for seq in 1..=total {
        let text = reader.next_text().await;
        assert!(text[..80.min(text.len())].contains(&format!(r#""seq":{seq},"#)));
        if seq == total / 2 {
            at_half = rss_kib(pid);
        }
    }
    publisher.await.unwrap();
    let at_end = rss_kib(pid);
    let half_kib = total / 2 * 32;
    let second_half = at_end.saturating_sub(at_half);
    assert!(
        second_half < half_kib / 4,
        "memory grew by {second_half} KiB while {half_kib} KiB went unread (start {before}, half {at_half}, end {at_end})"
    );
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
async fn a_flood_of_garbage_leaves_the_server_serving_everyone_else() {
    let app = spawn_app().await;
    let (mut good, _) = app.realtime_connected("alice", "").await;
    let addr = app.addr.clone();
    let mut attackers = Vec::new();
    // Half-open connections: TCP only, a half-sent upgrade, then silence.
    let mut idle_sockets = Vec::new();
    for i in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /ws/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
                .await
                .unwrap();
        }
        idle_sockets.push(s);
    }
    // Raw junk on TCP.
    for _ in 0..20 {
        let addr = addr.clone();
        attackers.push(tokio::spawn(async move {
            if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
                let junk: Vec<u8> = (0..4096u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect();
                let _ = s.write_all(&junk).await;
            }
        }));
    }
    // Sockets that send invalid JSON, binary, broken frames and huge messages.
    for i in 0..20 {
        let url = app.ws_url(&format!(
            "/ws/realtime?token={}",
            app.token(&format!("mallory{i}"), "agent")
        ));
        let cashier_url = app.ws_url(&format!("/ws?token={}", app.cashier_token("main")));
        attackers.push(tokio::spawn(async move {
            let Ok(mut ws) = Ws::connect(if i % 2 == 0 { &url } else { &cashier_url }).await else {
                return;
            };
            for n in 0..50 {
                let msg = match n % 5 {
                    0 => Message::text("{{{{not json"),
                    1 => Message::binary(vec![0xff; 100]),
                    2 => Message::text(r#"{"type":"device_update","deviceId":7}"#),
                    3 => Message::text("\"just a string\""),
                    _ => Message::text(format!(r#"{{"type":"PING","x":"{}"}}"#, "y".repeat(4000))),
                };
                if ws.inner.send(msg).await.is_err() {
                    return;
                }
            }
            let _ = ws
                .inner
                .send(Message::text("z".repeat(2 * 1024 * 1024)))
                .await;
        }));
    }
    for a in attackers {
        let _ = a.await;
    }
    // Everyone else is still served, over the socket and over REST.
    assert_eq!(
        app.publish("alice", "STILL_SERVING", json!({})).await,
        Some(1)
    );
    assert_eq!(good.next_json().await["type"], "STILL_SERVING");
    let (status, _) = app
        .call_json(
            "POST",
            "/api/drafts",
            &app.token("alice", "agent"),
            None,
            Some(&json!({"payload": {"ok": true}})),
        )
        .await;
    assert_eq!(status, 201);
    let (mut fresh, _) = app.realtime_connected("bob", "").await;
    fresh.send_json(&json!({"type": "PING"})).await;
    assert_eq!(fresh.next_json().await["type"], "PONG");
    drop(idle_sockets);
}

#[tokio::test]
async fn a_full_disk_fails_writes_clearly_keeps_reads_and_recovers() {
    // Build the LD_PRELOAD shim that makes database writes fail with ENOSPC.
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("disk_full.so");
    let flag = dir.path().join("disk-is-full");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/disk_full.c");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(src)
        .arg("-ldl")
        .output()
        .expect("a C compiler (cc) builds the fault shim");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = spawn_sqlite_app_with(&[
        ("LD_PRELOAD", shim.to_str().unwrap()),
        ("HERALD_FAULT_FLAG", flag.to_str().unwrap()),
    ])
    .await;
    let agent = app.token("alice", "agent");
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    assert_eq!(app.publish("alice", "BEFORE", json!({})).await, Some(1));
    assert_eq!(ws.next_json().await["seq"], 1);
    let (status, draft) = app
        .call_json(
            "POST",
            "/api/drafts",
            &agent,
            None,
            Some(&json!({"payload": {"v": 1}})),
        )
        .await;
    assert_eq!(status, 201);
    ws.next_json().await;

    std::fs::write(&flag, b"").unwrap();
    let res = app
        .post(
            "/api/publish",
            &app.token("backend", "service"),
            &json!({"userId": "alice", "type": "DURING", "payload": {}}),
        )
        .await;
    assert_eq!(res.status(), 503);
    let err: Value = res.json().await.unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not stored") && message.contains("full"),
        "{message}"
    );
    let (status, err) = app
        .call_json(
            "PUT",
            &format!("/api/drafts/{}", draft["id"].as_str().unwrap()),
            &agent,
            None,
            Some(&json!({"payload": {"v": 2}})),
        )
        .await;
    assert_eq!(status, 503, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing was applied"));
    // Reads are still served.
    let (status, list) = app
        .call_json("GET", "/api/drafts", &agent, None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["payload"], json!({"v": 1}));
    ws.expect_silence(Duration::from_millis(300)).await;

    // The fault goes; writes work again and the sequence has no hole.
    std::fs::remove_file(&flag).unwrap();
    assert_eq!(app.publish("alice", "AFTER", json!({})).await, Some(3));
    let ev = ws.next_json().await;
    assert_eq!(
        (ev["type"].as_str(), ev["seq"].as_u64()),
        (Some("AFTER"), Some(3))
    );
    let (status, d) = app
        .call_json(
            "PUT",
            &format!("/api/drafts/{}", draft["id"].as_str().unwrap()),
            &agent,
            None,
            Some(&json!({"payload": {"v": 3}})),
        )
        .await;
    assert_eq!((status, &d["payload"]), (200, &json!({"v": 3})));
}
