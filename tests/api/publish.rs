//! `POST /api/publish`: targets, answers, and every invalid form.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn publish_to_several_users_and_to_all() {
    let app = spawn_app().await;
    let svc = app.token("backend", "service");
    let (mut alice, _) = app.realtime_connected("alice", "").await;
    let (mut bob, _) = app.realtime_connected("bob", "").await;
    app.publish("alice", "A", json!({})).await;
    assert_eq!(alice.next_json().await["seq"], 1);

    let res = app
        .post("/api/publish", &svc, &json!({"userIds": ["alice", "bob", "alice"], "type": "FRESIS_HISTORY_CREATED", "payload": {"x": 1}}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"seqs": {"alice": 2, "bob": 1}}));
    assert_eq!(alice.next_json().await["type"], "FRESIS_HISTORY_CREATED");
    assert_eq!(bob.next_json().await["seq"], 1);

    // `all`: everyone with a stream (carol, offline) and everyone connected (dave).
    app.publish("carol", "A", json!({})).await;
    let (mut dave, _) = app.realtime_connected("dave", "").await;
    let res = app
        .post(
            "/api/publish",
            &svc,
            &json!({"all": true, "type": "SYNC_COMPLETED", "payload": null}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"seqs": {"alice": 3, "bob": 2, "carol": 2, "dave": 1}})
    );
    assert_eq!(dave.next_json().await["type"], "SYNC_COMPLETED");
    assert_eq!(alice.next_json().await["payload"], Value::Null);
    assert_eq!(bob.next_json().await["seq"], 2);

    // Transient to all: live only, null seqs.
    let res = app
        .post(
            "/api/publish",
            &svc,
            &json!({"all": true, "type": "SYNC_PROGRESS", "payload": {"progress": 5}}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"seqs": {"alice": null, "bob": null, "dave": null}})
    );
    let p = bob.next_json().await;
    assert_eq!(
        (p["type"].as_str(), &p["seq"]),
        (Some("SYNC_PROGRESS"), &Value::Null)
    );
}

#[tokio::test]
async fn invalid_publishes_are_refused_and_send_nothing() {
    let app = spawn_app().await;
    let svc = app.token("backend", "service");
    let (mut alice, _) = app.realtime_connected("alice", "").await;
    let cases = [
        json!([1, 2]),
        json!({"userId": "alice"}),
        json!({"userId": "alice", "type": ""}),
        json!({"userId": "alice", "type": "lower_case"}),
        json!({"userId": "alice", "type": 7}),
        json!({"userId": "alice", "type": "CONNECTED"}),
        json!({"userId": "alice", "type": "REPLAY_COMPLETE"}),
        json!({"type": "NO_TARGET"}),
        json!({"userId": "alice", "all": true, "type": "TWO_TARGETS"}),
        json!({"userId": "", "type": "EMPTY_USER"}),
        json!({"userId": 5, "type": "NUMERIC_USER"}),
        json!({"userIds": [], "type": "NO_USERS"}),
        json!({"userIds": "alice", "type": "NOT_A_LIST"}),
        json!({"userIds": ["alice", null], "type": "NULL_USER"}),
        json!({"all": false, "type": "ALL_FALSE"}),
        json!({"userId": "alice", "type": "EXTRA", "payload": {}, "surprise": 1}),
    ];
    for body in &cases {
        let res = app.post("/api/publish", &svc, body).await;
        assert_eq!(res.status(), 400, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "VALIDATION_FAILED", "{body} -> {err}");
        assert!(err["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Not JSON at all, and not declared as JSON.
    let res = app
        .http
        .post(app.url("/api/publish"))
        .bearer_auth(&svc)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "INVALID_JSON");
    let res = app
        .http
        .post(app.url("/api/publish"))
        .bearer_auth(&svc)
        .body(r#"{"userId":"alice","type":"A"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);

    // Nothing was sent, nothing was stored.
    alice
        .expect_silence(std::time::Duration::from_millis(300))
        .await;
    assert_eq!(app.publish("alice", "FIRST_REAL", json!({})).await, Some(1));
}

/// The types herald emits carry herald's own objects: a publish of one
/// with another payload (the issue's `PENDING_DELETED {"orderId":"x"}`)
/// would break every dashboard that reads it, live and on every replay. So
/// they are refused with `RESERVED_TYPE`, naming the REST call to use.
#[tokio::test]
async fn the_types_herald_emits_cannot_be_published() {
    let app = spawn_app().await;
    let svc = app.token("backend", "service");
    let (mut alice, _) = app.realtime_connected("alice", "").await;
    let cases = [
        ("PENDING_DELETED", "/api/pending-orders"),
        ("PENDING_BATCH_UPSERTED", "/api/pending-orders"),
        ("DRAFT_CREATED", "/api/drafts"),
        ("DRAFT_CONVERTED", "/api/drafts"),
        ("JOB_STARTED", "/api/jobs/{id}/progress"),
        ("JOB_PROGRESS", "/api/jobs/{id}/progress"),
        ("JOB_COMPLETED", "/api/jobs/{id}/complete"),
        ("JOB_FAILED", "/api/jobs/{id}/fail"),
        ("ORDER_NUMBERS_RESOLVED", "POST /api/jobs"),
    ];
    for (kind, instead) in cases {
        for target in [json!({"userId": "alice"}), json!({"all": true})] {
            let mut body = json!({"type": kind, "payload": {"orderId": "x"}});
            body.as_object_mut()
                .unwrap()
                .extend(target.as_object().unwrap().clone());
            let res = app.post("/api/publish", &svc, &body).await;
            assert_eq!(res.status(), 400, "{body}");
            let err: Value = res.json().await.unwrap();
            assert_eq!(err["error"]["code"], "RESERVED_TYPE", "{body} -> {err}");
            let message = err["error"]["message"].as_str().unwrap();
            assert!(message.contains(instead), "{kind}: {message}");
        }
    }
    alice
        .expect_silence(std::time::Duration::from_millis(300))
        .await;
    // Types of the back end's own are published as before, progress included.
    assert_eq!(
        app.publish("alice", "ORDER_DELETE_COMPLETE", json!({}))
            .await,
        Some(1)
    );
    assert_eq!(app.publish("alice", "SYNC_PROGRESS", json!({})).await, None);
}

#[tokio::test]
async fn bodies_over_one_mebibyte_get_413_and_change_nothing() {
    let app = spawn_app().await;
    let svc = app.token("backend", "service");
    let big = json!({"userId": "alice", "type": "BIG", "payload": "x".repeat(1024 * 1024)});
    let res = app.post("/api/publish", &svc, &big).await;
    assert_eq!(res.status(), 413);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "PAYLOAD_TOO_LARGE");
    // Chunked (no Content-Length) is caught too.
    let body = big.to_string().into_bytes();
    let stream = futures_util::stream::iter(
        body.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let res = app
        .http
        .post(app.url("/api/publish"))
        .bearer_auth(&svc)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(app.publish("alice", "SMALL", json!({})).await, Some(1));
}
