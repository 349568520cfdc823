//! Drafts over REST, as every device of the user sees them on /ws/realtime.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const ID: &str = "6f1c7a3e-2b4d-4c5e-9f00-112233445566";

async fn two_devices(app: &TestApp, user: &str) -> (Ws, Ws) {
    let (a, _) = app.realtime_connected(user, "deviceId=tab-1").await;
    let (b, _) = app.realtime_connected(user, "deviceId=tab-2").await;
    (a, b)
}

#[tokio::test]
async fn create_is_seen_by_every_device_and_is_idempotent() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let (mut tab1, mut tab2) = two_devices(&app, "alice").await;
    let body = json!({"id": ID, "payload": {"customer": "ACME", "lines": [1, 2]}});
    let (status, draft) = app
        .call_json("POST", "/api/drafts", &alice, Some("tab-1"), Some(&body))
        .await;
    assert_eq!(status, 201, "{draft}");
    assert_eq!(draft["id"], ID);
    assert_eq!(draft["userId"], "alice");
    assert_eq!(draft["deviceId"], "tab-1");
    assert_eq!(draft["deleted"], false);
    assert_eq!(
        draft["payload"],
        json!({"customer": "ACME", "lines": [1, 2]})
    );
    for ws in [&mut tab1, &mut tab2] {
        let ev = ws.next_event().await;
        assert_eq!(ev["type"], "DRAFT_CREATED");
        assert_eq!(ev["seq"], 1);
        assert_eq!(ev["originDeviceId"], "tab-1");
        assert_eq!(
            ev["payload"]["draft"], draft,
            "the event carries the whole draft"
        );
    }
    // Same create again (a retry): the stored draft, 200, no event.
    let again = json!({"id": ID, "payload": {"customer": "changed"}});
    let (status, same) = app
        .call_json("POST", "/api/drafts", &alice, Some("tab-1"), Some(&again))
        .await;
    assert_eq!(status, 200);
    assert_eq!(same, draft);
    tab2.expect_silence(Duration::from_millis(300)).await;

    // Without an id the server picks one.
    let (status, other) = app
        .call_json(
            "POST",
            "/api/drafts",
            &alice,
            None,
            Some(&json!({"payload": {}})),
        )
        .await;
    assert_eq!(status, 201);
    assert!(uuid_like(other["id"].as_str().unwrap()));
    let (_, list) = app
        .call_json("GET", "/api/drafts", &alice, None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn update_is_last_write_wins_with_strictly_increasing_stamps_and_409_on_a_stale_base() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let (status, created) = app
        .call_json(
            "POST",
            "/api/drafts",
            &alice,
            None,
            Some(&json!({"id": ID, "payload": {"v": 0}})),
        )
        .await;
    assert_eq!(status, 201);
    let (mut tab1, mut tab2) = two_devices(&app, "alice").await;
    let mut last = created["serverUpdatedAt"].as_str().unwrap().to_owned();
    // Back-to-back writes, many within one millisecond: stamps still increase.
    for v in 1..=10 {
        let (status, d) = app
            .call_json(
                "PUT",
                &format!("/api/drafts/{ID}"),
                &alice,
                Some("tab-2"),
                Some(&json!({"payload": {"v": v}})),
            )
            .await;
        assert_eq!(status, 200, "{d}");
        let stamp = d["serverUpdatedAt"].as_str().unwrap().to_owned();
        assert!(stamp > last, "{stamp} after {last}");
        last = stamp;
        assert_eq!(d["deviceId"], "tab-2");
    }
    for ws in [&mut tab1, &mut tab2] {
        for v in 1..=10 {
            let ev = ws.next_event().await;
            assert_eq!(ev["type"], "DRAFT_UPDATED");
            assert_eq!(ev["payload"]["draft"]["payload"]["v"], v);
            assert_eq!(ev["originDeviceId"], "tab-2");
        }
    }
    // A write based on an old version is refused with the current draft.
    let stale =
        json!({"payload": {"v": "stale"}, "baseServerUpdatedAt": created["serverUpdatedAt"]});
    let (status, err) = app
        .call_json(
            "PUT",
            &format!("/api/drafts/{ID}"),
            &alice,
            None,
            Some(&stale),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "STALE_DRAFT");
    assert_eq!(err["current"]["payload"]["v"], 10);
    assert_eq!(err["current"]["serverUpdatedAt"], last.as_str());
    tab1.expect_silence(Duration::from_millis(300)).await;
    // Based on the current version it applies.
    let fresh = json!({"payload": {"v": 11}, "baseServerUpdatedAt": last});
    let (status, d) = app
        .call_json(
            "PUT",
            &format!("/api/drafts/{ID}"),
            &alice,
            None,
            Some(&fresh),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        tab1.next_event().await["payload"]["draft"]["payload"]["v"],
        11
    );
}

