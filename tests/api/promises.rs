//! Promises the docs make that had no test of their own (issue 27's
//! "Cover"): close codes, job conflicts and the order system's retries,
//! several nodes, cashier resume limits, headers and rate limits.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};

use crate::{cluster::Nodes, fake_erp, helpers::*};

// --- Close codes -----------------------------------------------------------

/// A terminal that opens `/ws` and never says `connect` is told why and
/// closed with 1008 after 10 s.
#[tokio::test]
async fn a_terminal_that_never_says_connect_is_closed_with_1008_after_10_s() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app.ws_url(&format!("/ws?token={}", app.cashier_token("main"))))
        .await
        .unwrap();
    let started = Instant::now();
    let (ended, seen) = ws.until_closed(Duration::from_secs(15)).await;
    let after = started.elapsed();
    assert_eq!(ended.code(), Some(1008), "{ended:?}");
    assert!(
        after >= Duration::from_millis(9500) && after <= Duration::from_secs(12),
        "{after:?}"
    );
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["code"], "UNAUTHORIZED");
    assert!(seen[0]["message"].as_str().unwrap().contains("10 s"));
}

/// Publishes `n` events of about 60 KB each for `user`: enough to fill the
/// socket buffers of a device that does not read its replay.
async fn big_events(app: &TestApp, user: &str, n: usize) {
    let pad = "x".repeat(60 * 1024);
    for i in 0..n {
        app.publish(user, "BIG", json!({"i": i, "pad": pad})).await;
    }
}

