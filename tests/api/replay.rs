//! Replay: from the ring, from the database, across a SIGKILL, with live
//! events racing it, and the cases that cannot be recovered.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// Reads a replay: the events before `REPLAY_COMPLETE`, and its payload.
async fn read_replay(ws: &mut Ws) -> (Vec<Value>, Value) {
    let mut events = Vec::new();
    loop {
        let msg = ws.next_json().await;
        if msg["type"] == "REPLAY_COMPLETE" {
            return (events, msg["payload"].clone());
        }
        events.push(msg);
    }
}

#[tokio::test]
async fn replay_after_a_disconnect_returns_exactly_the_missed_events() {
    let app = spawn_app().await;
    let (mut ws, hello) = app.realtime_connected("alice", "deviceId=tab-2").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    for i in 1..=3 {
        app.publish("alice", "FRESIS_HISTORY_UPDATED", json!({"i": i}))
            .await;
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(ws.next_json().await);
    }
    ws.close().await;
    for i in 4..=7 {
        app.publish("alice", "FRESIS_HISTORY_UPDATED", json!({"i": i}))
            .await;
    }
    let (mut ws, hello) = app
        .realtime_connected("alice", &format!("since=3&epoch={epoch}&deviceId=tab-2"))
        .await;
    assert_eq!(hello["lastSeq"], 7);
    let (missed, done) = read_replay(&mut ws).await;
    assert_seqs(&missed, 4, 7);
    for (ev, i) in missed.iter().zip(4..) {
        assert_eq!(ev["payload"]["i"], i);
    }
    assert_eq!(
        done,
        json!({"replayed": 4, "recovered": true, "lastSeq": 7})
    );
    // Then live, without a duplicate.
    app.publish("alice", "FRESIS_HISTORY_UPDATED", json!({"i": 8}))
        .await;
    assert_eq!(ws.next_json().await["seq"], 8);
    ws.expect_silence(Duration::from_millis(300)).await;

    // Nothing missed: an empty, recovered replay.
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=8&epoch={epoch}"))
        .await;
    let (missed, done) = read_replay(&mut ws).await;
    assert!(missed.is_empty());
    assert_eq!(
        done,
        json!({"replayed": 0, "recovered": true, "lastSeq": 8})
    );
}

