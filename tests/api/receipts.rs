//! `Idempotency-Key` on every REST write: a repeat answers the stored
//! answer (`Idempotent-Replayed: true`) and changes nothing; another
//! request under the key is 409; rejections are kept, server failures are
//! not; concurrent repeats apply once; the events carry `mutationId`.

use std::time::Duration;

use reqwest::Response;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};

use crate::helpers::*;

/// A keyed call: (status, replayed?, body).
async fn keyed(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    key: &str,
    body: Option<&Value>,
) -> (u16, bool, Value) {
    let mut req = app
        .http
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token)
        .header("X-Device-Id", "tab-1")
        .header("Idempotency-Key", key);
    if let Some(b) = body {
        req = req.json(b);
    }
    answer(req.send().await.expect("request")).await
}

async fn answer(res: Response) -> (u16, bool, Value) {
    let status = res.status().as_u16();
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let text = res.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, replayed, body)
}

async fn new_draft(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .call_json(
            "POST",
            "/api/drafts",
            token,
            Some("tab-1"),
            Some(&json!({"payload": {"n": 0}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// The user's stream position, as a fresh socket says.
async fn last_seq(app: &TestApp, user: &str) -> u64 {
    let (_, hello) = app.realtime_connected(user, "").await;
    hello["lastSeq"].as_u64().unwrap()
}

#[tokio::test]
async fn keyed_updates_deletes_and_converts_apply_once_and_answer_the_same() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let id = new_draft(&app, &alice).await;
    let path = format!("/api/drafts/{id}");
    let update = json!({"payload": {"n": 1}});

    let (status, replayed, first) =
        keyed(&app, "PUT", &path, &alice, "k-update", Some(&update)).await;
    assert_eq!((status, replayed), (200, false), "{first}");
    let seq = last_seq(&app, "alice").await;
    let (status, replayed, again) =
        keyed(&app, "PUT", &path, &alice, "k-update", Some(&update)).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again, first, "the stored answer, byte for byte");
    assert_eq!(
        last_seq(&app, "alice").await,
        seq,
        "no second DRAFT_UPDATED"
    );

    // The same JSON spelled otherwise is the same request.
    let res = app
        .http
        .put(app.url(&path))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "k-update")
        .header("Content-Type", "application/json")
        .body("{ \"payload\" : { \"n\" : 1 } }")
        .send()
        .await
        .unwrap();
    assert_eq!(answer(res).await, (200, true, first.clone()));

    // Convert, twice: one pending order.
    let convert = format!("/api/drafts/{id}/convert");
    let (status, replayed, order) = keyed(&app, "POST", &convert, &alice, "k-convert", None).await;
    assert_eq!((status, replayed), (201, false), "{order}");
    let (status, replayed, order2) = keyed(&app, "POST", &convert, &alice, "k-convert", None).await;
    assert_eq!((status, replayed, &order2), (201, true, &order));
    let (_, orders) = app
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    assert_eq!(orders.as_array().unwrap().len(), 1, "{orders}");

    // Delete, twice: one tombstone, one event.
    let order_path = format!("/api/pending-orders/{}", order["id"].as_str().unwrap());
    let (status, replayed, gone) = keyed(&app, "DELETE", &order_path, &alice, "k-del", None).await;
    assert_eq!((status, replayed), (200, false), "{gone}");
    let seq = last_seq(&app, "alice").await;
    let (status, replayed, gone2) = keyed(&app, "DELETE", &order_path, &alice, "k-del", None).await;
    assert_eq!(
        (status, replayed, &gone2),
        (200, true, &gone),
        "not a 404 the second time"
    );
    assert_eq!(last_seq(&app, "alice").await, seq);

    // Without a key a repeat runs again, as before.
    let (status, _) = app
        .call_json("DELETE", &order_path, &alice, None, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_key_reused_for_another_route_resource_or_body_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let (a, b) = (new_draft(&app, &alice).await, new_draft(&app, &alice).await);
    let body = json!({"payload": {"n": 1}});
    let (status, _, _) = keyed(
        &app,
        "PUT",
        &format!("/api/drafts/{a}"),
        &alice,
        "k",
        Some(&body),
    )
    .await;
    assert_eq!(status, 200);
    let seq = last_seq(&app, "alice").await;
    for (method, path, body) in [
        (
            "PUT",
            format!("/api/drafts/{a}"),
            Some(json!({"payload": {"n": 2}})),
        ),
        ("PUT", format!("/api/drafts/{b}"), Some(body.clone())),
        ("DELETE", format!("/api/drafts/{a}"), None),
        (
            "POST",
            "/api/jobs".to_owned(),
            Some(json!({"kind": "sync"})),
        ),
    ] {
        let (status, replayed, err) = keyed(&app, method, &path, &alice, "k", body.as_ref()).await;
        assert_eq!((status, replayed), (409, false), "{method} {path}: {err}");
        assert_eq!(err["error"]["code"], "IDEMPOTENCY_KEY_REUSED", "{err}");
    }
    assert_eq!(last_seq(&app, "alice").await, seq, "nothing changed");
    let (_, draft_b) = app
        .call_json("GET", &format!("/api/drafts/{b}"), &alice, None, None)
        .await;
    assert_eq!(draft_b["payload"], json!({"n": 0}));

    // Keys are per user: bob's "k" is his own.
    let bob = app.token("bob", "agent");
    let theirs = new_draft(&app, &bob).await;
    let (status, replayed, _) = keyed(
        &app,
        "PUT",
        &format!("/api/drafts/{theirs}"),
        &bob,
        "k",
        Some(&body),
    )
    .await;
    assert_eq!((status, replayed), (200, false));
}

/// A rejection is an answer: a retry gets it again, even once the
/// resource exists. A failure of the server is not: a retry runs again.
#[tokio::test]
async fn rejections_are_kept_and_server_failures_are_not() {
    let app = spawn_sqlite_app_with(&[]).await;
    let alice = app.token("alice", "agent");
    let id = uuid::Uuid::new_v4().to_string();
    let path = format!("/api/drafts/{id}");
    let body = json!({"payload": {"n": 1}});
    let (status, replayed, missing) = keyed(&app, "PUT", &path, &alice, "k-404", Some(&body)).await;
    assert_eq!((status, replayed), (404, false), "{missing}");
    let (status, _) = app
        .call_json(
            "POST",
            "/api/drafts",
            &alice,
            None,
            Some(&json!({"id": id, "payload": {"n": 0}})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, replayed, again) = keyed(&app, "PUT", &path, &alice, "k-404", Some(&body)).await;
    assert_eq!((status, replayed, &again), (404, true, &missing));

    // 410 on a tombstone, 400 on a bad body, 403 for another user: kept.
    let (status, _) = app.call_json("DELETE", &path, &alice, None, None).await;
    assert_eq!(status, 200);
    let (status, _, gone) = keyed(&app, "PUT", &path, &alice, "k-410", Some(&body)).await;
    assert_eq!(status, 410, "{gone}");
    assert_eq!(
        keyed(&app, "PUT", &path, &alice, "k-410", Some(&body)).await,
        (410, true, gone)
    );
    let bad = json!({"nope": 1});
    let (status, _, err) = keyed(&app, "POST", "/api/drafts", &alice, "k-400", Some(&bad)).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        keyed(&app, "POST", "/api/drafts", &alice, "k-400", Some(&bad)).await,
        (400, true, err)
    );
    let as_bob = "/api/drafts?userId=bob";
    let (status, _, err) = keyed(
        &app,
        "POST",
        as_bob,
        &alice,
        "k-403",
        Some(&json!({"payload": 1})),
    )
    .await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(
        keyed(
            &app,
            "POST",
            as_bob,
            &alice,
            "k-403",
            Some(&json!({"payload": 1}))
        )
        .await,
        (403, true, err)
    );

    // The database refuses: 503, not kept; the retry runs and applies once.
    let live = new_draft(&app, &alice).await;
    let live_path = format!("/api/drafts/{live}");
    let db = Database::connect(app.database_url()).await.unwrap();
    db.execute_unprepared(
        "CREATE TRIGGER refuse BEFORE UPDATE ON drafts BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .await
    .unwrap();
    let (status, replayed, err) =
        keyed(&app, "PUT", &live_path, &alice, "k-503", Some(&body)).await;
    assert_eq!((status, replayed), (503, false), "{err}");
    db.execute_unprepared("DROP TRIGGER refuse").await.unwrap();
    let (status, replayed, ok) = keyed(&app, "PUT", &live_path, &alice, "k-503", Some(&body)).await;
    assert_eq!((status, replayed), (200, false), "the retry ran: {ok}");
    assert_eq!(ok["payload"], json!({"n": 1}));
}

/// Twenty requests with one key at once: one applies, all answer the same.
#[tokio::test]
async fn concurrent_repeats_of_one_key_apply_once() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let id = new_draft(&app, &alice).await;
    let path = format!("/api/drafts/{id}");
    let seq = last_seq(&app, "alice").await;
    let body = json!({"payload": {"n": 7}});
    let answers = futures_util::future::join_all(
        (0..20).map(|_| keyed(&app, "PUT", &path, &alice, "k-race", Some(&body))),
    )
    .await;
    let first = answers[0].2.clone();
    assert_eq!(
        answers.iter().filter(|a| !a.1).count(),
        1,
        "one ran: {answers:?}"
    );
    for (status, _, body) in &answers {
        assert_eq!((*status, body), (200, &first));
    }
    assert_eq!(last_seq(&app, "alice").await, seq + 1, "one DRAFT_UPDATED");
}

/// The same across two nodes of one PostgreSQL: the key's row is the lock.
#[tokio::test]
async fn concurrent_repeats_through_two_nodes_apply_once() {
    let cluster = crate::cluster::Nodes::start(2, &[]).await;
    let (a, b) = (&cluster.apps[0], &cluster.apps[1]);
    let alice = a.token("alice", "agent");
    let id = new_draft(a, &alice).await;
    let path = format!("/api/drafts/{id}");
    let seq = last_seq(a, "alice").await;
    for round in 0..5 {
        let key = format!("k-{round}");
        let body = json!({"payload": {"round": round}});
        let answers = futures_util::future::join_all((0..10).map(|i| {
            let node = if i % 2 == 0 { a } else { b };
            keyed(node, "PUT", &path, &alice, &key, Some(&body))
        }))
        .await;
        assert_eq!(answers.iter().filter(|a| !a.1).count(), 1, "{answers:?}");
        assert!(answers.iter().all(|x| x.0 == 200 && x.2 == answers[0].2));
    }
    assert_eq!(last_seq(a, "alice").await, seq + 5, "one event per key");
}

/// Every event of a keyed write carries its key as `mutationId`, live and
/// in a replay; events of unkeyed writes carry none.
#[tokio::test]
async fn events_carry_the_writes_mutation_id_live_and_replayed() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let (mut ws, hello) = app.realtime_connected("alice", "deviceId=phone").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    let (_, _, draft) = keyed(
        &app,
        "POST",
        "/api/drafts",
        &alice,
        "m-create",
        Some(&json!({"payload": 1})),
    )
    .await;
    let id = draft["id"].as_str().unwrap();
    keyed(
        &app,
        "POST",
        &format!("/api/drafts/{id}/convert"),
        &alice,
        "m-convert",
        None,
    )
    .await;
    keyed(
        &app,
        "POST",
        "/api/jobs",
        &alice,
        "m-job",
        Some(&json!({"kind": "sync"})),
    )
    .await;
    let svc = app.token("backend", "service");
    keyed(
        &app,
        "POST",
        "/api/publish",
        &svc,
        "m-pub",
        Some(&json!({"userId": "alice", "type": "NOTE_ADDED"})),
    )
    .await;
    app.call_json(
        "POST",
        "/api/drafts",
        &alice,
        None,
        Some(&json!({"payload": 2})),
    )
    .await;
    let want = [
        ("DRAFT_CREATED", Some("m-create")),
        ("DRAFT_CONVERTED", Some("m-convert")),
        ("PENDING_CREATED", Some("m-convert")),
        ("JOB_QUEUED", Some("m-job")),
        ("NOTE_ADDED", Some("m-pub")),
        ("DRAFT_CREATED", None),
    ];
    let mut live = Vec::new();
    for _ in 0..want.len() {
        let ev = ws.next_json().await;
        live.push((
            ev["type"].as_str().unwrap().to_owned(),
            ev["mutationId"].as_str().map(str::to_owned),
        ));
    }
    let want: Vec<(String, Option<String>)> = want
        .iter()
        .map(|(t, m)| (t.to_string(), m.map(str::to_owned)))
        .collect();
    assert_eq!(live, want);

    let (mut again, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}&deviceId=laptop"))
        .await;
    let mut replayed = Vec::new();
    loop {
        let ev = again.next_json().await;
        if ev["type"] == "REPLAY_COMPLETE" {
            break;
        }
        replayed.push((
            ev["type"].as_str().unwrap().to_owned(),
            ev["mutationId"].as_str().map(str::to_owned),
        ));
    }
    assert_eq!(replayed, want, "the same in a replay");
}

/// Jobs' create and cancel, and the cashier REST writes, take keys too.
#[tokio::test]
async fn jobs_and_cashier_writes_take_keys() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let job = json!({"kind": "sync"});
    let (status, replayed, first) =
        keyed(&app, "POST", "/api/jobs", &alice, "j-1", Some(&job)).await;
    assert_eq!((status, replayed), (202, false));
    let path = format!("/api/jobs/{}/cancel", first["id"].as_str().unwrap());
    let (status, replayed, cancelled) = keyed(&app, "POST", &path, &alice, "c-1", None).await;
    assert_eq!((status, replayed), (200, false), "{cancelled}");
    // A repeat is the stored 200, not "already finished".
    assert_eq!(
        keyed(&app, "POST", &path, &alice, "c-1", None).await,
        (200, true, cancelled)
    );
    let (status, replayed, again) =
        keyed(&app, "POST", "/api/jobs", &alice, "j-1", Some(&job)).await;
    assert_eq!(
        (status, replayed, &again),
        (202, true, &first),
        "the answer as it was: queued"
    );
    let (_, jobs) = app.call_json("GET", "/api/jobs", &alice, None, None).await;
    assert_eq!(jobs.as_array().unwrap().len(), 1);

    let till = app.cashier_token("main");
    let (status, _, _) = keyed(
        &app,
        "POST",
        "/api/devices",
        &till,
        "d-1",
        Some(&json!({"deviceId": "pc1"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, replayed, _) = keyed(
        &app,
        "POST",
        "/api/devices",
        &till,
        "d-1",
        Some(&json!({"deviceId": "pc1"})),
    )
    .await;
    assert!(replayed, "not a 409 DEVICE_EXISTS");
    let (mut terminal, _) = app.terminal("t-1", "main", json!({})).await;
    let order = json!({"name": "tea", "price": 2, "quantity": 1});
    for _ in 0..3 {
        let (status, _, _) = keyed(
            &app,
            "POST",
            "/api/devices/pc1/orders",
            &till,
            "o-1",
            Some(&order),
        )
        .await;
        assert_eq!(status, 201);
    }
    assert_eq!(terminal.next_json().await["type"], "order_added");
    terminal.expect_silence(Duration::from_millis(300)).await;
    let (_, pc1) = app
        .call_json("GET", "/api/devices/pc1", &till, None, None)
        .await;
    assert_eq!(pc1["orders"].as_array().unwrap().len(), 1, "{pc1}");
    let (status, _, _) = keyed(
        &app,
        "DELETE",
        "/api/devices/pc1/orders/0",
        &till,
        "x",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, replayed, _) = keyed(
        &app,
        "DELETE",
        "/api/devices/pc1/orders/0",
        &till,
        "x",
        None,
    )
    .await;
    assert_eq!((status, replayed), (200, true), "not ORDER_NOT_FOUND");
}

/// After `HERALD_IDEMPOTENCY_SECS` a key is forgotten: a repeat runs again.
#[tokio::test]
async fn a_key_is_forgotten_after_its_time() {
    let app = spawn_app_with(&[("HERALD_IDEMPOTENCY_SECS", "1")]).await;
    let alice = app.token("alice", "agent");
    let id = new_draft(&app, &alice).await;
    let path = format!("/api/drafts/{id}");
    let body = json!({"payload": {"n": 1}});
    let (_, replayed, _) = keyed(&app, "PUT", &path, &alice, "k", Some(&body)).await;
    assert!(!replayed);
    let (_, replayed, _) = keyed(&app, "PUT", &path, &alice, "k", Some(&body)).await;
    assert!(replayed);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let seq = last_seq(&app, "alice").await;
    let (status, replayed, _) = keyed(&app, "PUT", &path, &alice, "k", Some(&body)).await;
    assert_eq!((status, replayed), (200, false), "ran again");
    assert_eq!(last_seq(&app, "alice").await, seq + 1);
}