/// A device whose replay is held (it does not read) while more live events
/// arrive than its send queue holds is closed with 4008: it reconnects and
/// replays, instead of the server holding an unbounded backlog for it.
#[tokio::test]
async fn too_many_live_events_held_during_a_replay_close_with_4008() {
    let app = spawn_app_with(&[("HERALD_BUFFER_EVENTS", "1"), ("HERALD_SEND_QUEUE", "16")]).await;
    let (_keep, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    big_events(&app, "alice", 400).await;
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20 {
        app.publish("alice", "LIVE", json!({"i": i})).await;
    }
    let (ended, seen) = ws.until_closed(WAIT).await;
    assert_eq!(ended.code(), Some(4008), "{ended:?}");
    assert!(
        seen.iter().all(|m| m["type"] != "LIVE"),
        "no live event overtook the replay"
    );
}

/// Rows that vanish while a device's replay reads them (deleted by hand
/// here; pruning is the real-life cause) end that replay with 1011 and a
/// reason to reconnect, never a silent gap.
#[tokio::test]
async fn rows_that_vanish_mid_replay_close_it_with_1011() {
    let app = spawn_sqlite_app_with(&[("HERALD_BUFFER_EVENTS", "1")]).await;
    let (_keep, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    big_events(&app, "alice", 400).await;
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = Database::connect(app.database_url()).await.unwrap();
    db.execute_unprepared("DELETE FROM events WHERE stream = 'user:alice' AND seq > 300")
        .await
        .unwrap();
    let (ended, seen) = ws.until_closed(WAIT).await;
    assert_eq!(ended.code(), Some(1011), "{ended:?}");
    assert!(
        seen.iter().all(|m| m["type"] != "REPLAY_COMPLETE"),
        "the replay never claims to be complete"
    );
    let mut seq = 0;
    for m in &seen {
        seq += 1;
        assert_eq!(m["seq"], seq, "what came before the close is contiguous");
    }
}

// --- Jobs ------------------------------------------------------------------

async fn orders(app: &TestApp, token: &str, n: usize) -> Vec<String> {
    let batch: Vec<Value> = (0..n).map(|i| json!({"payload": {"i": i}})).collect();
    let (status, body) = app
        .call_json(
            "POST",
            "/api/pending-orders",
            token,
            None,
            Some(&json!(batch)),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    body["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn submit(app: &TestApp, token: &str, ids: &[String]) -> (u16, Value) {
    app.call_json(
        "POST",
        "/api/jobs",
        token,
        None,
        Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
    )
    .await
}

async fn job_when_done(app: &TestApp, token: &str, id: &str, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let (_, job) = app
            .call_json("GET", &format!("/api/jobs/{id}"), token, None, None)
            .await;
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            return job;
        }
        assert!(Instant::now() < deadline, "still {}", job["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An order a job is sending cannot be changed (409 `ORDER_BUSY`, with the
/// order as it is); one already submitted cannot be submitted again (409
/// `ORDER_NOT_SUBMITTABLE`).
#[tokio::test]
async fn busy_and_submitted_orders_are_refused_with_their_codes() {
    let erp = fake_erp::start(|_, n| {
        (
            200,
            json!({"orderNumber": format!("N{n}")}),
            Duration::from_millis(1500),
        )
    })
    .await;
    let app = spawn_app_with(&[("HERALD_ERP_URL", &erp.url)]).await;
    let alice = app.token("alice", "agent");
    let ids = orders(&app, &alice, 2).await;
    let (status, job) = submit(&app, &alice, &ids).await;
    assert_eq!(status, 202, "{job}");
    while erp.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, err) = app
        .call_json(
            "PUT",
            &format!("/api/pending-orders/{}", ids[1]),
            &alice,
            None,
            Some(&json!({"payload": {"changed": true}})),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "ORDER_BUSY");
    assert_eq!(err["current"]["status"], "submitting", "{err}");
    let done = job_when_done(&app, &alice, job["id"].as_str().unwrap(), WAIT).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (status, err) = submit(&app, &alice, &ids[..1]).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "ORDER_NOT_SUBMITTABLE");
}

/// The order system's 408 and 429 are retried (with backoff) like a 5xx,
/// and the order gets its number on the third attempt.
#[tokio::test]
async fn the_order_systems_408_and_429_are_retried() {
    let erp = fake_erp::start(|_, n| match n {
        0 => (408, json!({"error": "timeout"}), Duration::ZERO),
        1 => (429, json!({"error": "slow down"}), Duration::ZERO),
        _ => (200, json!({"orderNumber": "THIRD"}), Duration::ZERO),
    })
    .await;
    let app = spawn_app_with(&[("HERALD_ERP_URL", &erp.url)]).await;
    let alice = app.token("alice", "agent");
    let ids = orders(&app, &alice, 1).await;
    let (_, job) = submit(&app, &alice, &ids).await;
    let done = job_when_done(&app, &alice, job["id"].as_str().unwrap(), WAIT).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(erp.received().len(), 3);
    assert!(erp
        .received()
        .iter()
        .all(|r| r.idempotency_key.as_deref() == Some(ids[0].as_str())));
    let (_, order) = app
        .call_json(
            "GET",
            &format!("/api/pending-orders/{}", ids[0]),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(order["orderNumber"], "THIRD");
}

/// An order system that does not answer within `HERALD_ERP_TIMEOUT_SECS`
/// is retried `HERALD_ERP_RETRIES` times, then the job fails saying so and
/// the order is not left `submitting`.
#[tokio::test]
async fn an_order_system_that_times_out_fails_the_job_after_its_retries() {
    let erp =
        fake_erp::start(|_, _| (200, json!({"orderNumber": "LATE"}), Duration::from_secs(5))).await;
    let app = spawn_app_with(&[
        ("HERALD_ERP_URL", &erp.url),
        ("HERALD_ERP_TIMEOUT_SECS", "1"),
        ("HERALD_ERP_RETRIES", "1"),
    ])
    .await;
    let alice = app.token("alice", "agent");
    let ids = orders(&app, &alice, 1).await;
    let (_, job) = submit(&app, &alice, &ids).await;
    let done = job_when_done(
        &app,
        &alice,
        job["id"].as_str().unwrap(),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("after 2 attempts"), "{error}");
    assert_eq!(erp.received().len(), 2, "one try and one retry");
    let (_, order) = app
        .call_json(
            "GET",
            &format!("/api/pending-orders/{}", ids[0]),
            &alice,
            None,
            None,
        )
        .await;
    assert_ne!(order["status"], "submitting", "{order}");
}

/// A job whose start keeps failing (its orders cannot be marked
/// `submitting`: a trigger in the database refuses it) is retried six times
/// over about 8 s, then fails with the reason instead of staying queued.
#[tokio::test]
async fn a_start_that_keeps_failing_fails_the_job_with_the_reason() {
    let app = spawn_sqlite_app_with(&[]).await;
    let alice = app.token("alice", "agent");
    let ids = orders(&app, &alice, 1).await;
    let db = Database::connect(app.database_url()).await.unwrap();
    db.execute_unprepared(
        "CREATE TRIGGER refuse BEFORE UPDATE ON pending_orders \
         BEGIN SELECT RAISE(ABORT, 'the disk says no'); END",
    )
    .await
    .unwrap();
    let (_, job) = submit(&app, &alice, &ids).await;
    let done = job_when_done(
        &app,
        &alice,
        job["id"].as_str().unwrap(),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(
        error.contains("could not start") && error.contains("the disk says no"),
        "{error}"
    );
    assert!(app.log().contains("try 5 of 6"), "retried with backoff");
}

// --- Several nodes ---------------------------------------------------------

/// `all: true` reaches every user connected to any node, and every user
/// with a stream.
#[tokio::test]
async fn a_publish_to_all_reaches_users_connected_to_another_node() {
    let nodes = Nodes::start(2, &[("HERALD_NODE_LEASE_MS", "2000")]).await;
    let (a, b) = (&nodes.apps[0], &nodes.apps[1]);
    let (mut on_b, _) = b.realtime_connected("bianca", "").await;
    // b's heartbeat lists bianca within lease / 5.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let res = a
        .post(
            "/api/publish",
            &a.token("svc", "service"),
            &json!({"all": true, "type": "ANNOUNCEMENT", "payload": {"text": "hi"}}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["seqs"]["bianca"], 1, "{body}");
    assert_eq!(
        on_b.until_type("ANNOUNCEMENT").await["payload"]["text"],
        "hi"
    );
}

/// A node that stops cleanly frees its jobs at once: another node recovers
/// them well before the lease (which a crashed node's jobs wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_frees_its_jobs_at_once() {
    let erp = fake_erp::start(|_, n| {
        (
            200,
            json!({"orderNumber": format!("N{n}")}),
            Duration::from_millis(800),
        )
    })
    .await;
    let mut nodes = Nodes::start(
        2,
        &[
            ("HERALD_ERP_URL", erp.url.as_str()),
            ("HERALD_NODE_LEASE_MS", "20000"),
        ],
    )
    .await;
    let alice = nodes.apps[0].token("alice", "agent");
    let ids = orders(&nodes.apps[0], &alice, 10).await;
    let (_, job) = submit(&nodes.apps[0], &alice, &ids).await;
    let id = job["id"].as_str().unwrap().to_owned();
    while erp.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = Instant::now();
    let (status, _) = tokio::task::block_in_place(|| nodes.apps[0].terminate());
    assert!(status.success());
    let done = job_when_done(&nodes.apps[1], &alice, &id, Duration::from_secs(15)).await;
    let took = stopped.elapsed();
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"], "interrupted");
    assert!(
        took < Duration::from_secs(15),
        "freed at once, not after the 20 s lease: {took:?}"
    );
    // What the order system answered before the stop is kept.
    let (_, list) = nodes.apps[1]
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    let submitted = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "submitted")
        .count();
    assert!(submitted >= 1, "{list}");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] != "submitting"),
        "{list}"
    );
}

// --- Cashier ---------------------------------------------------------------

/// A terminal whose `lastSeq` is further back than the most one reconnect
/// replays gets `recovered: false` and the whole state, not a replay.
#[tokio::test]
async fn a_last_seq_beyond_the_maximum_replay_gets_the_state() {
    let app = spawn_app_with(&[("HERALD_MAX_REPLAY_EVENTS", "5")]).await;
    let token = app.cashier_token("main");
    for i in 0..3 {
        let (status, _) = app
            .call_json(
                "POST",
                "/api/devices",
                &token,
                None,
                Some(&json!({"deviceId": format!("pc{i}")})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (mut a, _) = app.terminal("till-a", "main", json!({})).await;
    for n in 0..10 {
        a.send_json(
            &json!({"type": "device_update", "deviceId": "pc0", "data": {"customerCount": n + 1}}),
        )
        .await;
    }
    a.send_json(&json!({"type": "ping"})).await;
    a.until_type("pong").await;
    let (_, connected) = app.terminal("till-b", "main", json!({"lastSeq": 1})).await;
    assert_eq!(connected["recovered"], false, "{connected}");
    let devices = connected["devices"].as_array().expect("the whole state");
    assert_eq!(devices.len(), 3);
    assert_eq!(devices[0]["customerCount"], 10);
}

/// With `HERALD_CASHIER_AUTH=off` a terminal connects without any token,
/// to venue `main` or the one it names, and changes reach the others.
#[tokio::test]
async fn terminals_on_a_trusted_lan_need_no_token() {
    let app = spawn_app_with(&[("HERALD_CASHIER_AUTH", "off")]).await;
    let open = |venue: &str| {
        let url = app.ws_url(&format!("/ws?venue={venue}"));
        async move {
            let mut ws = Ws::connect(&url).await.unwrap();
            ws.send_json(&json!({"type": "connect", "clientId": format!("lan-{}", rand_id())}))
                .await;
            assert_eq!(ws.next_json().await["type"], "connected");
            ws
        }
    };
    let (mut one, mut two) = (open("bar").await, open("bar").await);
    let mut elsewhere = open("main").await;
    let (status, _) = app
        .call_json(
            "POST",
            "/api/devices?venue=bar",
            &app.token("root", "admin"),
            None,
            Some(&json!({"deviceId": "pc1"})),
        )
        .await;
    assert_eq!(status, 201);
    one.until_type("device_created").await;
    two.until_type("device_created").await;
    one.send_json(
        &json!({"type": "device_update", "deviceId": "pc1", "data": {"isRunning": true}}),
    )
    .await;
    assert_eq!(two.until_type("device_updated").await["deviceId"], "pc1");
    elsewhere.expect_silence(Duration::from_millis(300)).await;
}

fn rand_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

// --- Headers and rate limits ----------------------------------------------

/// Every answer forbids framing both ways browsers read it.
#[tokio::test]
async fn no_page_of_herald_can_be_framed() {
    let app = spawn_app().await;
    for path in ["/", "/api/openapi.json", "/healthz", "/api/drafts"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY", "{path}");
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
}

/// The REST limit is per token: calls without a token are refused for what
/// they are (401), never 429 as if they shared one token, and one token
/// over its limit does not limit another.
#[tokio::test]
async fn calls_without_a_token_do_not_share_a_rate_limit() {
    let app = spawn_app_with(&[("HERALD_REST_RATE", "1"), ("HERALD_REST_BURST", "2")]).await;
    for _ in 0..20 {
        let res = app.http.get(app.url("/api/drafts")).send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
    let (a, b) = (app.token("a", "agent"), app.token("b", "agent"));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.get("/api/drafts", &a).await.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(app.get("/api/drafts", &b).await.status(), 200);
}