#[tokio::test]
async fn replay_comes_from_the_database_when_the_ring_is_too_short() {
    let app = spawn_app_with(&[("HERALD_BUFFER_EVENTS", "2")]).await;
    let (_keep_room_alive, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    for i in 1..=10 {
        app.publish("alice", "FRESIS_HISTORY_CREATED", json!({"i": i}))
            .await;
    }
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=1&epoch={epoch}"))
        .await;
    let (missed, done) = read_replay(&mut ws).await;
    assert_seqs(&missed, 2, 10);
    assert_eq!(
        done,
        json!({"replayed": 9, "recovered": true, "lastSeq": 10})
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
        metrics.contains("herald_events_replayed_total 9"),
        "{metrics}"
    );
}

#[tokio::test]
async fn events_committed_before_a_sigkill_are_replayed_and_seq_continues() {
    let mut app = spawn_app().await;
    let (_ws, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    for i in 1..=5 {
        assert_eq!(
            app.publish("alice", "ORDER_EDIT_COMPLETE", json!({"i": i}))
                .await,
            Some(i)
        );
    }
    app.restart().await; // SIGKILL, then a new process on the same database

    let (mut ws, hello) = app
        .realtime_connected("alice", &format!("since=2&epoch={epoch}"))
        .await;
    assert_eq!(hello["epoch"], epoch.as_str(), "same database, same epoch");
    assert_eq!(hello["lastSeq"], 5);
    let (missed, done) = read_replay(&mut ws).await;
    assert_seqs(&missed, 3, 5);
    assert_eq!(missed[0]["payload"]["i"], 3);
    assert_eq!(done["recovered"], true);
    assert_eq!(
        app.publish("alice", "ORDER_EDIT_COMPLETE", json!({"i": 6}))
            .await,
        Some(6)
    );
    assert_eq!(ws.next_json().await["seq"], 6);
}

#[tokio::test]
async fn live_events_during_a_replay_follow_it_without_gaps_or_duplicates() {
    // A one-event ring forces the replay to the database; 24 MB of events
    // fill the socket's buffers, so a device that does not read holds its
    // replay mid-way for certain, and everything published meanwhile is
    // live for it.
    let app = spawn_app_with(&[("HERALD_BUFFER_EVENTS", "1")]).await;
    let (_keep, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    let token = app.token("backend", "service");
    let before = 400u64;
    let pad = "x".repeat(60 * 1024);
    for i in 0..before {
        app.publish("alice", "SYNC_COMPLETED", json!({"i": i, "pad": pad}))
            .await;
    }
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
        .await;
    // Not reading: the replay stalls on the full socket.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = 150u64;
    for i in 0..during {
        let res = app
            .http
            .post(app.url("/api/publish"))
            .bearer_auth(&token)
            .json(&json!({"userId": "alice", "type": "SYNC_COMPLETED", "payload": {"live": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let (replayed, done) = read_replay(&mut ws).await;
    assert_eq!(done["recovered"], true);
    let upto = done["lastSeq"].as_u64().unwrap();
    assert_eq!(
        upto, before,
        "the replay ends where the stream stood at the join"
    );
    assert_eq!(done["replayed"].as_u64().unwrap(), upto);
    assert_seqs(&replayed, 1, upto);
    let total = before + during;
    let mut live = Vec::new();
    while upto + (live.len() as u64) < total {
        live.push(ws.next_json().await);
    }
    assert_eq!(
        live.len() as u64,
        during,
        "every event published meanwhile came live"
    );
    assert_seqs(&live, upto + 1, total);
    assert_eq!(live[0]["payload"]["live"], 0);
    ws.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_gap_past_the_retention_window_is_not_recovered_even_before_pruning() {
    // Retention of 2 s, but pruning only hourly: the rows are still there.
    let app = spawn_app_with(&[
        ("HERALD_RETENTION_SECS", "2"),
        ("HERALD_PRUNE_INTERVAL_SECS", "3600"),
        ("HERALD_BUFFER_EVENTS", "1"),
    ])
    .await;
    let (_keep, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    let old_ms = chrono_now_ms();
    app.publish("alice", "A", json!({})).await;
    app.publish("alice", "B", json!({})).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.publish("alice", "C", json!({})).await;

    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
        .await;
    let (events, done) = read_replay(&mut ws).await;
    assert!(events.is_empty(), "nothing partial is replayed: {events:?}");
    assert_eq!(
        done,
        json!({"replayed": 0, "recovered": false, "lastSeq": 3})
    );
    // Live events still flow after an unrecovered replay.
    app.publish("alice", "D", json!({})).await;
    assert_eq!(ws.next_json().await["seq"], 4);

    // Within the window it is recovered.
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=2&epoch={epoch}"))
        .await;
    let (events, done) = read_replay(&mut ws).await;
    assert_seqs(&events, 3, 4);
    assert_eq!(done["recovered"], true);

    // By time: older than the window is not recovered either.
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("lastEventTs={old_ms}"))
        .await;
    let (events, done) = read_replay(&mut ws).await;
    assert!(events.is_empty());
    assert_eq!(done["recovered"], false);
}

/// A `count(*) AS n` query's answer.
async fn count_rows(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

fn chrono_now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

#[tokio::test]
async fn old_events_are_pruned_in_the_background() {
    let app = spawn_app_with(&[
        ("HERALD_RETENTION_SECS", "1"),
        ("HERALD_PRUNE_INTERVAL_SECS", "1"),
    ])
    .await;
    for _ in 0..3 {
        app.publish("alice", "A", json!({})).await;
    }
    let db = sea_orm::Database::connect(app.database_url())
        .await
        .unwrap();
    assert_eq!(count_rows(&db, "SELECT count(*) AS n FROM events").await, 3);
    let deadline = std::time::Instant::now() + WAIT;
    while count_rows(&db, "SELECT count(*) AS n FROM events").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rows are still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The sequence survives pruning.
    assert_eq!(app.publish("alice", "A", json!({})).await, Some(4));
}

#[tokio::test]
async fn another_epoch_or_a_future_since_cannot_be_recovered() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.publish("alice", "A", json!({})).await;
    }
    let (mut ws, hello) = app
        .realtime_connected("alice", "since=1&epoch=someotherdb")
        .await;
    assert_ne!(hello["epoch"], "someotherdb");
    let (events, done) = read_replay(&mut ws).await;
    assert!(events.is_empty());
    assert_eq!(
        done,
        json!({"replayed": 0, "recovered": false, "lastSeq": 3})
    );

    let (mut ws, _) = app.realtime_connected("alice", "since=99").await;
    let (events, done) = read_replay(&mut ws).await;
    assert!(events.is_empty());
    assert_eq!(done["recovered"], false);

    // Without an epoch, a since within the stream is trusted.
    let (mut ws, _) = app.realtime_connected("alice", "since=1").await;
    let (events, done) = read_replay(&mut ws).await;
    assert_seqs(&events, 2, 3);
    assert_eq!(done["recovered"], true);

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
        metrics.contains("herald_replay_misses_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn replay_by_last_event_timestamp() {
    let app = spawn_app().await;
    app.publish("alice", "A", json!({"n": 1})).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cut = chrono_now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.publish("alice", "A", json!({"n": 2})).await;
    app.publish("alice", "A", json!({"n": 3})).await;

    let (mut ws, _) = app
        .realtime_connected("alice", &format!("lastEventTs={cut}"))
        .await;
    let (events, done) = read_replay(&mut ws).await;
    assert_seqs(&events, 2, 3);
    assert_eq!(
        done,
        json!({"replayed": 2, "recovered": true, "lastSeq": 3})
    );

    // RFC 3339 with an offset works too.
    let secs = (cut / 1000) as i64;
    let with_offset = format_with_offset(secs - 1);
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("lastEventTs={}", urlencode(&with_offset)))
        .await;
    let (events, done) = read_replay(&mut ws).await;
    assert!(!events.is_empty());
    assert_eq!(done["recovered"], true);

    let bad = upgrade_status(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url(
            &format!(
                "/ws/realtime?token={}&lastEventTs=yesterday",
                app.token("alice", "agent")
            ),
        ))
        .unwrap(),
    )
    .await;
    assert_eq!(bad, 400);
    let bad = upgrade_status(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url(
            &format!(
                "/ws/realtime?token={}&since=-1",
                app.token("alice", "agent")
            ),
        ))
        .unwrap(),
    )
    .await;
    assert_eq!(bad, 400);
}

/// `secs` as RFC 3339 in +03:00.
fn format_with_offset(secs: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(3 * 3600).unwrap();
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .with_timezone(&offset)
        .to_rfc3339()
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
