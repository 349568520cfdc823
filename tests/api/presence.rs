//! Presence: `GET /api/presence` and `PRESENCE_JOINED` / `PRESENCE_LEFT`
//! on a user's stream; a grace period for devices that drop and come back;
//! across nodes, and a node that dies.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

async fn presence(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    app.call_json("GET", &format!("/api/presence{query}"), token, None, None)
        .await
}

/// The device ids `body` lists for `user`.
fn devices_of(body: &Value, group: &str, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = body[group][name]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["deviceId"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// Waits until `check` holds of alice's devices (admin's view of `app`).
async fn until_devices(app: &TestApp, user: &str, want: &[&str], within: Duration) -> Value {
    let admin = app.token("root", "admin");
    let started = Instant::now();
    loop {
        let (status, body) = presence(app, &admin, &format!("?userId={user}")).await;
        assert_eq!(status, 200, "{body}");
        if devices_of(&body, "users", user) == want {
            return body;
        }
        assert!(
            started.elapsed() < within,
            "{user}'s devices never became {want:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next presence event on `ws` about another device than `own`.
async fn next_presence(ws: &mut Ws, own: &str) -> Value {
    loop {
        let ev = ws.next_json().await;
        if ev["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("PRESENCE_"))
            && ev["payload"]["device"]["deviceId"] != own
        {
            return ev;
        }
    }
}

#[tokio::test]
async fn devices_join_and_leave_with_a_grace_period_and_events_on_the_stream() {
    let app = spawn_app_with(&[("HERALD_PRESENCE_GRACE_SECS", "1")]).await;
    let (mut phone, _) = app.realtime_connected("alice", "deviceId=phone").await;
    until_devices(&app, "alice", &["phone"], WAIT).await;

    let (mut laptop, _) = app.realtime_connected("alice", "deviceId=laptop").await;
    let joined = next_presence(&mut phone, "phone").await;
    assert_eq!(joined["type"], "PRESENCE_JOINED");
    assert_eq!(joined["seq"], Value::Null, "transient");
    assert_eq!(joined["payload"]["device"]["deviceId"], "laptop");
    assert_eq!(joined["payload"]["device"]["kind"], "realtime");
    assert!(joined["payload"]["device"]["since"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let body = until_devices(&app, "alice", &["laptop", "phone"], WAIT).await;
    assert!(body["users"]["alice"][0]["node"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    // A socket is not told of its own arrival.
    laptop.expect_silence(Duration::from_millis(200)).await;
    // A socket without a deviceId is listed (by its connection) but never
    // announced: on its return it would be another device.
    let (anonymous, _) = app.realtime_connected("alice", "").await;
    let admin = app.token("root", "admin");
    let (_, listed) = presence(&app, &admin, "?userId=alice").await;
    assert_eq!(
        listed["users"]["alice"].as_array().unwrap().len(),
        3,
        "{listed}"
    );
    drop(anonymous);
    phone.expect_silence(Duration::from_millis(200)).await;

    // The laptop drops and is back within the grace: never shown as gone.
    drop(laptop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (laptop, _) = app.realtime_connected("alice", "deviceId=laptop").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    until_devices(
        &app,
        "alice",
        &["laptop", "phone"],
        Duration::from_millis(10),
    )
    .await;
    // (the laptop's own socket heard of itself; the phone heard nothing)
    phone.expect_silence(Duration::from_millis(100)).await;

    // Gone for longer than the grace: it leaves, once.
    drop(laptop);
    tokio::time::sleep(Duration::from_millis(400)).await;
    until_devices(
        &app,
        "alice",
        &["laptop", "phone"],
        Duration::from_millis(10),
    )
    .await;
    let left = next_presence(&mut phone, "phone").await;
    assert_eq!(left["type"], "PRESENCE_LEFT");
    assert_eq!(left["payload"]["device"]["deviceId"], "laptop");
    until_devices(&app, "alice", &["phone"], WAIT).await;

    // A replay never carries presence events.
    let (_, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap();
    let (mut again, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
        .await;
    let complete = again.next_json().await;
    assert_eq!(complete["type"], "REPLAY_COMPLETE", "{complete}");
    assert_eq!(complete["payload"]["replayed"], 0);
}

#[tokio::test]
async fn who_may_see_whose_presence() {
    let app = spawn_app().await;
    let (_a, _) = app.realtime_connected("alice", "deviceId=phone").await;
    let (_b, _) = app.realtime_connected("bob", "deviceId=tablet").await;
    let (_t, _) = app.terminal("till-1", "main", json!({})).await;
    until_devices(&app, "bob", &["tablet"], WAIT).await;

    let alice = app.token("alice", "agent");
    let (status, body) = presence(&app, &alice, "").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"users": {"alice": body["users"]["alice"]}, "venues": {}}),
        "only her own"
    );
    assert_eq!(devices_of(&body, "users", "alice"), ["phone"]);
    for query in ["?userId=bob", "?venue=main"] {
        let (status, err) = presence(&app, &alice, query).await;
        assert_eq!(status, 403, "{query}: {err}");
    }

    let till = app.cashier_token("main");
    let (status, body) = presence(&app, &till, "").await;
    assert_eq!(status, 200);
    assert_eq!(devices_of(&body, "venues", "main"), ["till-1"]);
    assert_eq!(body["venues"]["main"][0]["kind"], "cashier");
    assert_eq!(body["users"], json!({}));
    let (status, _) = presence(&app, &till, "?venue=other").await;
    assert_eq!(status, 403);

    let admin = app.token("root", "admin");
    let (_, all) = presence(&app, &admin, "").await;
    assert_eq!(devices_of(&all, "users", "alice"), ["phone"]);
    assert_eq!(devices_of(&all, "users", "bob"), ["tablet"]);
    assert_eq!(devices_of(&all, "venues", "main"), ["till-1"]);
    let (_, one) = presence(&app, &admin, "?venue=main").await;
    assert_eq!(one["users"], json!({}));
    for bad in ["?userId=", "?nope=1", &format!("?venue={}", "v".repeat(65))] {
        let (status, err) = presence(&app, &admin, bad).await;
        assert_eq!(status, 400, "{bad}: {err}");
    }
    let (status, _) = app
        .call_json("GET", "/api/presence", "not-a-token", None, None)
        .await;
    assert_eq!(status, 401);

    // Herald's own events cannot be published.
    let (status, err) = app
        .call_json(
            "POST",
            "/api/publish",
            &app.token("backend", "service"),
            None,
            Some(&json!({"userId": "alice", "type": "PRESENCE_JOINED", "payload": {}})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("RESERVED_TYPE"))
    );
}

/// Two nodes: a device on node b is in node a's answer within a second, and
/// its events reach node a's sockets; a node that dies takes its devices out
/// after its lease, announced once.
#[tokio::test]
async fn presence_holds_across_nodes_and_a_dead_nodes_devices_go_after_its_lease() {
    let env = [
        ("HERALD_PRESENCE_GRACE_SECS", "1"),
        ("HERALD_NODE_LEASE_MS", "2000"),
    ];
    let mut cluster = crate::cluster::Nodes::start(2, &env).await;
    let (mut on_a, _) = cluster.apps[0]
        .realtime_connected("alice", "deviceId=desk")
        .await;
    until_devices(&cluster.apps[0], "alice", &["desk"], WAIT).await;

    let started = Instant::now();
    let (_on_b, _) = cluster.apps[1]
        .realtime_connected("alice", "deviceId=phone")
        .await;
    until_devices(
        &cluster.apps[0],
        "alice",
        &["desk", "phone"],
        Duration::from_secs(1),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let joined = next_presence(&mut on_a, "desk").await;
    assert_eq!(
        (
            joined["type"].as_str(),
            joined["payload"]["device"]["deviceId"].as_str()
        ),
        (Some("PRESENCE_JOINED"), Some("phone"))
    );
    let node_b = joined["payload"]["device"]["node"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(node_b.ends_with('b'), "{node_b}");

    // Node b dies: after its lease node a no longer lists its device, and
    // says so once.
    cluster.apps[1].kill();
    let left = next_presence(&mut on_a, "desk").await;
    assert_eq!(
        (
            left["type"].as_str(),
            left["payload"]["device"]["deviceId"].as_str()
        ),
        (Some("PRESENCE_LEFT"), Some("phone"))
    );
    until_devices(&cluster.apps[0], "alice", &["desk"], Duration::from_secs(1)).await;
    on_a.expect_silence(Duration::from_millis(500)).await;
}

/// Sockets that watch a stream are not its devices: an admin's socket on a
/// user's stream (the admin view's inspector) and a cashier
/// board (`/ws?observe=1`, or any admin on `/ws`) never show in presence
/// nor send `PRESENCE_JOINED`, while the agent's own device and a terminal
/// do.
#[tokio::test]
async fn observers_are_not_counted_as_devices() {
    let app = spawn_app().await;
    let (mut phone, _) = app.realtime_connected("alice", "deviceId=phone").await;
    until_devices(&app, "alice", &["phone"], WAIT).await;
    let admin = app.token("root", "admin");
    let mut watchers = Vec::new();
    for (token, device) in [(&admin, "inspector")] {
        let mut ws = Ws::connect(&app.ws_url(&format!(
            "/ws/realtime?token={token}&userId=alice&deviceId={device}"
        )))
        .await
        .unwrap();
        assert_eq!(ws.next_json().await["type"], "CONNECTED");
        watchers.push(ws);
    }
    // A board, and an admin on /ws, watching the venue; one real terminal.
    let board_token = app.cashier_token("main");
    let mut board = Ws::connect(&app.ws_url(&format!("/ws?token={board_token}&observe=1")))
        .await
        .unwrap();
    board
        .send_json(&json!({"type": "connect", "clientId": "board-1"}))
        .await;
    assert_eq!(board.next_json().await["type"], "connected");
    let mut admin_board = Ws::connect(&app.ws_url(&format!("/ws?token={admin}&venue=main")))
        .await
        .unwrap();
    admin_board
        .send_json(&json!({"type": "connect", "clientId": "board-2"}))
        .await;
    assert_eq!(admin_board.next_json().await["type"], "connected");
    let (_till, _) = app.terminal("till-1", "main", json!({})).await;

    let started = Instant::now();
    loop {
        let (_, body) = presence(&app, &admin, "?venue=main").await;
        if devices_of(&body, "venues", "main") == ["till-1"] {
            break;
        }
        assert!(started.elapsed() < WAIT, "the venue's devices: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = until_devices(&app, "alice", &["phone"], WAIT).await;
    assert_eq!(devices_of(&body, "users", "alice"), ["phone"]);
    // Still, after a moment, and the phone heard of no one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = presence(&app, &admin, "").await;
    assert_eq!(devices_of(&body, "users", "alice"), ["phone"], "{body}");
    assert_eq!(devices_of(&body, "venues", "main"), ["till-1"], "{body}");
    assert!(body["users"].get("root").is_none(), "{body}");
    if let Some(ev) = phone.next_json_within(Duration::from_millis(200)).await {
        panic!("the phone was told of an observer: {ev}");
    }
}