#[tokio::test]
async fn concurrent_writers_leave_every_device_with_the_same_final_version() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    app.call_json(
        "POST",
        "/api/drafts",
        &alice,
        None,
        Some(&json!({"id": ID, "payload": {"w": "start"}})),
    )
    .await;
    let (mut tab1, mut tab2) = two_devices(&app, "alice").await;
    let mut tasks = Vec::new();
    for device in ["tab-1", "tab-2"] {
        for i in 0..15 {
            let (http, url, token) = (
                app.http.clone(),
                app.url(&format!("/api/drafts/{ID}")),
                alice.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let res = http
                    .put(url)
                    .bearer_auth(token)
                    .header("X-Device-Id", device)
                    .json(&json!({"payload": {"w": format!("{device}-{i}")}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut finals = Vec::new();
    for ws in [&mut tab1, &mut tab2] {
        let mut last_stamp = String::new();
        let mut last = Value::Null;
        for _ in 0..30 {
            let ev = ws.next_event().await;
            let stamp = ev["payload"]["draft"]["serverUpdatedAt"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(stamp > last_stamp, "events arrive in write order");
            last_stamp = stamp;
            last = ev["payload"]["draft"].clone();
        }
        finals.push(last);
    }
    let (_, stored) = app
        .call_json("GET", &format!("/api/drafts/{ID}"), &alice, None, None)
        .await;
    assert_eq!(finals[0], stored);
    assert_eq!(finals[1], stored);
}

#[tokio::test]
async fn delete_is_a_tombstone_that_always_wins() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    app.call_json(
        "POST",
        "/api/drafts",
        &alice,
        None,
        Some(&json!({"id": ID, "payload": {"a": 1}})),
    )
    .await;
    let (mut tab1, _tab2) = two_devices(&app, "alice").await;
    let (status, tomb) = app
        .call_json(
            "DELETE",
            &format!("/api/drafts/{ID}"),
            &alice,
            Some("tab-2"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(tomb["deleted"], true);
    let ev = tab1.next_event().await;
    assert_eq!(ev["type"], "DRAFT_DELETED");
    assert_eq!(ev["payload"]["draft"], tomb);

    let (_, list) = app
        .call_json("GET", "/api/drafts", &alice, None, None)
        .await;
    assert_eq!(list, json!([]));
    let (_, list) = app
        .call_json("GET", "/api/drafts?includeDeleted=true", &alice, None, None)
        .await;
    assert_eq!(list, json!([tomb]));

    let put = json!({"payload": {"a": 2}});
    let (status, err) = app
        .call_json(
            "PUT",
            &format!("/api/drafts/{ID}"),
            &alice,
            None,
            Some(&put),
        )
        .await;
    assert_eq!(status, 410);
    assert_eq!(err["error"]["code"], "GONE");
    let (status, _) = app
        .call_json(
            "POST",
            &format!("/api/drafts/{ID}/convert"),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(status, 410);
    // Deleting again changes nothing and sends nothing.
    let (status, again) = app
        .call_json("DELETE", &format!("/api/drafts/{ID}"), &alice, None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again, tomb);
    tab1.expect_silence(Duration::from_millis(300)).await;
    let (_, orders) = app
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    assert_eq!(orders, json!([]));
}

#[tokio::test]
async fn convert_sends_draft_converted_then_pending_created() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let payload = json!({"customer": "شركة النور", "lines": [{"sku": "A1", "qty": 3}]});
    app.call_json(
        "POST",
        "/api/drafts",
        &alice,
        None,
        Some(&json!({"id": ID, "payload": payload})),
    )
    .await;
    let (mut tab1, mut tab2) = two_devices(&app, "alice").await;
    let (status, order) = app
        .call_json(
            "POST",
            &format!("/api/drafts/{ID}/convert"),
            &alice,
            Some("tab-1"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["payload"], payload);
    assert_eq!(order["status"], "pending");
    assert_eq!(order["orderNumber"], Value::Null);
    for ws in [&mut tab1, &mut tab2] {
        let first = ws.next_event().await;
        let second = ws.next_event().await;
        assert_eq!(first["type"], "DRAFT_CONVERTED");
        assert_eq!(
            first["payload"],
            json!({"draftId": ID, "pendingOrderId": order["id"]})
        );
        assert_eq!(second["type"], "PENDING_CREATED");
        assert_eq!(second["payload"]["order"], order);
        assert_eq!(second["seq"].as_u64(), first["seq"].as_u64().map(|s| s + 1));
    }
    let (_, draft) = app
        .call_json("GET", &format!("/api/drafts/{ID}"), &alice, None, None)
        .await;
    assert_eq!(draft["deleted"], true);
    let (_, orders) = app
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    assert_eq!(orders, json!([order]));
    // The client may choose the order's id; a taken one is refused.
    let other = "11111111-2222-4333-8444-555555555555";
    app.call_json(
        "POST",
        "/api/drafts",
        &alice,
        None,
        Some(&json!({"id": other, "payload": {}})),
    )
    .await;
    let (status, taken) = app
        .call_json(
            "POST",
            &format!("/api/drafts/{other}/convert"),
            &alice,
            None,
            Some(&json!({"pendingOrderId": order["id"]})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(taken["error"]["code"], "ID_TAKEN", "{taken}");
    let (status, o2) = app
        .call_json(
            "POST",
            &format!("/api/drafts/{other}/convert"),
            &alice,
            None,
            Some(&json!({"pendingOrderId": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(o2["id"], "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
}

#[tokio::test]
async fn agents_only_reach_their_own_drafts() {
    let app = spawn_app().await;
    let (alice, bob) = (app.token("alice", "agent"), app.token("bob", "agent"));
    app.call_json(
        "POST",
        "/api/drafts",
        &alice,
        None,
        Some(&json!({"id": ID, "payload": {"secret": 1}})),
    )
    .await;
    let (mut bob_ws, _) = app.realtime_connected("bob", "").await;
    let (mut alice_ws, _) = app.realtime_connected("alice", "").await;
    let path = format!("/api/drafts/{ID}");
    for (method, p, body) in [
        ("GET", path.clone(), None),
        ("PUT", path.clone(), Some(json!({"payload": {"x": 1}}))),
        ("DELETE", path.clone(), None),
        ("POST", format!("{path}/convert"), None),
    ] {
        let (status, body) = app.call_json(method, &p, &bob, None, body.as_ref()).await;
        assert_eq!(status, 404, "{method} {p}: {body}");
        assert!(!body.to_string().contains("secret"));
    }
    let (_, list) = app.call_json("GET", "/api/drafts", &bob, None, None).await;
    assert_eq!(list, json!([]));
    // Reusing alice's id for bob's own draft is a conflict, not a leak.
    let (status, body) = app
        .call_json(
            "POST",
            "/api/drafts",
            &bob,
            None,
            Some(&json!({"id": ID, "payload": {}})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "ID_TAKEN", "{body}");
    assert!(!body.to_string().contains("secret"));
    let (status, _) = app
        .call_json("GET", "/api/drafts?userId=alice", &bob, None, None)
        .await;
    assert_eq!(status, 403);
    for role in ["cashier"] {
        let (status, _) = app
            .call_json("GET", "/api/drafts", &app.token("t", role), None, None)
            .await;
        assert_eq!(status, 403);
    }
    bob_ws.expect_silence(Duration::from_millis(300)).await;
    alice_ws.expect_silence(Duration::from_millis(10)).await;

    // Admins and services act for anyone with ?userId=.
    let admin = app.token("root", "admin");
    let (status, list) = app
        .call_json("GET", "/api/drafts?userId=alice", &admin, None, None)
        .await;
    assert_eq!((status, list.as_array().map(|l| l.len())), (200, Some(1)));
    let (status, d) = app
        .call_json(
            "PUT",
            &format!("{path}?userId=alice"),
            &app.token("backend", "service"),
            Some("erp"),
            Some(&json!({"payload": {"by": "service"}})),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let ev = alice_ws.next_event().await;
    assert_eq!(ev["type"], "DRAFT_UPDATED");
    assert_eq!(ev["originDeviceId"], "erp");
}

#[tokio::test]
async fn arabic_and_emoji_payloads_round_trip_byte_exactly() {
    let mut app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    // Key order, spacing inside numbers and non-Latin text as the client wrote them.
    let payload =
        r#"{"zeta":"كولا بارد جداً","alpha":"🍕🇮🇹 ok","n":1.50,"nested":{"b":[],"a":"مرحبا"}}"#;
    let body = format!(r#"{{"id":"{ID}","payload":{payload}}}"#);
    let res = app
        .http
        .post(app.url("/api/drafts"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let text = res.text().await.unwrap();
    assert!(
        text.contains(&format!(r#""payload":{payload}"#)),
        "REST answer: {text}"
    );
    let frame = ws.next_text().await;
    assert!(frame.contains(payload), "event: {frame}");
    app.restart().await;
    let text = app
        .get(&format!("/api/drafts/{ID}"), &alice)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(payload), "after restart: {text}");
    let (mut ws, _) = app.realtime_connected("alice", "since=0").await;
    assert!(
        ws.next_text().await.contains(payload),
        "replayed from the database"
    );
}

#[tokio::test]
async fn invalid_draft_requests_change_nothing() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    app.call_json(
        "POST",
        "/api/drafts",
        &alice,
        None,
        Some(&json!({"id": ID, "payload": {"v": 1}})),
    )
    .await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let path = format!("/api/drafts/{ID}");
    let big = "x".repeat(1024 * 1024);
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "POST",
            "/api/drafts".into(),
            json!({"id": "not-a-uuid", "payload": {}}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            "/api/drafts".into(),
            json!({"id": ID}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            "/api/drafts".into(),
            json!({"payload": null}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            "/api/drafts".into(),
            json!({"payload": {"big": big}}),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "POST",
            "/api/drafts".into(),
            json!({"id": 12, "payload": {}}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            "/api/drafts".into(),
            json!({"payload": {}, "deviceId": ""}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            "/api/drafts".into(),
            json!(["array"]),
            400,
            "VALIDATION_FAILED",
        ),
        ("PUT", path.clone(), json!({}), 400, "VALIDATION_FAILED"),
        (
            "PUT",
            path.clone(),
            json!({"payload": {"v": 2}, "baseServerUpdatedAt": "yesterday"}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "PUT",
            path.clone(),
            json!({"payload": {"v": 2}, "baseServerUpdatedAt": true}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "PUT",
            "/api/drafts/xyz".into(),
            json!({"payload": {}}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "PUT",
            "/api/drafts/00000000-0000-4000-8000-000000000000".into(),
            json!({"payload": {}}),
            404,
            "NOT_FOUND",
        ),
        (
            "DELETE",
            "/api/drafts/xyz".into(),
            Value::Null,
            400,
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            format!("{path}/convert"),
            json!({"pendingOrderId": "nope"}),
            400,
            "VALIDATION_FAILED",
        ),
    ];
    for (method, p, body, status, code) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got, err) = app.call_json(method, &p, &alice, None, body.as_ref()).await;
        assert_eq!(got, status, "{method} {p}: {err}");
        assert_eq!(err["error"]["code"], code, "{method} {p}: {err}");
    }
    for raw in ["{", "", "null"] {
        let res = app
            .http
            .post(app.url("/api/drafts"))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{raw:?}");
    }
    let res = app
        .http
        .post(app.url("/api/drafts"))
        .bearer_auth(&alice)
        .body(r#"{"payload":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = app
        .http
        .post(app.url("/api/drafts"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(format!(r#"{{"payload":"{}"}}"#, "y".repeat(1024 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    ws.expect_silence(Duration::from_millis(300)).await;
    let (_, list) = app
        .call_json("GET", "/api/drafts?includeDeleted=true", &alice, None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["payload"], json!({"v": 1}));
}
