//! Admin and operator endpoints: stats, connections, kick, health, metrics,
//! and the JSON 404.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn stats_count_connections_users_rooms_and_events() {
    let app = spawn_app().await;
    let admin = app.token("root", "admin");
    let (mut a1, _) = app.realtime_connected("alice", "").await;
    let (_a2, _) = app.realtime_connected("alice", "").await;
    let (mut b, _) = app.realtime_connected("bob", "").await;
    app.publish("alice", "A", json!({})).await;
    app.publish("bob", "B", json!({})).await;
    // Once delivered, both are in their rooms' rings.
    a1.next_json().await;
    b.next_json().await;
    let res = app.get("/api/websocket/stats", &admin).await;
    assert_eq!(res.status(), 200);
    let stats: Value = res.json().await.unwrap();
    assert_eq!(stats["totalConnections"], 3);
    assert_eq!(stats["activeUsers"], 2);
    assert_eq!(stats["cashierConnections"], 0);
    assert_eq!(stats["rooms"], 2);
    assert_eq!(stats["bufferedEvents"], 2);
    assert_eq!(stats["eventsPublished"], 2);
    assert!(stats["uptimeSec"].is_u64());
    // The totals carry no one node's figures; each node does (the admin's
    // nodes panel): its version, memory, and how old its figures are.
    assert!(
        stats.get("version").is_none() && stats.get("memoryBytes").is_none(),
        "{stats}"
    );
    let node = &stats["nodes"][0];
    assert_eq!(node["thisNode"], true, "{stats}");
    assert_eq!(node["listAgeMs"], 0);
    assert_eq!(node["stats"]["version"], env!("CARGO_PKG_VERSION"));
    let memory = node["stats"]["memoryBytes"].as_u64().unwrap();
    assert!(
        (1 << 20..8 << 30).contains(&memory),
        "{memory} bytes resident"
    );
    // One node on SQLite: no tailer, so no tailer lag.
    if app.database_url().starts_with("sqlite:") {
        assert!(node["stats"].get("tailerLagSeconds").is_none(), "{node}");
    }
}

#[tokio::test]
async fn admin_lists_connections_and_kicks_one_with_4003() {
    let app = spawn_app().await;
    let admin = app.token("root", "admin");
    let (mut kicked, hello) = app.realtime_connected("alice", "deviceId=tab-9").await;
    let (mut other, _) = app.realtime_connected("alice", "").await;
    let id = hello["connectionId"].as_str().unwrap().to_owned();

    let list: Value = app
        .get("/api/admin/connections", &admin)
        .await
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let mine = list
        .iter()
        .find(|c| c["id"] == id.as_str())
        .expect("listed");
    assert_eq!(mine["userId"], "alice");
    assert_eq!(mine["kind"], "realtime");
    assert_eq!(mine["deviceId"], "tab-9");
    assert!(mine["connectedAt"].as_str().unwrap().ends_with('Z'));

    let res = app
        .http
        .delete(app.url(&format!("/api/admin/connections/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (ended, _) = kicked.until_closed(WAIT).await;
    assert_eq!(ended.code(), Some(4003), "{ended:?}");

    // Unknown ids are a 404; agents may not kick.
    let res = app
        .http
        .delete(app.url("/api/admin/connections/nope"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .http
        .delete(app.url(&format!("/api/admin/connections/{id}")))
        .bearer_auth(app.token("alice", "agent"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    app.publish("alice", "AFTER_KICK", json!({})).await;
    assert_eq!(other.next_json().await["type"], "AFTER_KICK");
    for _ in 0..50 {
        let list: Value = app
            .get("/api/admin/connections", &admin)
            .await
            .json()
            .await
            .unwrap();
        if list.as_array().unwrap().len() == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the kicked connection is still listed");
}

#[tokio::test]
async fn health_metrics_static_and_unknown_routes() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));

    let (mut ws, _) = app.realtime_connected("alice", "").await;
    app.publish("alice", "A", json!({})).await;
    ws.next_json().await;
    // The room counts a delivery just after queueing its frame, on its own
    // thread: the socket can be faster than the count, so a scrape right
    // after the frame may still see the old value (as Prometheus would).
    let mut text = String::new();
    for _ in 0..50 {
        let res = app.http.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        text = res.text().await.unwrap();
        if text.contains("herald_events_delivered_total 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for name in [
        "herald_connections{kind=\"realtime\"} 1",
        "herald_rooms 1",
        "herald_events_published_total 1",
        "herald_events_delivered_total 1",
        "herald_events_replayed_total",
        "herald_replay_misses_total",
        "herald_slow_consumer_closes_total",
        "herald_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }

    let res = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    for (method, path) in [
        ("GET", "/api/nothing-here"),
        ("POST", "/api/publish/extra"),
        ("GET", "/api/publish"),
    ] {
        let res = app
            .http
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
}

#[tokio::test]
async fn the_history_samples_the_last_minutes_once_a_second() {
    let app = spawn_app().await;
    let admin = app.token("root", "admin");
    let (_ws, _) = app.realtime_connected("alice", "").await;
    for i in 0..20 {
        app.publish("alice", "LOAD", json!({"i": i})).await;
    }
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (status, samples) = app
        .call_json("GET", "/api/admin/history?seconds=60", &admin, None, None)
        .await;
    assert_eq!(status, 200, "{samples}");
    let samples = samples.as_array().unwrap();
    assert!(samples.len() >= 2, "one a second: {samples:?}");
    assert!(
        samples
            .iter()
            .any(|s| s["publishesPerSec"].as_f64().unwrap() > 0.0),
        "{samples:?}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s["deliveriesPerSec"].as_f64().unwrap() > 0.0),
        "{samples:?}"
    );
    assert_eq!(samples.last().unwrap()["connections"], 1);
    let (status, _) = app
        .call_json("GET", "/api/admin/history?seconds=5", &admin, None, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call_json(
            "GET",
            "/api/admin/history",
            &app.token("alice", "agent"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call_json("GET", "/api/admin/history?seconds=soon", &admin, None, None)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_admin_watches_any_users_stream_and_nobody_else_may() {
    let app = spawn_app().await;
    let admin = app.token("root", "admin");
    let mut ws = Ws::connect(&app.ws_url(&format!(
        "/ws/realtime?token={admin}&userId=bob&deviceId=inspector"
    )))
    .await
    .unwrap();
    let hello = ws.next_json().await;
    assert_eq!(hello["payload"]["userId"], "bob");
    app.publish("bob", "FOR_BOB", json!({})).await;
    assert_eq!(ws.next_json().await["type"], "FOR_BOB");
    let agent = app.token("alice", "agent");
    let status = upgrade_status(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            app.ws_url(&format!("/ws/realtime?token={agent}&userId=bob")),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
}
