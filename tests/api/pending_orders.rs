//! Pending orders over REST: one event per change, one per batch, and a bad
//! batch item rejecting the whole batch.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const C: &str = "aaaaaaaa-0000-4000-8000-000000000003";

#[tokio::test]
async fn create_update_delete_each_send_one_event_with_the_whole_order() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let (mut tab1, _) = app.realtime_connected("alice", "").await;
    let (mut tab2, _) = app.realtime_connected("alice", "").await;

    let (status, order) = app
        .call_json(
            "POST",
            "/api/pending-orders",
            &alice,
            Some("tab-1"),
            Some(&json!({"id": A, "payload": {"total": 10}})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "pending");
    assert_eq!(order["userId"], "alice");
    for ws in [&mut tab1, &mut tab2] {
        let ev = ws.next_json().await;
        assert_eq!(ev["type"], "PENDING_CREATED");
        assert_eq!(ev["payload"]["order"], order);
        assert_eq!(ev["originDeviceId"], "tab-1");
    }
    // Idempotent create.
    let (status, same) = app
        .call_json(
            "POST",
            "/api/pending-orders",
            &alice,
            None,
            Some(&json!({"id": A, "payload": {"total": 99}})),
        )
        .await;
    assert_eq!((status, &same), (200, &order));

    let (status, updated) = app
        .call_json(
            "PUT",
            &format!("/api/pending-orders/{A}"),
            &alice,
            Some("tab-2"),
            Some(&json!({"payload": {"total": 12}, "status": "failed"})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["payload"], json!({"total": 12}));
    assert_eq!(updated["status"], "failed");
    for ws in [&mut tab1, &mut tab2] {
        let ev = ws.next_json().await;
        assert_eq!(ev["type"], "PENDING_UPDATED");
        assert_eq!(ev["payload"]["order"], updated);
    }

    let (status, deleted) = app
        .call_json(
            "DELETE",
            &format!("/api/pending-orders/{A}"),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    for ws in [&mut tab1, &mut tab2] {
        let ev = ws.next_json().await;
        assert_eq!(ev["type"], "PENDING_DELETED");
        assert_eq!(ev["payload"]["order"], deleted);
    }
    let (status, _) = app
        .call_json(
            "GET",
            &format!("/api/pending-orders/{A}"),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call_json(
            "DELETE",
            &format!("/api/pending-orders/{A}"),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_batch_is_one_transaction_and_one_event() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    app.call_json(
        "POST",
        "/api/pending-orders",
        &alice,
        None,
        Some(&json!({"id": A, "payload": {"n": 1}})),
    )
    .await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let batch = json!([
        {"id": A, "payload": {"n": "one, edited"}},
        {"id": B, "payload": {"n": 2}},
        {"id": C, "payload": {"n": 3}, "status": "failed"},
        {"payload": {"n": "server id"}},
    ]);
    let (status, result) = app
        .call_json(
            "POST",
            "/api/pending-orders",
            &alice,
            Some("importer"),
            Some(&batch),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["updated"].as_array().unwrap().len(), 1);
    assert_eq!(result["created"].as_array().unwrap().len(), 3);
    assert_eq!(result["updated"][0]["payload"]["n"], "one, edited");
    let ev = ws.next_json().await;
    assert_eq!(ev["type"], "PENDING_BATCH_UPSERTED");
    assert_eq!(ev["payload"], result);
    assert_eq!(ev["seq"], 2);
    ws.expect_silence(Duration::from_millis(300)).await;
    let (_, list) = app
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn one_bad_item_rejects_the_whole_batch() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    app.call_json(
        "POST",
        "/api/pending-orders",
        &alice,
        None,
        Some(&json!({"id": A, "payload": {"n": 1}})),
    )
    .await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let good = |id: &str| json!({"id": id, "payload": {"ok": true}});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([good(B), good(C), {"id": A, "status": "lost"}]),
            "items[2].status",
        ),
        (json!([good(B), {"payload": null}]), "items[1].payload"),
        (
            json!([good(B), {"id": "nope", "payload": {}}]),
            "items[1].id",
        ),
        (json!([good(B), {"status": "pending"}]), "items[1].payload"),
        (json!([good(B), good(B)]), "items[1].id"),
        (json!([good(B), 42]), "items[1]"),
        (
            json!([good(B), {"id": C, "payload": {}, "orderNumber": ""}]),
            "items[1].orderNumber",
        ),
        (json!([]), "1 to 1000"),
    ];
    for (batch, named) in cases {
        let (status, err) = app
            .call_json("POST", "/api/pending-orders", &alice, None, Some(&batch))
            .await;
        assert_eq!(status, 400, "{batch}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message} should name {named}");
    }
    ws.expect_silence(Duration::from_millis(300)).await;
    let (_, list) = app
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "nothing of any bad batch was written"
    );
    assert_eq!(list[0]["payload"], json!({"n": 1}));
}

#[tokio::test]
async fn invalid_order_requests_and_other_users_change_nothing() {
    let app = spawn_app().await;
    let (alice, bob) = (app.token("alice", "agent"), app.token("bob", "agent"));
    app.call_json(
        "POST",
        "/api/pending-orders",
        &alice,
        None,
        Some(&json!({"id": A, "payload": {"n": 1}})),
    )
    .await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let path = format!("/api/pending-orders/{A}");
    let cases: Vec<(&str, &str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/api/pending-orders",
            "alice",
            json!({"id": B}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            "/api/pending-orders",
            "alice",
            json!({"payload": {}, "status": "done"}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            "/api/pending-orders",
            "alice",
            json!("text"),
            400,
            "VALIDATION_FAILED",
        ),
        ("PUT", &path, "alice", json!({}), 400, "VALIDATION_FAILED"),
        (
            "PUT",
            &path,
            "alice",
            json!({"status": 3}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "PUT",
            &path,
            "alice",
            json!({"id": B, "payload": {}}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "PUT",
            "/api/pending-orders/bad-id",
            "alice",
            json!({"payload": {}}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "PUT",
            &path,
            "bob",
            json!({"payload": {"stolen": true}}),
            404,
            "NOT_FOUND",
        ),
        ("DELETE", &path, "bob", Value::Null, 404, "NOT_FOUND"),
        ("GET", &path, "bob", Value::Null, 404, "NOT_FOUND"),
        (
            "POST",
            "/api/pending-orders",
            "bob",
            json!({"id": A, "payload": {}}),
            409,
            "ID_TAKEN",
        ),
        (
            "POST",
            "/api/pending-orders",
            "bob",
            json!([{"id": A, "payload": {}}]),
            409,
            "ID_TAKEN",
        ),
        // C would be created first; the conflict on A rolls it back.
        (
            "POST",
            "/api/pending-orders",
            "bob",
            json!([{"id": C, "payload": {}}, {"id": A, "payload": {}}]),
            409,
            "ID_TAKEN",
        ),
    ];
    for (method, p, who, body, status, code) in cases {
        let token = if who == "alice" { &alice } else { &bob };
        let body = (!body.is_null()).then_some(body);
        let (got, err) = app.call_json(method, p, token, None, body.as_ref()).await;
        assert_eq!(got, status, "{method} {p} as {who}: {err}");
        assert_eq!(err["error"]["code"], code, "{method} {p} as {who}: {err}");
    }
    ws.expect_silence(Duration::from_millis(300)).await;
    let (_, list) = app
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "only alice's one order: {list:?}");
    assert_eq!(list[0]["id"], A);
    assert_eq!(list[0]["payload"], json!({"n": 1}));
    let (_, list) = app
        .call_json("GET", "/api/pending-orders", &bob, None, None)
        .await;
    assert_eq!(list, json!([]));
}
