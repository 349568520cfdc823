//! `Idempotency-Key` on `POST /api/publish`: a retry after a timeout or a
//! crash answers the first publish and publishes nothing again.

use serde_json::{json, Value};

use crate::helpers::*;

async fn publish_with_key(app: &TestApp, token: &str, key: &str, body: &Value) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/api/publish"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn a_repeated_key_answers_the_first_publish_and_publishes_nothing() {
    let mut app = spawn_app().await;
    let svc = app.token("backend", "service");
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let body = json!({"userIds": ["alice", "bob"], "type": "ORDER_EDIT_COMPLETE", "payload": {"orderId": "o-1"}});
    let (status, first) = publish_with_key(&app, &svc, "retry-1", &body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["seqs"], json!({"alice": 1, "bob": 1}));
    let (status, again) = publish_with_key(&app, &svc, "retry-1", &body).await;
    assert_eq!((status, &again), (200, &first));
    assert_eq!(ws.next_json().await["seq"], 1);
    ws.expect_silence(std::time::Duration::from_millis(300))
        .await;

    // The same key with another body: refused, nothing published.
    let other =
        json!({"userId": "alice", "type": "ORDER_EDIT_COMPLETE", "payload": {"orderId": "o-2"}});
    let (status, err) = publish_with_key(&app, &svc, "retry-1", &other).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    // Another caller's key of the same name is its own.
    let (status, theirs) = publish_with_key(
        &app,
        &app.token("other-backend", "service"),
        "retry-1",
        &other,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(theirs["seqs"]["alice"], 2);
    assert_eq!(ws.next_json().await["seq"], 2);

    // Across a SIGKILL: the key was stored with the events.
    app.restart().await;
    let (status, after) = publish_with_key(&app, &svc, "retry-1", &body).await;
    assert_eq!((status, &after), (200, &first));
    let (_, hello) = app.realtime_connected("alice", "").await;
    assert_eq!(hello["lastSeq"], 2, "nothing published again");
}

/// Scopes are unambiguous: a caller whose `sub` contains `:` cannot name
/// another caller's key (`svc:x` + `k` against `svc` + `x:k`), for publish
/// and for the ids keyed creates derive.
#[tokio::test]
async fn a_sub_with_a_colon_cannot_reach_another_callers_stored_answer() {
    let app = spawn_app().await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let body = json!({"userId": "alice", "type": "ORDER_EDIT_COMPLETE", "payload": {"n": 1}});
    let first = app.token("svc:x", "service");
    let (status, answer) = publish_with_key(&app, &first, "k", &body).await;
    assert_eq!((status, answer["seqs"]["alice"].as_u64()), (200, Some(1)));
    let second = app.token("svc", "service");
    let (status, answer) = publish_with_key(&app, &second, "x:k", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["seqs"]["alice"], 2,
        "its own publish, not the other caller's stored answer"
    );
    assert_eq!(ws.next_json().await["seq"], 1);
    assert_eq!(ws.next_json().await["seq"], 2);

    // Keyed creates: an admin `a:b` for user `c` and an admin `a` for
    // user `b:c` with one key make two drafts, not one.
    let mut ids = Vec::new();
    for (sub, user) in [("a:b", "c"), ("a", "b:c")] {
        let res = app
            .http
            .post(app.url(&format!("/api/drafts?userId={user}")))
            .bearer_auth(app.token(sub, "admin"))
            .header("Idempotency-Key", "same")
            .json(&json!({"payload": {"user": user}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let draft: Value = res.json().await.unwrap();
        ids.push(draft["id"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn concurrent_repeats_of_one_key_publish_once() {
    let app = spawn_app().await;
    let svc = app.token("backend", "service");
    let body = json!({"userId": "alice", "type": "SYNC_COMPLETED", "payload": {}});
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (http, url, svc, body) = (
            app.http.clone(),
            app.url("/api/publish"),
            svc.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(svc)
                .header("Idempotency-Key", "same")
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, answer) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(answer["seqs"]["alice"], 1);
    }
    let (_, hello) = app.realtime_connected("alice", "").await;
    assert_eq!(hello["lastSeq"], 1);
}

#[tokio::test]
async fn a_bad_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let svc = app.token("backend", "service");
    let body = json!({"userId": "alice", "type": "X", "payload": {}});
    for key in ["", &"k".repeat(256)] {
        let (status, err) = publish_with_key(&app, &svc, key, &body).await;
        assert_eq!(status, 400, "{key:?}: {err}");
        assert_eq!(err["error"]["code"], "VALIDATION_FAILED");
    }
    let (_, hello) = app.realtime_connected("alice", "").await;
    assert_eq!(hello["lastSeq"], 0);
}

#[tokio::test]
async fn creates_repeated_under_one_key_answer_the_first_result() {
    let mut app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let create = |path: &'static str, key: &'static str, body: Value| {
        let (http, url, token) = (app.http.clone(), app.url(path), alice.clone());
        async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    for (path, status) in [
        ("/api/drafts", 201),
        ("/api/pending-orders", 201),
        ("/api/jobs", 202),
    ] {
        let body = match path {
            "/api/jobs" => json!({"kind": "customer-sync", "params": {}}),
            _ => json!({"payload": {"customer": "c-1"}}),
        };
        // Keys are the user's, whatever the route: each route its own.
        let (k1, k2) = match path {
            "/api/drafts" => ("k-1", "k-2"),
            "/api/pending-orders" => ("o-1", "o-2"),
            _ => ("j-1", "j-2"),
        };
        let first = create(path, k1, body.clone()).await;
        assert_eq!(first.0, status, "{path}: {}", first.1);
        let again = create(path, k1, body.clone()).await;
        assert_eq!(again, first, "{path}: a repeat answers the first result");
        if path != "/api/drafts" {
            let reused = create(path, "k-1", body.clone()).await;
            assert_eq!(
                reused.0, 409,
                "{path}: a key of another route: {}",
                reused.1
            );
        }
        let other = create(path, k2, body).await;
        assert_eq!(other.0, status);
        assert_ne!(
            other.1["id"], first.1["id"],
            "{path}: another key, another resource"
        );
    }
    // One event per resource created, none for the repeats.
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(ws.next_json().await["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        [
            "DRAFT_CREATED",
            "DRAFT_CREATED",
            "PENDING_CREATED",
            "PENDING_CREATED",
            "JOB_QUEUED",
            "JOB_QUEUED"
        ]
    );
    ws.expect_silence(std::time::Duration::from_millis(300))
        .await;
    // Across a restart too.
    app.restart().await;
    let alice = app.token("alice", "agent");
    let res = app
        .http
        .post(app.url("/api/drafts"))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "k-1")
        .json(&json!({"payload": {"customer": "c-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (_, drafts) = app
        .call_json("GET", "/api/drafts", &alice, None, None)
        .await;
    assert_eq!(drafts.as_array().unwrap().len(), 2);
}
