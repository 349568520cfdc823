//! Cashier terminals on `/ws`, with the cashier team's own JSON examples as
//! fixtures: broadcasts to every other terminal (never the sender), state in
//! the database first, errors, resume, limits and auth.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const TS: &str = "2026-02-03T02:25:33+03:00";

/// The spec's messages, verbatim.
fn spec(kind: &str) -> Value {
    match kind {
        "device_update" => {
            json!({"type": "device_update", "deviceId": "pc1", "data": {"isRunning": true, "elapsedSeconds": 3600, "mode": "single", "customerCount": 2, "notes": "VIP customer"}, "timestamp": TS})
        }
        "order_placed" => {
            json!({"type": "order_placed", "deviceId": "pc1", "orders": [{"name": "كولا", "price": 1000, "quantity": 2, "notes": "بارد", "firstOrderTime": TS, "lastOrderTime": TS}], "timestamp": TS})
        }
        "order_updated" => {
            json!({"type": "order_updated", "deviceId": "pc1", "orderIndex": 0, "data": {"name": "كولا", "price": 1000, "quantity": 3, "notes": "بارد جداً", "lastOrderTime": TS}, "timestamp": TS})
        }
        "order_deleted" => {
            json!({"type": "order_deleted", "deviceId": "pc1", "orderIndex": 0, "timestamp": TS})
        }
        "device_transfer" => {
            json!({"type": "device_transfer", "fromDeviceId": "pc1", "toDeviceId": "pc5", "timestamp": TS})
        }
        "device_deleted" => json!({"type": "device_deleted", "deviceId": "pc1", "timestamp": TS}),
        "device_reset" => json!({"type": "device_reset", "deviceId": "pc1", "timestamp": TS}),
        "ping" => json!({"type": "ping", "timestamp": TS}),
        other => panic!("no fixture {other}"),
    }
}

