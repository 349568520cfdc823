//! Hardening (issue 10): the promise under OS crashes, legacy clients,
//! Flutter numbers, expiring tokens, role boundaries and huge requests.
//! Each test here failed on the commit before its fix.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// Builds one of the LD_PRELOAD shims in tests/support into `dir`.
pub fn build_shim(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let shim = dir.join(format!("{name}.so"));
    let src = format!("{}/tests/support/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(src)
        .arg("-ldl")
        .output()
        .expect("a C compiler (cc) builds the shim");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    shim
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn every_acknowledged_write_is_fsynced_before_its_answer_by_default() {
    let shims = tempfile::tempdir().unwrap();
    let shim = build_shim(shims.path(), "fsync_count");
    let log = shims.path().join("fsyncs");
    let app = spawn_sqlite_app_with(&[
        ("LD_PRELOAD", shim.to_str().unwrap()),
        ("HERALD_FSYNC_LOG", log.to_str().unwrap()),
    ])
    .await;
    let agent = app.token("alice", "agent");
    // One at a time: every answer must wait for its own sync.
    for i in 0..10 {
        let before = lines(&log);
        app.publish("alice", "DURABLE", json!({"i": i})).await;
        assert!(
            lines(&log) > before,
            "publish {i} was answered before any fsync"
        );
        let before = lines(&log);
        let (status, _) = app
            .call_json(
                "POST",
                "/api/drafts",
                &agent,
                None,
                Some(&json!({"payload": {"i": i}})),
            )
            .await;
        assert_eq!(status, 201);
        assert!(
            lines(&log) > before,
            "draft {i} was answered before any fsync"
        );
    }
}

/// Under concurrency (publishes group-committed, drafts alongside): every
/// answer leaves after an fsync that followed its request, so no answer
/// goes out before the commit of its group is on disk. A shim records the
/// order of requests read, fsyncs and answers written.
#[tokio::test]
async fn concurrent_writes_are_answered_only_after_their_group_is_fsynced() {
    let shims = tempfile::tempdir().unwrap();
    let shim = build_shim(shims.path(), "fsync_order");
    let log = shims.path().join("order");
    let app = spawn_sqlite_app_with(&[
        ("LD_PRELOAD", shim.to_str().unwrap()),
        ("HERALD_ORDER_LOG", log.to_str().unwrap()),
    ])
    .await;
    let (svc, agent) = (app.token("svc", "service"), app.token("alice", "agent"));
    let mut tasks = Vec::new();
    for w in 0..12 {
        let (http, publish, drafts) = (
            app.http.clone(),
            app.url("/api/publish"),
            app.url("/api/drafts"),
        );
        let (svc, agent) = (svc.clone(), agent.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let res = if w % 3 == 0 {
                    http.post(&drafts)
                        .bearer_auth(&agent)
                        .json(&json!({"payload": {"w": w, "i": i}}))
                        .send()
                        .await
                } else {
                    http.post(&publish)
                        .bearer_auth(&svc)
                        .json(&json!({"userId": "alice", "type": "DURABLE", "payload": {"w": w, "i": i}}))
                        .send()
                        .await
                };
                assert!(res.unwrap().status().is_success());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = std::fs::read_to_string(&log).unwrap();
    // Per connection: each request read, then an fsync, then its answer.
    let mut open: std::collections::HashMap<String, bool> = Default::default();
    let (mut answers, mut fsyncs) = (0, 0);
    for line in order.lines() {
        let mut parts = line.split(' ');
        match parts.next() {
            Some("R") => {
                open.insert(parts.next().unwrap().to_owned(), false);
            }
            Some("F") => {
                fsyncs += 1;
                for synced in open.values_mut() {
                    *synced = true;
                }
            }
            Some("S") => {
                let fd = parts.next().unwrap();
                if let Some(synced) = open.remove(fd) {
                    answers += 1;
                    assert!(
                        synced,
                        "an answer on fd {fd} left before any fsync after its request:\n{order}"
                    );
                }
            }
            _ => {}
        }
    }
    assert_eq!(answers, 120, "every answer seen:\n{order}");
    assert!(fsyncs > 0);
}

#[tokio::test]
async fn a_non_durable_setting_is_documented_and_an_unclean_stop_under_it_changes_the_epoch() {
    let mut app = spawn_sqlite_app_with(&[("HERALD_SYNC", "normal")]).await;
    let (_, hello) = app.realtime_connected("alice", "").await;
    let first = hello["epoch"].as_str().unwrap().to_owned();
    app.publish("alice", "A", json!({})).await;
    assert!(
        app.log().contains("HERALD_SYNC=normal"),
        "the trade is said at startup"
    );
    // A clean stop keeps the stream.
    let (status, _) = app.terminate();
    assert!(status.success());
    app.start().await;
    let (_, hello) = app.realtime_connected("alice", "").await;
    assert_eq!(hello["epoch"], first, "a clean stop keeps the epoch");
    // An unclean one may have lost answered commits: a new epoch says so.
    app.restart().await;
    let (mut ws, hello) = app
        .realtime_connected("alice", &format!("since=1&epoch={first}"))
        .await;
    assert_ne!(
        hello["epoch"], first,
        "an unclean stop under normal changes the epoch"
    );
    let done = ws.until_type("REPLAY_COMPLETE").await;
    assert_eq!(done["payload"]["recovered"], false, "{done}");
    // Under the durable default an unclean stop keeps it.
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    app.terminate();
    app.env.retain(|(k, _)| k != "HERALD_SYNC");
    app.start().await;
    app.restart().await;
    let (_, hello) = app.realtime_connected("alice", "").await;
    assert_eq!(hello["epoch"], epoch.as_str());
}

#[tokio::test]
async fn last_event_ts_resumes_exactly_after_the_last_event_seen() {
    let app = spawn_app().await;
    let agent = app.token("alice", "agent");
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    // Convert writes two events in one transaction.
    let (_, draft) = app
        .call_json(
            "POST",
            "/api/drafts",
            &agent,
            None,
            Some(&json!({"payload": {"n": 1}})),
        )
        .await;
    let id = draft["id"].as_str().unwrap();
    let (status, _) = app
        .call_json(
            "POST",
            &format!("/api/drafts/{id}/convert"),
            &agent,
            None,
            None,
        )
        .await;
    assert_eq!(status, 201);
    // Concurrent writers to the same stream.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/publish"),
            app.token("svc", "service"),
        );
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"userIds": ["alice", "bob"], "type": "BURST", "payload": {"i": i}}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let mut seen = Vec::new();
    while seen.len() < 43 {
        seen.push(ws.next_json().await);
    }
    assert_seqs(&seen, 1, 43);
    let ms = |e: &Value| parse_rfc3339_ms(e["timestamp"].as_str().unwrap());
    for pair in seen.windows(2) {
        assert!(
            ms(&pair[1]) > ms(&pair[0]),
            "timestamps must strictly increase: {} then {}",
            pair[0],
            pair[1]
        );
    }
    // Resume after each event by its timestamp (RFC 3339 and ms): exactly the rest.
    for cut in [1usize, 2, 20, 42] {
        let ts = seen[cut - 1]["timestamp"].as_str().unwrap().to_owned();
        for q in [
            format!("lastEventTs={ts}"),
            format!("lastEventTs={}", ms(&seen[cut - 1])),
        ] {
            let (mut again, _) = app.realtime_connected("alice", &q).await;
            let mut replayed = Vec::new();
            loop {
                let ev = again.next_json().await;
                if ev["type"] == "REPLAY_COMPLETE" {
                    assert_eq!(ev["payload"]["recovered"], true, "{ev}");
                    assert_eq!(ev["payload"]["replayed"], 43 - cut as u64, "{q}: {ev}");
                    break;
                }
                replayed.push(ev);
            }
            assert_seqs(&replayed, cut as u64 + 1, 43);
        }
    }
}

/// ms since the epoch of an RFC 3339 UTC time with milliseconds.
fn parse_rfc3339_ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .timestamp_millis()
}

#[tokio::test]
async fn prices_as_flutter_writes_them_are_accepted_stored_and_broadcast_exactly() {
    let app = spawn_app().await;
    let (status, _) = app
        .call_json(
            "POST",
            "/api/devices",
            &app.cashier_token("main"),
            None,
            Some(&json!({"deviceId": "pc1"})),
        )
        .await;
    assert_eq!(status, 201);
    let (mut sender, _) = app.terminal("till-1", "main", json!({})).await;
    let (mut other, _) = app.terminal("till-2", "main", json!({})).await;
    // Exactly the text a Dart client sends: doubles, and a count written as 3.0.
    sender
        .send_text(r#"{"type":"order_placed","deviceId":"pc1","orders":[{"name":"Cola","price":1000.0,"quantity":3.0,"notes":""},{"name":"Tea","price":12.5,"quantity":1,"notes":""},{"name":"Water","price":500,"quantity":2,"notes":""}],"timestamp":"2026-02-03T02:25:33+03:00"}"#)
        .await;
    let added = other.until_type("order_added").await;
    let text = added.to_string();
    assert!(text.contains("\"price\":1000.0"), "{text}");
    assert!(text.contains("\"price\":12.5"), "{text}");
    assert!(text.contains("\"price\":500,"), "{text}");
    assert_eq!(added["orders"][0]["quantity"], 3);
    sender
        .send_text(
            r#"{"type":"order_updated","deviceId":"pc1","orderIndex":1.0,"data":{"price":13.75}}"#,
        )
        .await;
    let modified = other.until_type("order_modified").await;
    assert_eq!(modified["data"]["price"], 13.75);
    assert_eq!(modified["orderIndex"], 1);
    // Stored without loss: REST and the snapshot say the same.
    let (_, device) = app
        .call_json(
            "GET",
            "/api/devices/pc1",
            &app.cashier_token("main"),
            None,
            None,
        )
        .await;
    let orders = device["orders"].to_string();
    assert!(orders.contains("\"price\":1000.0"), "{orders}");
    assert!(orders.contains("\"price\":13.75"), "{orders}");
    assert!(orders.contains("\"price\":500,"), "{orders}");
    let (_, hello) = app.terminal("till-3", "main", json!({})).await;
    assert!(
        hello["devices"].to_string().contains("\"price\":13.75"),
        "{hello}"
    );

    // Counts stay whole, prices stay non-negative: refused, nothing changes.
    for bad in [
        r#"{"type":"order_placed","deviceId":"pc1","orders":[{"name":"x","price":1,"quantity":2.5}]}"#,
        r#"{"type":"order_placed","deviceId":"pc1","orders":[{"name":"x","price":-0.5,"quantity":1}]}"#,
        r#"{"type":"order_placed","deviceId":"pc1","orders":[{"name":"x","price":"12.5","quantity":1}]}"#,
        r#"{"type":"device_update","deviceId":"pc1","data":{"customerCount":1.5}}"#,
    ] {
        sender.send_text(bad).await;
        let err = sender.until_type("error").await;
        assert_eq!(err["code"], "VALIDATION_FAILED", "{bad}: {err}");
    }
    other.expect_silence(Duration::from_millis(300)).await;
    let (_, after) = app
        .call_json(
            "GET",
            "/api/devices/pc1",
            &app.cashier_token("main"),
            None,
            None,
        )
        .await;
    assert_eq!(after["orders"], device["orders"]);

    // The catalog takes the same numbers.
    let admin = app.token("root", "admin");
    let products = json!([{"id": "cola", "name": "Cola", "price": 1000.0}, {"id": "tea", "name": "Tea", "price": 12.5}, {"id": "w", "name": "Water", "price": 7}]);
    let (status, body) = app
        .call_json("PUT", "/api/products", &admin, None, Some(&products))
        .await;
    assert_eq!(status, 200, "{body}");
    let res = app.get("/api/products", &admin).await;
    let text = res.text().await.unwrap();
    assert!(
        text.contains("\"price\":1000.0")
            && text.contains("\"price\":12.5")
            && text.contains("\"price\":7,"),
        "{text}"
    );
    let (status, body) = app
        .call_json(
            "PUT",
            "/api/products",
            &admin,
            None,
            Some(&json!([{"id": "x", "name": "X", "price": -1.5}])),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
}

#[tokio::test]
async fn payloads_up_to_the_body_limit_are_accepted_and_the_limit_is_one_setting() {
    let app = spawn_app().await;
    let agent = app.token("alice", "agent");
    let big = "x".repeat(900 * 1024);
    let (status, body) = app
        .call_json(
            "POST",
            "/api/drafts",
            &agent,
            None,
            Some(&json!({"payload": {"notes": big}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .call_json(
            "POST",
            "/api/pending-orders",
            &agent,
            None,
            Some(&json!({"payload": {"notes": big}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let over = "x".repeat(1024 * 1024);
    let (status, _) = app
        .call_json(
            "POST",
            "/api/drafts",
            &agent,
            None,
            Some(&json!({"payload": {"notes": over}})),
        )
        .await;
    assert_eq!(status, 413);

    // One setting moves the limit for REST bodies and socket messages alike.
    let small = spawn_app_with(&[("HERALD_MAX_MESSAGE_BYTES", "4096")]).await;
    let agent = small.token("alice", "agent");
    let (status, body) = small
        .call_json(
            "POST",
            "/api/drafts",
            &agent,
            None,
            Some(&json!({"payload": {"notes": "y".repeat(5000)}})),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("4096"),
        "{body}"
    );
    let (status, _) = small
        .call_json(
            "POST",
            "/api/drafts",
            &agent,
            None,
            Some(&json!({"payload": {"notes": "y"}})),
        )
        .await;
    assert_eq!(status, 201);
    let (mut ws, _) = small.realtime_connected("alice", "").await;
    ws.send_text(&format!(
        r#"{{"type":"PING","pad":"{}"}}"#,
        "z".repeat(5000)
    ))
    .await;
    let (ended, _) = ws.until_closed(WAIT).await;
    assert_eq!(ended.code(), Some(1009), "{ended:?}");
}

#[tokio::test]
async fn a_cashier_socket_closes_at_its_token_expiry_unless_refreshed() {
    let app = spawn_app().await;
    let connect = |ws_token: String| {
        let url = app.ws_url(&format!("/ws?token={ws_token}"));
        async move {
            let mut ws = Ws::connect(&url).await.unwrap();
            ws.send_json(&json!({"type": "connect", "clientId": "till-1"}))
                .await;
            assert_eq!(ws.next_json().await["type"], "connected");
            ws
        }
    };
    // Expires in 2 s: closed with 4001 at exp, not 5 s later.
    let mut ws = connect(token_with(SECRET, "till", "cashier", 2, Some("main"))).await;
    let started = Instant::now();
    let (ended, _) = ws.until_closed(Duration::from_secs(15)).await;
    assert_eq!(ended.code(), Some(4001), "{ended:?}");
    assert!(
        started.elapsed() <= Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );

    // A refresh keeps it open past the first exp; bad refreshes are refused.
    let mut ws = connect(token_with(SECRET, "till", "cashier", 2, Some("main"))).await;
    for (bad, code) in [
        (json!({"type": "refresh_token"}), "VALIDATION_FAILED"),
        (
            json!({"type": "refresh_token", "token": "not-a-jwt"}),
            "UNAUTHORIZED",
        ),
        (
            json!({"type": "refresh_token", "token": token_with(SECRET, "till", "cashier", 600, Some("other"))}),
            "UNAUTHORIZED",
        ),
        (
            json!({"type": "refresh_token", "token": token_with(SECRET, "till", "agent", 600, None)}),
            "UNAUTHORIZED",
        ),
    ] {
        ws.send_json(&bad).await;
        let reply = ws.next_json().await;
        assert_eq!(reply["type"], "error", "{bad} -> {reply}");
        assert_eq!(reply["code"], code, "{bad} -> {reply}");
    }
    // Still the same terminal, of venue main: another terminal there hears
    // its change (none of the refused tokens took it to venue other).
    let (status, _) = app
        .call_json(
            "POST",
            "/api/devices",
            &app.cashier_token("main"),
            None,
            Some(&json!({"deviceId": "pc1"})),
        )
        .await;
    assert_eq!(status, 201);
    let (mut other, _) = app.terminal("till-2", "main", json!({})).await;
    ws.send_json(
        &json!({"type": "device_update", "deviceId": "pc1", "data": {"customerCount": 3}}),
    )
    .await;
    let heard = other.until_type("device_updated").await;
    assert_eq!(heard["clientId"], "till-1", "{heard}");
    // And it refreshes properly.
    ws.send_json(&json!({"type": "refresh_token", "token": token_with(SECRET, "till", "cashier", 600, Some("main"))}))
        .await;
    let reply = ws.until_type("token_refreshed").await;
    assert_eq!(reply["type"], "token_refreshed", "{reply}");
    assert!(reply["exp"].as_u64().unwrap() > now_secs() + 500);
    assert!(reply["timestamp"].is_string());
    tokio::time::sleep(Duration::from_secs(4)).await;
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(ws.until_type("pong").await["type"], "pong");
}

#[tokio::test]
async fn a_dashboard_socket_closes_at_exp_not_after_the_leeway() {
    let app = spawn_app().await;
    let token = token_with(SECRET, "alice", "agent", 2, None);
    let mut ws = Ws::connect(&app.ws_url(&format!("/ws/realtime?token={token}")))
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["type"], "CONNECTED");
    let started = Instant::now();
    let (ended, _) = ws.until_closed(Duration::from_secs(15)).await;
    assert_eq!(ended.code(), Some(4001));
    assert!(
        started.elapsed() <= Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn only_agents_and_admins_open_a_dashboard_stream() {
    let app = spawn_app().await;
    for role in ["cashier", "service"] {
        let token = token_with(SECRET, "alice", role, 600, None);
        let status = upgrade_status(
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                app.ws_url(&format!("/ws/realtime?token={token}")),
            )
            .unwrap(),
        )
        .await;
        assert_eq!(status, 403, "role {role}");
    }
    for role in ["agent", "admin"] {
        let token = token_with(SECRET, "alice", role, 600, None);
        let mut ws = Ws::connect(&app.ws_url(&format!("/ws/realtime?token={token}")))
            .await
            .unwrap();
        let hello = ws.next_json().await;
        assert_eq!(hello["payload"]["userId"], "alice", "role {role}");
    }
}

#[tokio::test]
async fn terminals_that_have_not_said_connect_count_toward_the_limit() {
    let app = spawn_app_with(&[("HERALD_MAX_CONNECTIONS", "2")]).await;
    let token = app.cashier_token("main");
    let mut waiting = Vec::new();
    for _ in 0..2 {
        waiting.push(
            Ws::connect(&app.ws_url(&format!("/ws?token={token}")))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = upgrade_status(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url(
            &format!("/ws/realtime?token={}", app.token("alice", "agent")),
        ))
        .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    let status = upgrade_status(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            app.ws_url(&format!("/ws?token={token}")),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    // When one leaves, its place is free again.
    waiting.pop().unwrap().close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, hello) = app.realtime_connected("alice", "").await;
    assert_eq!(hello["userId"], "alice");
}

#[tokio::test]
async fn tokens_are_redacted_however_the_query_spells_their_name() {
    let app = spawn_app().await;
    let token = app.token("alice", "agent");
    let signature = token.rsplit('.').next().unwrap().to_owned();
    for q in [
        format!("%74oken={token}"),
        format!("%54OKEN={token}"),
        format!("to%6Ben={token}&since=0"),
        format!("access%5Ftoken={token}"),
    ] {
        let _ = app
            .http
            .get(app.url(&format!("/ws/realtime?{q}")))
            .send()
            .await;
        let _ = app
            .http
            .get(app.url(&format!("/api/drafts?{q}")))
            .send()
            .await;
        let _ = app.http.get(app.url(&format!("/healthz?{q}"))).send().await;
    }
    // Every one of the 12 requests' lines, each redacted.
    let log = app.log_holds("[REDACTED]", 12).await;
    assert!(
        !log.contains(&signature),
        "the token leaked into the log:\n{log}"
    );
}

#[tokio::test]
async fn a_restart_leaves_external_workers_jobs_to_their_workers() {
    let mut app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let worker = app.token("sync-worker", "service");
    let (status, job) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "customer-sync", "params": {}})),
        )
        .await;
    assert_eq!(status, 202);
    let id = job["id"].as_str().unwrap().to_owned();
    let (status, j) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{id}/progress"),
            &worker,
            None,
            Some(&json!({"progress": 50, "label": "half"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(j["status"], "running");
    app.restart().await; // SIGKILL: herald was not running this job
    let (_, j) = app
        .call_json("GET", &format!("/api/jobs/{id}"), &alice, None, None)
        .await;
    assert_eq!(j["status"], "running", "{j}");
    assert_eq!(j["progress"], 50);
    let (status, j) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{id}/complete"),
            &worker,
            None,
            Some(&json!({"result": {"synced": 100}})),
        )
        .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["status"], "completed");
    assert_eq!(j["result"], json!({"synced": 100}));
}

#[tokio::test]
async fn a_publish_too_large_for_its_recipients_is_refused_whole() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..10_000).map(|i| format!("u{i}")).collect();
    let payload = json!({"blob": "p".repeat(100 * 1024)});
    let res = app
        .post(
            "/api/publish",
            &app.token("svc", "service"),
            &json!({"userIds": users, "type": "HUGE", "payload": payload}),
        )
        .await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "PUBLISH_TOO_LARGE", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recipients"),
        "{body}"
    );
    // Nothing of it was published.
    let (_, hello) = app.realtime_connected("u1", "").await;
    assert_eq!(hello["lastSeq"], 0);
    // The same users with a small payload go through, in one request.
    let res = app
        .post(
            "/api/publish",
            &app.token("svc", "service"),
            &json!({"userIds": users, "type": "SMALL", "payload": {"n": 1}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["seqs"]["u9999"], 1);
}

#[tokio::test]
async fn a_gap_beyond_the_maximum_replay_is_answered_with_recovered_false() {
    let app = spawn_app_with(&[
        ("HERALD_MAX_REPLAY_EVENTS", "20"),
        ("HERALD_BUFFER_EVENTS", "5"),
    ])
    .await;
    let (_, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    for i in 0..50 {
        app.publish("alice", "E", json!({"i": i})).await;
    }
    // 50 missed: over the maximum, refetch over REST.
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
        .await;
    let done = ws.next_json().await;
    assert_eq!(done["type"], "REPLAY_COMPLETE", "{done}");
    assert_eq!(done["payload"]["recovered"], false);
    assert_eq!(done["payload"]["replayed"], 0);
    assert_eq!(done["payload"]["lastSeq"], 50);
    // Live events still follow.
    app.publish("alice", "LIVE", json!({})).await;
    assert_eq!(ws.next_json().await["seq"], 51);
    // 20 missed: replayed from the database (the ring holds 5), in pages.
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=31&epoch={epoch}"))
        .await;
    let mut got = Vec::new();
    loop {
        let ev = ws.next_json().await;
        if ev["type"] == "REPLAY_COMPLETE" {
            assert_eq!(ev["payload"]["recovered"], true, "{ev}");
            assert_eq!(ev["payload"]["replayed"], 20);
            break;
        }
        got.push(ev);
    }
    assert_seqs(&got, 32, 51);
    // lastEventTs obeys the same maximum.
    let (mut ws, _) = app.realtime_connected("alice", "lastEventTs=0").await;
    let done = ws.until_type("REPLAY_COMPLETE").await;
    assert_eq!(done["payload"]["recovered"], false, "{done}");
}

#[tokio::test]
async fn huge_replays_are_paged_and_other_users_keep_flowing() {
    // Publishes as fast as it can with one token: above the default REST limit.
    let app = spawn_app_with(&[
        ("HERALD_BUFFER_EVENTS", "10"),
        ("HERALD_REST_RATE", "100000"),
        ("HERALD_REST_BURST", "100000"),
    ])
    .await;
    let (_, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    // 4,000 events of 4 KiB (16 MiB of history), published in batches.
    let blob = "r".repeat(4096);
    let svc = app.token("svc", "service");
    for chunk in 0..40 {
        let mut tasks = Vec::new();
        for i in 0..100 {
            let (http, url, token, blob) = (
                app.http.clone(),
                app.url("/api/publish"),
                svc.clone(),
                blob.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let res = http.post(url).bearer_auth(token)
                    .json(&json!({"userId": "alice", "type": "BIG", "payload": {"i": chunk * 100 + i, "blob": blob}}))
                    .send().await.unwrap();
                assert_eq!(res.status(), 200);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    let base = rss_kib(app.pid());
    // Six devices resume from 0 and read slowly.
    let mut slow = Vec::new();
    for _ in 0..6 {
        let (ws, _) = app
            .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
            .await;
        slow.push(ws);
    }
    // Meanwhile bob's events arrive at once.
    let (mut bob, _) = app.realtime_connected("bob", "").await;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let sent = Instant::now();
        app.publish("bob", "QUICK", json!({"i": i})).await;
        let ev = bob.next_json().await;
        assert_eq!(ev["seq"], i + 1);
        worst = worst.max(sent.elapsed());
    }
    assert!(worst < Duration::from_secs(2), "bob waited {worst:?}");
    let grown = rss_kib(app.pid()).saturating_sub(base);
    // Unpaged, six replays of 16 MiB each (plus frames) grow the server by
    // far more than this.
    assert!(
        grown < 48 * 1024,
        "the server grew by {grown} KiB while replaying"
    );
    // Every device still gets the whole history, in order.
    for ws in slow.iter_mut() {
        let mut next = 1u64;
        loop {
            let ev = ws.next_json().await;
            if ev["type"] == "REPLAY_COMPLETE" {
                assert_eq!(ev["payload"]["recovered"], true);
                assert_eq!(ev["payload"]["replayed"], 4000);
                break;
            }
            assert_eq!(ev["seq"], next);
            next += 1;
        }
    }
}

/// A venue's changes are committed in groups (issue 26): a burst from one
/// terminal shares its fsyncs, and still every valid change reaches the
/// other terminal once, in the order sent, with consecutive seqs, while
/// every invalid one gets its own error and changes nothing. Drafts written
/// concurrently share fsyncs the same way.
#[tokio::test]
async fn a_burst_of_writes_shares_its_fsyncs_and_keeps_every_answer() {
    let shims = tempfile::tempdir().unwrap();
    let shim = build_shim(shims.path(), "fsync_count");
    let log = shims.path().join("fsyncs");
    let app = spawn_sqlite_app_with(&[
        ("LD_PRELOAD", shim.to_str().unwrap()),
        ("HERALD_FSYNC_LOG", log.to_str().unwrap()),
        ("HERALD_CASHIER_RATE", "100000"),
    ])
    .await;
    let till = app.cashier_token("main");
    let (status, _) = app
        .call_json(
            "POST",
            "/api/devices",
            &till,
            None,
            Some(&json!({"deviceId": "pc1"})),
        )
        .await;
    assert_eq!(status, 201);
    let (mut a, _) = app.terminal("t-a", "main", json!({})).await;
    let (mut b, connected) = app.terminal("t-b", "main", json!({})).await;
    let first_seq = connected["seq"].as_u64().unwrap() + 1;

    let before = lines(&log);
    let (mut valid, mut invalid) = (Vec::new(), 0);
    for i in 0..400 {
        if i % 10 == 9 {
            a.send_json(
                &json!({"type": "device_update", "deviceId": "pc99", "data": {"isRunning": true}}),
            )
            .await;
            invalid += 1;
        } else {
            let name = format!("item-{i}");
            a.send_json(&json!({"type": "order_placed", "deviceId": "pc1",
                "orders": [{"name": name, "price": 1000, "quantity": 1}]}))
                .await;
            valid.push(name);
        }
    }
    let mut errors = 0;
    while errors < invalid {
        let got = a.next_json().await;
        assert_eq!(got["type"], "error", "{got}");
        assert_eq!(got["code"], "DEVICE_NOT_FOUND", "{got}");
        errors += 1;
    }
    for (i, name) in valid.iter().enumerate() {
        let got = b.next_json().await;
        assert_eq!(got["type"], "order_added", "{got}");
        assert_eq!(
            got["orders"][0]["name"],
            json!(name),
            "change {i} out of order"
        );
        assert_eq!(got["seq"], first_seq + i as u64, "{got}");
    }
    b.expect_silence(Duration::from_millis(300)).await;
    a.expect_silence(Duration::from_millis(100)).await;
    let fsyncs = lines(&log) - before;
    eprintln!("{fsyncs} fsyncs for {} venue changes", valid.len());
    assert!(
        fsyncs < valid.len() / 2,
        "{fsyncs} fsyncs for {} changes: they were not committed in groups",
        valid.len()
    );
    // Stored, all of them, nothing from the refused ones.
    let (_, devices) = app
        .call_json("GET", "/api/devices", &till, None, None)
        .await;
    let orders = devices
        .as_array()
        .and_then(|d| d.iter().find(|d| d["deviceId"] == "pc1"))
        .map(|d| d["orders"].as_array().map_or(0, Vec::len));
    assert_eq!(orders, Some(valid.len()), "{devices}");

    // Drafts from concurrent requests share fsyncs too.
    let agent = app.token("alice", "agent");
    let before = lines(&log);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (http, url, agent) = (app.http.clone(), app.url("/api/drafts"), agent.clone());
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(agent)
                .json(&json!({"payload": {"i": i}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let fsyncs = lines(&log) - before;
    eprintln!("{fsyncs} fsyncs for 60 concurrent drafts");
    assert!(
        fsyncs < 60,
        "{fsyncs} fsyncs for 60 concurrent drafts: not one group shared a commit"
    );
}