async fn add_device(app: &TestApp, venue: &str, id: &str) -> Value {
    let (status, body) = app
        .call_json(
            "POST",
            "/api/devices",
            &app.cashier_token(venue),
            None,
            Some(&json!({"deviceId": id})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn device(app: &TestApp, id: &str) -> Value {
    let (status, body) = app
        .call_json(
            "GET",
            &format!("/api/devices/{id}"),
            &app.cashier_token("main"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asserts `got` has every field of `want` (the spec's broadcast) with the same value.
fn assert_fields(got: &Value, want: &Value) {
    for (k, v) in want.as_object().unwrap() {
        if k == "timestamp" {
            assert!(
                got["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
                "server timestamp: {got}"
            );
            continue;
        }
        assert_eq!(&got[k], v, "field `{k}` of {got}");
    }
}

#[tokio::test]
async fn connect_answers_connected_with_the_whole_venue() {
    let app = spawn_app().await;
    add_device(&app, "main", "pc1").await;
    add_device(&app, "main", "pc5").await;
    let (_ws, connected) = app.terminal("cashier-client-1", "main", json!({})).await;
    assert_eq!(connected["success"], true);
    assert_eq!(connected["message"], "Connected to server");
    assert_eq!(connected["seq"], 2);
    let devices = connected["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(
        devices[0],
        json!({"deviceId": "pc1", "name": "pc1", "isRunning": false, "elapsedSeconds": 0, "mode": "single",
               "customerCount": 1, "notes": "", "orders": [], "updatedAt": devices[0]["updatedAt"]})
    );
}

#[tokio::test]
async fn every_message_reaches_every_other_terminal_and_never_the_sender() {
    let mut app = spawn_app().await;
    add_device(&app, "main", "pc1").await;
    add_device(&app, "main", "pc5").await;
    let (mut a, _) = app.terminal("cashier-client-1", "main", json!({})).await;
    let (mut b, _) = app.terminal("cashier-client-2", "main", json!({})).await;
    let (mut c, _) = app.terminal("cashier-client-3", "main", json!({})).await;

    // (client message, the spec's broadcast as the others must receive it)
    let steps: Vec<(Value, Value)> = vec![
        (
            spec("device_update"),
            json!({"type": "device_updated", "deviceId": "pc1", "data": spec("device_update")["data"], "timestamp": TS}),
        ),
        (
            spec("order_placed"),
            json!({"type": "order_added", "deviceId": "pc1", "orders": spec("order_placed")["orders"], "timestamp": TS}),
        ),
        (
            spec("order_updated"),
            json!({"type": "order_modified", "deviceId": "pc1", "orderIndex": 0, "data": spec("order_updated")["data"], "timestamp": TS}),
        ),
        (
            spec("order_deleted"),
            json!({"type": "order_removed", "deviceId": "pc1", "orderIndex": 0, "timestamp": TS}),
        ),
        (
            spec("order_placed"),
            json!({"type": "order_added", "deviceId": "pc1", "orders": spec("order_placed")["orders"]}),
        ),
        (
            spec("device_transfer"),
            json!({"type": "device_transferred", "fromDeviceId": "pc1", "toDeviceId": "pc5", "message": "Device data transferred from pc1 to pc5", "timestamp": TS}),
        ),
    ];
    // Two device_created came first: the broadcasts are seq 3, 4, ...
    for (seq, (sent, want)) in (3u64..).zip(&steps) {
        a.send_json(sent).await;
        for ws in [&mut b, &mut c] {
            let got = ws.next_json().await;
            assert_fields(&got, want);
            assert_eq!(got["clientId"], "cashier-client-1");
            assert_eq!(got["seq"], seq, "{got}");
        }
    }
    // Arabic text arrives byte for byte.
    a.send_json(&spec("order_placed")).await;
    let raw = b.next_text().await;
    assert!(
        raw.contains(r#""name":"كولا""#) && raw.contains(r#""notes":"بارد""#),
        "{raw}"
    );
    c.next_json().await;

    // The database has it all: pc5 got pc1's timer and orders, pc1 is clear.
    let pc5 = device(&app, "pc5").await;
    assert_eq!(
        (pc5["isRunning"].as_bool(), pc5["customerCount"].as_i64()),
        (Some(true), Some(2))
    );
    // A running timer reads as of the answer: 3600 when sent, counting on.
    let elapsed = pc5["elapsedSeconds"].as_i64().unwrap();
    assert!((3600..3610).contains(&elapsed), "{pc5}");
    assert_eq!(pc5["notes"], "VIP customer");
    assert_eq!(pc5["orders"], json!([spec("order_placed")["orders"][0]]));
    let pc1 = device(&app, "pc1").await;
    assert_eq!(
        (pc1["isRunning"].as_bool(), pc1["elapsedSeconds"].as_i64()),
        (Some(false), Some(0))
    );
    assert_eq!(
        pc1["orders"].as_array().unwrap().len(),
        1,
        "the order placed after the transfer"
    );

    // Reset and delete.
    let mut reset = spec("device_reset");
    reset["deviceId"] = json!("pc5");
    a.send_json(&reset).await;
    let got = b.next_json().await;
    assert_fields(&got, &json!({"type": "device_cleared", "deviceId": "pc5"}));
    c.next_json().await;
    let pc5 = device(&app, "pc5").await;
    assert_eq!(
        (
            pc5["isRunning"].as_bool(),
            pc5["elapsedSeconds"].as_i64(),
            pc5["orders"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0), Some(0))
    );
    a.send_json(&spec("device_deleted")).await;
    assert_fields(
        &b.next_json().await,
        &json!({"type": "device_removed", "deviceId": "pc1"}),
    );
    c.next_json().await;
    let (status, _) = app
        .call_json(
            "GET",
            "/api/devices/pc1",
            &app.cashier_token("main"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 404);

    // ping: pong to the sender only.
    a.send_json(&spec("ping")).await;
    let pong = a.next_json().await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["timestamp"].is_string());
    // The sender got nothing else back, the others nothing of the ping.
    a.expect_silence(Duration::from_millis(300)).await;
    b.expect_silence(Duration::from_millis(10)).await;

    // It survives a restart.
    let before = app
        .call_json(
            "GET",
            "/api/devices",
            &app.cashier_token("main"),
            None,
            None,
        )
        .await
        .1;
    app.restart().await;
    let after = app
        .call_json(
            "GET",
            "/api/devices",
            &app.cashier_token("main"),
            None,
            None,
        )
        .await
        .1;
    assert_eq!(before, after);
    let text = app
        .get("/api/devices/pc5", &app.cashier_token("main"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("VIP customer"));
}

#[tokio::test]
async fn errors_go_to_the_sender_only_and_change_nothing() {
    let app = spawn_app_with(&[("HERALD_CASHIER_RATE", "1000")]).await;
    add_device(&app, "main", "pc1").await;
    add_device(&app, "main", "pc5").await;
    let (mut a, _) = app.terminal("t-a", "main", json!({})).await;
    let (mut b, _) = app.terminal("t-b", "main", json!({})).await;
    a.send_json(&spec("order_placed")).await; // pc1 has one order
    b.next_json().await;
    a.send_json(&json!({"type": "device_update", "deviceId": "pc5", "data": {"isRunning": true}}))
        .await;
    b.next_json().await;
    let before = app
        .call_json(
            "GET",
            "/api/devices",
            &app.cashier_token("main"),
            None,
            None,
        )
        .await
        .1;

    let mut negative_price = spec("order_placed");
    negative_price["orders"][0]["price"] = json!(-5);
    let mut fractional = spec("order_placed");
    fractional["orders"][0]["quantity"] = json!(1.5);
    let mut string_price = spec("order_placed");
    string_price["orders"][0]["price"] = json!("1000");
    let mut no_name = spec("order_placed");
    no_name["orders"][0].as_object_mut().unwrap().remove("name");
    let mut far_index = spec("order_updated");
    far_index["orderIndex"] = json!(7);
    let mut ghost = spec("device_update");
    ghost["deviceId"] = json!("pc99");
    let cases: Vec<(String, &str, &str)> = vec![
        ("{not json".into(), "INVALID_JSON", ""),
        ("[]".into(), "VALIDATION_FAILED", ""),
        (
            json!({"type": "dance"}).to_string(),
            "UNKNOWN_TYPE",
            "dance",
        ),
        (
            json!({"deviceId": "pc1"}).to_string(),
            "VALIDATION_FAILED",
            "type",
        ),
        (
            json!({"type": "device_update", "data": {"isRunning": true}}).to_string(),
            "VALIDATION_FAILED",
            "deviceId",
        ),
        (
            json!({"type": "device_update", "deviceId": "pc1", "data": {"isRunning": "yes"}})
                .to_string(),
            "VALIDATION_FAILED",
            "isRunning",
        ),
        (
            json!({"type": "device_update", "deviceId": "pc1", "data": {"mode": "triple"}})
                .to_string(),
            "VALIDATION_FAILED",
            "mode",
        ),
        (
            json!({"type": "device_update", "deviceId": "pc1", "data": {"elapsedSeconds": -1}})
                .to_string(),
            "VALIDATION_FAILED",
            "elapsedSeconds",
        ),
        (
            json!({"type": "device_update", "deviceId": "pc1", "data": {}}).to_string(),
            "VALIDATION_FAILED",
            "",
        ),
        (negative_price.to_string(), "VALIDATION_FAILED", "price"),
        (fractional.to_string(), "VALIDATION_FAILED", "quantity"),
        (string_price.to_string(), "VALIDATION_FAILED", "price"),
        (no_name.to_string(), "VALIDATION_FAILED", "name"),
        (
            json!({"type": "order_placed", "deviceId": "pc1", "orders": []}).to_string(),
            "VALIDATION_FAILED",
            "orders",
        ),
        (
            json!({"type": "order_deleted", "deviceId": "pc1", "orderIndex": -1}).to_string(),
            "VALIDATION_FAILED",
            "orderIndex",
        ),
        (
            ghost.to_string(),
            "DEVICE_NOT_FOUND",
            "Device pc99 does not exist",
        ),
        (
            json!({"type": "device_reset", "deviceId": "nope"}).to_string(),
            "DEVICE_NOT_FOUND",
            "nope",
        ),
        (far_index.to_string(), "ORDER_NOT_FOUND", "7"),
        (
            json!({"type": "order_deleted", "deviceId": "pc1", "orderIndex": 1}).to_string(),
            "ORDER_NOT_FOUND",
            "",
        ),
        (
            json!({"type": "device_transfer", "fromDeviceId": "pc1", "toDeviceId": "pc5"})
                .to_string(),
            "VALIDATION_FAILED",
            "in use",
        ),
        (
            json!({"type": "device_transfer", "fromDeviceId": "pc1", "toDeviceId": "pc1"})
                .to_string(),
            "VALIDATION_FAILED",
            "same",
        ),
        (
            json!({"type": "device_transfer", "fromDeviceId": "pc1", "toDeviceId": "pc42"})
                .to_string(),
            "DEVICE_NOT_FOUND",
            "pc42",
        ),
        (
            json!({"type": "connect", "clientId": "again"}).to_string(),
            "VALIDATION_FAILED",
            "already",
        ),
    ];
    for (text, code, mentions) in &cases {
        a.send_text(text).await;
        let err = a.next_json().await;
        assert_eq!(err["type"], "error", "{text}");
        assert_eq!(err["code"], *code, "{text} -> {err}");
        assert!(
            err["message"].as_str().unwrap().contains(mentions),
            "{text} -> {err}"
        );
        assert!(err["timestamp"].is_string());
    }
    b.expect_silence(Duration::from_millis(300)).await;
    let after = app
        .call_json(
            "GET",
            "/api/devices",
            &app.cashier_token("main"),
            None,
            None,
        )
        .await
        .1;
    // A running station's time counts on between the two reads; all else
    // must be as it was.
    let settled = |mut devices: Value| {
        for d in devices.as_array_mut().unwrap() {
            if d["isRunning"] == true {
                d.as_object_mut().unwrap().remove("elapsedSeconds");
            }
        }
        devices
    };
    assert_eq!(settled(before), settled(after), "no error changed anything");

    // DEVICE_EXISTS over REST.
    let (status, err) = app
        .call_json(
            "POST",
            "/api/devices",
            &app.cashier_token("main"),
            None,
            Some(&json!({"deviceId": "pc1"})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(err["error"]["code"], "DEVICE_EXISTS");
}

#[tokio::test]
async fn rate_limited_messages_are_refused() {
    let app = spawn_app_with(&[("HERALD_CASHIER_RATE", "2")]).await;
    add_device(&app, "main", "pc1").await;
    let (mut a, _) = app.terminal("t-a", "main", json!({})).await;
    let (mut b, _) = app.terminal("t-b", "main", json!({})).await;
    for _ in 0..10 {
        a.send_json(
            &json!({"type": "device_update", "deviceId": "pc1", "data": {"notes": "spam"}}),
        )
        .await;
    }
    let mut limited = 0;
    let mut applied = 0;
    while let Some(msg) = a.next_json_within(Duration::from_millis(500)).await {
        if msg["code"] == "RATE_LIMITED" {
            limited += 1;
        }
    }
    while b
        .next_json_within(Duration::from_millis(300))
        .await
        .is_some()
    {
        applied += 1;
    }
    assert!(limited >= 5, "limited {limited}");
    assert_eq!(
        applied + limited,
        10,
        "every message either applied or refused"
    );
}

#[tokio::test]
async fn a_terminal_resumes_from_last_seq_or_gets_the_state() {
    let mut app = spawn_app().await;
    add_device(&app, "main", "pc1").await;
    let (mut a, _) = app.terminal("t-a", "main", json!({})).await;
    let (b, connected) = app.terminal("t-b", "main", json!({})).await;
    let seen = connected["seq"].as_u64().unwrap();
    let epoch = connected["epoch"].as_str().unwrap().to_owned();
    b.close().await;
    a.send_json(&spec("device_update")).await;
    a.send_json(&spec("order_placed")).await;
    a.send_json(&spec("order_updated")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut b, connected) = app
        .terminal("t-b", "main", json!({"lastSeq": seen, "epoch": epoch}))
        .await;
    assert_eq!(connected["recovered"], true);
    assert_eq!(connected["seq"], seen + 3);
    assert!(
        connected.get("devices").is_none(),
        "the missed broadcasts instead of the state"
    );
    let missed: Vec<Value> = vec![
        b.next_json().await,
        b.next_json().await,
        b.next_json().await,
    ];
    let kinds: Vec<&str> = missed.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["device_updated", "order_added", "order_modified"]);
    assert_seqs(&missed, seen + 1, seen + 3);
    b.expect_silence(Duration::from_millis(200)).await;

    // The sender resuming does not get its own changes back.
    a.close().await;
    let (mut a, connected) = app.terminal("t-a", "main", json!({"lastSeq": seen})).await;
    assert_eq!(connected["recovered"], true);
    a.expect_silence(Duration::from_millis(300)).await;

    // From the database after a restart (the ring is gone).
    app.restart().await;
    let (mut b, connected) = app
        .terminal("t-b", "main", json!({"lastSeq": seen + 1}))
        .await;
    assert_eq!(connected["recovered"], true);
    assert_eq!(b.next_json().await["type"], "order_added");
    assert_eq!(b.next_json().await["type"], "order_modified");

    // A lastSeq that cannot be filled: recovered false and the whole state.
    for extra in [
        json!({"lastSeq": 999}),
        json!({"lastSeq": 0, "epoch": "another-db"}),
    ] {
        let (_ws, connected) = app.terminal("t-c", "main", extra.clone()).await;
        assert_eq!(connected["recovered"], false, "{extra}");
        assert_eq!(connected["devices"][0]["orders"][0]["quantity"], 3);
    }
}

#[tokio::test]
async fn rest_changes_reach_every_terminal() {
    let app = spawn_app().await;
    let token = app.cashier_token("main");
    let (mut a, _) = app.terminal("t-a", "main", json!({})).await;
    let (mut other_venue, _) = app.terminal("t-x", "cafe-2", json!({})).await;

    let created = add_device(&app, "main", "pc10").await;
    let got = a.next_json().await;
    assert_fields(
        &got,
        &json!({"type": "device_created", "deviceId": "pc10", "data": {"name": "pc10", "isRunning": false, "elapsedSeconds": 0, "mode": "single", "customerCount": 1, "notes": "", "orders": []}}),
    );
    assert_eq!(created["deviceId"], "pc10");
    assert!(got.get("clientId").is_none());

    let calls: Vec<(&str, &str, Value, &str)> = vec![
        (
            "PUT",
            "/api/devices/pc10",
            json!({"isRunning": true, "notes": "ملاحظة"}),
            "device_updated",
        ),
        (
            "POST",
            "/api/devices/pc10/orders",
            json!({"orders": spec("order_placed")["orders"]}),
            "order_added",
        ),
        (
            "PUT",
            "/api/devices/pc10/orders/0",
            json!({"quantity": 5}),
            "order_modified",
        ),
        (
            "DELETE",
            "/api/devices/pc10/orders/0",
            Value::Null,
            "order_removed",
        ),
        (
            "POST",
            "/api/devices/pc10/reset",
            Value::Null,
            "device_cleared",
        ),
        (
            "PUT",
            "/api/categories",
            json!([{"id": "drinks", "name": "مشروبات"}]),
            "categories_updated",
        ),
        (
            "PUT",
            "/api/products",
            json!([{"id": "cola", "name": "كولا", "price": 1000, "categoryId": "drinks"}]),
            "prices_updated",
        ),
    ];
    for (method, path, body, kind) in calls {
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = app
            .call_json(method, path, &token, None, body.as_ref())
            .await;
        assert!(status == 200 || status == 201, "{method} {path}: {answer}");
        assert_eq!(a.next_json().await["type"], kind);
    }
    add_device(&app, "main", "pc11").await;
    a.next_json().await;
    let (status, _) = app
        .call_json(
            "POST",
            "/api/devices/transfer",
            &token,
            None,
            Some(&json!({"fromDeviceId": "pc10", "toDeviceId": "pc11"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(a.next_json().await["type"], "device_transferred");
    let (status, _) = app
        .call_json("DELETE", "/api/devices/pc11", &token, None, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(a.next_json().await["type"], "device_removed");

    let (_, cats) = app
        .call_json("GET", "/api/categories", &token, None, None)
        .await;
    assert_eq!(cats, json!([{"id": "drinks", "name": "مشروبات"}]));
    let (_, prods) = app
        .call_json("GET", "/api/products", &token, None, None)
        .await;
    assert_eq!(prods[0]["price"], 1000);
    other_venue.expect_silence(Duration::from_millis(200)).await;

    // Invalid REST changes are refused and broadcast nothing.
    let bad: Vec<(&str, &str, Value, u16)> = vec![
        ("POST", "/api/devices", json!({}), 400),
        ("POST", "/api/devices", json!({"deviceId": ""}), 400),
        ("PUT", "/api/devices/pc10", json!({}), 400),
        ("PUT", "/api/devices/pc10", json!({"mode": "x"}), 400),
        ("PUT", "/api/devices/ghost", json!({"notes": "x"}), 404),
        (
            "POST",
            "/api/devices/pc10/orders",
            json!({"orders": [{"name": "x", "price": -1, "quantity": 1}]}),
            400,
        ),
        (
            "PUT",
            "/api/devices/pc10/orders/9",
            json!({"quantity": 1}),
            404,
        ),
        (
            "PUT",
            "/api/categories",
            json!([{"id": "a", "name": "x"}, {"id": "a", "name": "y"}]),
            400,
        ),
        (
            "PUT",
            "/api/products",
            json!([{"id": "p", "name": "x", "price": -3}]),
            400,
        ),
        ("PUT", "/api/products", json!({"not": "a list"}), 400),
        (
            "POST",
            "/api/devices/transfer",
            json!({"fromDeviceId": "pc10"}),
            400,
        ),
    ];
    for (method, path, body, status) in bad {
        let (got, err) = app.call_json(method, path, &token, None, Some(&body)).await;
        assert_eq!(got, status, "{method} {path} {body}: {err}");
    }
    a.expect_silence(Duration::from_millis(300)).await;
    // Dashboard tokens may not touch the venue.
    let (status, _) = app
        .call_json(
            "GET",
            "/api/devices",
            &app.token("alice", "agent"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn auth_required_and_off() {
    let app = spawn_app().await;
    // No token at all: the connect message must bring one.
    let mut ws = Ws::connect(&app.ws_url("/ws")).await.unwrap();
    ws.send_json(&json!({"type": "device_reset", "deviceId": "pc1"}))
        .await;
    assert_eq!(
        ws.next_json().await["code"],
        "UNAUTHORIZED",
        "connect comes first"
    );
    ws.send_json(&json!({"type": "connect", "clientId": "c1"}))
        .await;
    let err = ws.next_json().await;
    assert_eq!(err["code"], "UNAUTHORIZED");
    let (ended, _) = ws.until_closed(WAIT).await;
    assert_eq!(ended.code(), Some(1008));
    // A token in the connect message works.
    let mut ws = Ws::connect(&app.ws_url("/ws")).await.unwrap();
    ws.send_json(&json!({"type": "connect", "clientId": "c1", "token": app.cashier_token("main")}))
        .await;
    assert_eq!(ws.next_json().await["type"], "connected");
    // Refused before the upgrade: a bad token, or a dashboard role.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let status = upgrade_status(app.ws_url("/ws?token=junk").into_client_request().unwrap()).await;
    assert_eq!(status, 401);
    let agent = app.token("alice", "agent");
    let status = upgrade_status(
        app.ws_url(&format!("/ws?token={agent}"))
            .into_client_request()
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);

    let open = spawn_app_with(&[("HERALD_CASHIER_AUTH", "off")]).await;
    let mut ws = Ws::connect(&open.ws_url("/ws")).await.unwrap();
    ws.send_json(&json!({"type": "connect", "clientId": "lan-1", "timestamp": TS}))
        .await;
    let connected = ws.next_json().await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["devices"], json!([]));
}

#[tokio::test]
async fn a_terminal_that_answers_no_pings_is_closed_and_one_that_does_stays() {
    let app = spawn_app_with(&[("HERALD_HEARTBEAT_SECS", "1")]).await;
    let (lively, _) = app.terminal("lively", "main", json!({})).await;
    let token = app.cashier_token("main");
    let mut quiet = RawWs::connect(&app.addr, &format!("/ws?token={token}")).await;
    let hello = json!({"type": "connect", "clientId": "quiet"}).to_string();
    quiet
        .send(&RawWs::frame(0x1, true, hello.as_bytes()))
        .await
        .unwrap();
    let mut lively = closed_for_silence_while(quiet, lively).await;
    lively.send_json(&spec("ping")).await;
    assert_eq!(lively.next_json().await["type"], "pong", "it stays open");
}

#[tokio::test]
async fn a_silent_terminal_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(&[("HERALD_IDLE_TIMEOUT_SECS", "2")]).await;
    let (mut quiet, _) = app.terminal("quiet", "main", json!({})).await;
    let (mut chatty, _) = app.terminal("chatty", "main", json!({})).await;
    let started = std::time::Instant::now();
    let keepalive = tokio::spawn(async move {
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            chatty.send_json(&spec("ping")).await;
            assert_eq!(chatty.next_json().await["type"], "pong");
        }
        chatty
    });
    let (ended, _) = quiet.until_closed(Duration::from_secs(10)).await;
    assert_eq!(ended.code(), Some(1000), "{ended:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    let mut chatty = keepalive.await.unwrap();
    chatty.send_json(&spec("ping")).await;
    assert_eq!(
        chatty.next_json().await["type"],
        "pong",
        "the active terminal stays"
    );
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let app = spawn_app().await;
    let (mut ws, _) = app.terminal("big", "main", json!({})).await;
    let big = json!({"type": "ping", "pad": "x".repeat(1024 * 1024)}).to_string();
    use futures_util::SinkExt;
    let _ = ws
        .inner
        .send(tokio_tungstenite::tungstenite::Message::text(big))
        .await;
    let (ended, _) = ws.until_closed(WAIT).await;
    assert_eq!(ended.code(), Some(1009));
}

#[tokio::test]
async fn two_hundred_terminals_all_receive_one_broadcast() {
    let app = spawn_app_with(&[("HERALD_CASHIER_RATE", "1000")]).await;
    add_device(&app, "main", "pc1").await;
    let mut terminals = Vec::new();
    for i in 0..200 {
        terminals.push(app.terminal(&format!("t-{i}"), "main", json!({})).await.0);
    }
    let stats: Value = app
        .get("/api/websocket/stats", &app.token("root", "admin"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["cashierConnections"], 200);
    terminals[0].send_json(&spec("device_update")).await;
    let mut received = 0;
    for (i, ws) in terminals.iter_mut().enumerate().skip(1) {
        let got = ws.next_json().await;
        assert_eq!(got["type"], "device_updated", "terminal {i}");
        received += 1;
    }
    assert_eq!(received, 199);
    terminals[0]
        .expect_silence(Duration::from_millis(200))
        .await;
}

/// Sends `n` one-item orders `o0`, `o1`, ... for pc1, back to back.
async fn send_orders(ws: &mut Ws, n: usize) {
    for i in 0..n {
        ws.send_json(&json!({
            "type": "order_placed",
            "deviceId": "pc1",
            "orders": [{"name": format!("o{i}"), "price": 1.0, "quantity": 1.0}],
        }))
        .await;
    }
}

/// A terminal that sends changes and closes at once (a till switched off
/// mid-shift) still has every change stored and broadcast: the protocol has
/// no acknowledgement, so a change the server read is a change it keeps.
/// Before, a change still queued for the venue's writer when its socket
/// closed was dropped without a word (actix skips a request whose sender
/// stopped waiting).
#[tokio::test]
async fn changes_sent_just_before_a_close_are_all_stored() {
    let app = spawn_app_with(&[("HERALD_CASHIER_RATE", "10000")]).await;
    add_device(&app, "main", "pc1").await;
    let (mut other, _) = app.terminal("t-other", "main", json!({})).await;
    let (mut till, _) = app.terminal("t-till", "main", json!({})).await;
    const SENT: usize = 200;
    send_orders(&mut till, SENT).await;
    till.close().await;
    // Every one reaches the other terminal, in order...
    for i in 0..SENT {
        let msg = other
            .next_json_within(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("broadcast {i} of {SENT} never came"));
        assert_eq!(msg["type"], "order_added", "{msg}");
        assert_eq!(msg["orders"][0]["name"], format!("o{i}"), "{msg}");
    }
    // ...and is stored.
    let stored = device(&app, "pc1").await;
    assert_eq!(
        stored["orders"].as_array().map(Vec::len),
        Some(SENT),
        "{stored}"
    );
}

/// A terminal that connects again (its old socket lost, its last changes
/// still being stored) gets a state that holds every change it sent before,
/// in order: its next change then lands after them on its screen as on the
/// server. Before, the state was read at once, without the changes still
/// queued, and those arrived later as broadcasts, after the terminal's
/// newer change on its screen but before it on the server.
#[tokio::test]
async fn a_terminal_that_connects_again_gets_a_state_with_everything_it_sent() {
    let app = spawn_app_with(&[("HERALD_CASHIER_RATE", "10000")]).await;
    add_device(&app, "main", "pc1").await;
    let (mut old, _) = app.terminal("t-till", "main", json!({})).await;
    const SENT: usize = 100;
    send_orders(&mut old, SENT).await;
    // Its pong means the server read every change before it.
    old.send_json(&json!({"type": "ping"})).await;
    old.until_type("pong").await;
    let (_new, connected) = app.terminal("t-till", "main", json!({})).await;
    let pc1 = connected["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["deviceId"] == "pc1"))
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = pc1["orders"]
        .as_array()
        .map(|o| o.iter().filter_map(|o| o["name"].as_str()).collect())
        .unwrap_or_default();
    let want: Vec<String> = (0..SENT).map(|i| format!("o{i}")).collect();
    assert_eq!(
        names, want,
        "the state holds every change sent before, in order"
    );
}

/// A station started a while ago shows its running time to a terminal that
/// connects (or a REST read) later, counting on from it; broadcasts carry
/// what was sent; a stop keeps the seconds it ran.
#[tokio::test]
async fn a_running_timer_reads_right_for_a_terminal_that_connects_later() {
    let app = spawn_app().await;
    add_device(&app, "main", "pc1").await;
    let (mut a, _) = app.terminal("t-a", "main", json!({})).await;
    let (mut b, _) = app.terminal("t-b", "main", json!({})).await;
    a.send_json(&json!({"type": "device_update", "deviceId": "pc1", "data": {"isRunning": true, "elapsedSeconds": 60}}))
        .await;
    let got = b.next_json().await;
    assert_eq!(
        got["data"]["elapsedSeconds"], 60,
        "the broadcast is as sent"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;

    let (_c, connected) = app.terminal("t-c", "main", json!({})).await;
    let pc1 = &connected["devices"][0];
    let seen = pc1["elapsedSeconds"].as_i64().unwrap();
    assert!((62..=64).contains(&seen), "connected: {connected}");
    for path in ["/api/devices/pc1", "/api/devices"] {
        let (_, body) = app
            .call_json("GET", path, &app.cashier_token("main"), None, None)
            .await;
        let one = if body.is_array() { &body[0] } else { &body };
        let elapsed = one["elapsedSeconds"].as_i64().unwrap();
        assert!((62..=64).contains(&elapsed), "{path}: {body}");
    }
    // Stopped without a time: it keeps what it ran, and stops counting.
    a.send_json(&json!({"type": "device_update", "deviceId": "pc1", "data": {"isRunning": false}}))
        .await;
    assert_eq!(b.next_json().await["data"], json!({"isRunning": false}));
    let stopped = device(&app, "pc1").await["elapsedSeconds"]
        .as_i64()
        .unwrap();
    assert!((62..=65).contains(&stopped), "{stopped}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(device(&app, "pc1").await["elapsedSeconds"], stopped);
}

/// The only size rule of the cashier protocol is the message limit: a
/// 200 KiB note (and a long order name) is stored and broadcast whole.
#[tokio::test]
async fn a_note_may_use_the_whole_message() {
    let app = spawn_app().await;
    add_device(&app, "main", "pc1").await;
    let (mut a, _) = app.terminal("t-a", "main", json!({})).await;
    let (mut b, _) = app.terminal("t-b", "main", json!({})).await;
    let note = "ملاحظة ".repeat(200 * 1024 / 14);
    a.send_json(&json!({"type": "device_update", "deviceId": "pc1", "data": {"notes": note}}))
        .await;
    assert_eq!(b.next_json().await["data"]["notes"], note.as_str());
    let mut order = spec("order_placed");
    order["orders"][0]["notes"] = json!(note);
    order["orders"][0]["name"] = json!("x".repeat(5000));
    a.send_json(&order).await;
    assert_eq!(b.next_json().await["orders"][0]["notes"], note.as_str());
    let pc1 = device(&app, "pc1").await;
    assert_eq!(pc1["notes"], note.as_str());
    assert_eq!(pc1["orders"][0]["notes"], note.as_str());
    assert_eq!(pc1["orders"][0]["name"].as_str().unwrap().len(), 5000);
}

/// A terminal that connects again while its older socket is still open
/// (a lost Wi-Fi it has given up on) gets a state nothing of the older
/// socket lands after: the older one stops reading and closes (1000)
/// before the state is taken. Before, a change the server read from the
/// older socket after the newer one's `connected` was stored after that
/// state, racing the terminal's own newer changes: in the randomized
/// schedule a station's orders ended in another order on the terminal's
/// screen than on the server.
#[tokio::test]
async fn a_change_on_an_older_socket_never_lands_after_the_newer_ones_state() {
    let app = spawn_app().await;
    add_device(&app, "main", "pc1").await;
    let token = token_with(SECRET, "t-till", "cashier", 3600, Some("main"));
    let mut older = RawWs::connect(&app.addr, &format!("/ws?token={token}")).await;
    let connect = json!({"type": "connect", "clientId": "t-till"}).to_string();
    older
        .send(&RawWs::frame(0x1, true, connect.as_bytes()))
        .await
        .unwrap();
    let (_, hello) = older.next_frame(WAIT).await.expect("connected");
    assert!(String::from_utf8_lossy(&hello).contains("\"connected\""));
    // Half of a change is on its way when the terminal connects again...
    let change = json!({"type": "order_placed", "deviceId": "pc1",
                        "orders": [{"name": "late tea", "price": 2.5, "quantity": 1}]})
    .to_string();
    let frame = RawWs::frame(0x1, true, change.as_bytes());
    let half = frame.len() / 2;
    older.send(&frame[..half]).await.unwrap();
    let (_newer, connected) = app.terminal("t-till", "main", json!({})).await;
    // ...and the rest arrives after its state was sent.
    let _ = older.send(&frame[half..]).await;
    let code = older.close_code(WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        device(&app, "pc1").await["orders"],
        connected["devices"][0]["orders"],
        "the server holds what the newer connection's state said"
    );
    assert_eq!(code, Some(1000), "the older socket is closed as replaced");
}
