//! Several nodes on one PostgreSQL database (the test's own): devices on
//! either node hear changes written through either node, in one seq order;
//! admin calls cover every node; jobs run once; a lost notification only
//! delays; a killed node loses nothing acknowledged.

use std::{collections::BTreeMap, time::Duration};

use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};

use crate::{fake_erp, helpers::*, postgres::Postgres};

/// Two (or more) nodes; the database stops after them.
pub struct Nodes {
    pub apps: Vec<TestApp>,
    pub pg: Postgres,
}

impl Nodes {
    pub async fn start(n: usize, env: &[(&str, &str)]) -> Nodes {
        let pg = Postgres::start();
        let url = pg.url();
        let mut apps = Vec::new();
        for i in 0..n {
            let name = format!("node-{}", (b'a' + i as u8) as char);
            let mut all = vec![
                ("HERALD_DATABASE_URL", url.as_str()),
                ("HERALD_NODE_NAME", name.as_str()),
                ("HERALD_POLL_MS", "200"),
                ("RUST_LOG", "info,herald::cluster=debug"),
            ];
            all.extend_from_slice(env);
            apps.push(spawn_app_in(tempfile::tempdir().unwrap(), &all, &[]).await);
        }
        Nodes { apps, pg }
    }

    pub async fn sql(&self, sql: &str) {
        let db = Database::connect(self.pg.url()).await.unwrap();
        db.execute_unprepared(sql).await.unwrap();
        db.close().await.unwrap();
    }
}

impl Nodes {
    /// The end of every node's log, for a failure's report.
    fn logs(&self) -> String {
        self.apps
            .iter()
            .enumerate()
            .map(|(i, app)| {
                let log = app.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                format!("--- node {i} ---\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Reads `n` events (skipping transient ones), each within [`WAIT`];
/// answers them, or how many came before one did not.
async fn read_stored(ws: &mut Ws, n: usize) -> Result<Vec<Value>, usize> {
    let mut out = Vec::new();
    while out.len() < n {
        match ws.next_json_within(WAIT).await {
            Some(ev) if ev["seq"].is_null() => {}
            Some(ev) => out.push(ev),
            None => return Err(out.len()),
        }
    }
    Ok(out)
}

/// Reads `n` events (skipping transient ones); answers them.
async fn stored(ws: &mut Ws, n: usize) -> Vec<Value> {
    read_stored(ws, n)
        .await
        .unwrap_or_else(|got| panic!("only {got} of {n} events arrived"))
}

/// [`stored`], but a timeout reports every node's log.
async fn stored_or_report(ws: &mut Ws, n: usize, nodes: &Nodes) -> Vec<Value> {
    read_stored(ws, n).await.unwrap_or_else(|got| {
        panic!(
            "only {got} of {n} events arrived within {WAIT:?}\n{}",
            nodes.logs()
        )
    })
}

/// Publishes `{"n": n}` to `user` through `app`; answers the response.
async fn try_publish(app: &TestApp, user: &str, n: u64) -> reqwest::Response {
    app.http
        .post(app.url("/api/publish"))
        .bearer_auth(app.token("svc", "service"))
        .json(&json!({"userId": user, "type": "NOTE", "payload": {"n": n}}))
        .send()
        .await
        .unwrap()
}

async fn publish_via(app: &TestApp, user: &str, n: u64) -> u64 {
    let res = try_publish(app, user, n).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["seqs"][user]
        .as_u64()
        .unwrap_or_else(|| panic!("{body}"))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn writers_on_every_node_give_every_device_on_every_node_one_gapless_sequence() {
    // Three nodes: each hears two others, whose commits interleave.
    let nodes = Nodes::start(3, &[("HERALD_BUFFER_EVENTS", "10")]).await;
    let (a, b, c) = (&nodes.apps[0], &nodes.apps[1], &nodes.apps[2]);
    let (mut a1, hello) = a.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    let (mut a2, _) = a.realtime_connected("alice", "").await;
    let (mut b1, hello_b) = b.realtime_connected("alice", "").await;
    assert_eq!(hello_b["epoch"], epoch.as_str(), "one database, one epoch");
    let (mut c1, _) = c.realtime_connected("alice", "").await;
    // 80 concurrent writers, spread over the three nodes.
    let mut tasks = Vec::new();
    for n in 0..80u64 {
        let app = &nodes.apps[(n % 3) as usize];
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/publish"),
            app.token("svc", "service"),
        );
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"userId": "alice", "type": "NOTE", "payload": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut orders = Vec::new();
    for ws in [&mut a1, &mut a2, &mut b1, &mut c1] {
        let events = stored(ws, 80).await;
        assert_seqs(&events, 1, 80);
        orders.push(
            events
                .iter()
                .map(|e| e["payload"]["n"].clone())
                .collect::<Vec<_>>(),
        );
        ws.expect_silence(Duration::from_millis(300)).await;
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[0], orders[2], "every node delivers one order");
    assert_eq!(orders[0], orders[3], "every node delivers one order");
    // A REST change through B reaches the device on A too.
    let (status, _) = b
        .call_json(
            "POST",
            "/api/drafts",
            &b.token("alice", "agent"),
            None,
            Some(&json!({"payload": {"x": 1}})),
        )
        .await;
    assert_eq!(status, 201);
    let ev = stored(&mut a1, 1).await;
    assert_eq!(ev[0]["type"], "DRAFT_CREATED");
    assert_eq!(ev[0]["seq"], 81);
    // A late device on either node replays the same (the ring keeps 10:
    // this is the database's truth).
    for app in [a, b, c] {
        let (mut late, hello) = app
            .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
            .await;
        assert_eq!(hello["lastSeq"], 81);
        let events = stored(&mut late, 81).await;
        assert_seqs(&events, 1, 81);
        let replayed: Vec<Value> = events[..80]
            .iter()
            .map(|e| e["payload"]["n"].clone())
            .collect();
        assert_eq!(replayed, orders[0]);
        assert_eq!(late.next_json().await["type"], "REPLAY_COMPLETE");
    }
    // Transient events cross too (a worker's progress, reported through A).
    let (_, job) = a
        .call_json(
            "POST",
            "/api/jobs",
            &a.token("alice", "agent"),
            None,
            Some(&json!({"kind": "customer-sync"})),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    let (status, body) = a
        .call_json(
            "POST",
            &format!("/api/jobs/{id}/progress"),
            &a.token("worker", "service"),
            None,
            Some(&json!({"progress": 40, "label": "half"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    loop {
        let ev = tokio::time::timeout(WAIT, b1.next_json())
            .await
            .expect("progress reaches B");
        if ev["type"] == "JOB_PROGRESS" {
            assert_eq!(ev["payload"]["progress"], 40);
            assert!(ev["seq"].is_null());
            break;
        }
    }
}

#[tokio::test]
async fn a_venue_with_terminals_on_both_nodes_hears_every_change_once() {
    let nodes = Nodes::start(2, &[]).await;
    let (a, b) = (&nodes.apps[0], &nodes.apps[1]);
    let (status, _) = a
        .call_json(
            "POST",
            "/api/devices",
            &a.cashier_token("cafe"),
            None,
            Some(&json!({"deviceId": "pc1"})),
        )
        .await;
    assert_eq!(status, 201);
    let token = |id: &str| token_with(SECRET, id, "cashier", 3600, Some("cafe"));
    let open = |app: &TestApp, id: &str| {
        let url = app.ws_url(&format!("/ws?token={}", token(id)));
        let id = id.to_owned();
        async move {
            let mut ws = Ws::connect(&url).await.unwrap();
            ws.send_json(&json!({"type": "connect", "clientId": id, "timestamp": "2026-02-03T02:25:33+03:00"})).await;
            let hello = ws.next_json().await;
            assert_eq!(hello["type"], "connected", "{hello}");
            (ws, hello)
        }
    };
    let (mut t1, h1) = open(a, "t1").await;
    let (mut t2, h2) = open(b, "t2").await;
    assert_eq!(h1["devices"], h2["devices"], "one snapshot on both nodes");
    let update = |notes: &str| json!({"type": "device_update", "deviceId": "pc1", "data": {"notes": notes}, "timestamp": "2026-02-03T02:25:33+03:00"});
    t1.send_json(&update("from a")).await;
    let got = t2.next_json().await;
    assert_eq!(got["type"], "device_updated", "{got}");
    assert_eq!(got["clientId"], "t1");
    let first = got["seq"].as_u64().unwrap();
    t2.send_json(&update("from b")).await;
    let got = t1.next_json().await;
    assert_eq!(got["clientId"], "t2");
    assert_eq!(
        got["seq"].as_u64(),
        Some(first + 1),
        "one venue sequence: {got}"
    );
    // Nobody gets their own change back, from either path.
    t1.expect_silence(Duration::from_millis(500)).await;
    t2.expect_silence(Duration::from_millis(100)).await;
    let (status, dev) = b
        .call_json(
            "GET",
            "/api/devices/pc1",
            &b.cashier_token("cafe"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(dev["notes"], "from b");
}

#[tokio::test]
async fn the_admin_on_one_node_sees_and_kicks_sockets_on_the_other() {
    let nodes = Nodes::start(2, &[]).await;
    let (a, b) = (&nodes.apps[0], &nodes.apps[1]);
    let (mut on_a, _) = a.realtime_connected("alice", "").await;
    let (_on_b, _) = b.realtime_connected("bob", "").await;
    let admin = b.token("root", "admin");
    // Node A's list reaches B with its next heartbeat.
    let mut list = Value::Null;
    for _ in 0..100 {
        list = b
            .call_json("GET", "/api/admin/connections", &admin, None, None)
            .await
            .1;
        if list.as_array().map(Vec::len) == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = list.as_array().expect("a list").clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let alice = list.iter().find(|c| c["userId"] == "alice").unwrap();
    assert_eq!(alice["node"], "node-a");
    let bob = list.iter().find(|c| c["userId"] == "bob").unwrap();
    assert_eq!(bob["node"], "node-b");
    let (_, stats) = b
        .call_json("GET", "/api/websocket/stats", &admin, None, None)
        .await;
    assert_eq!(stats["totalConnections"], 2, "{stats}");
    assert_eq!(stats["activeUsers"], 2);
    assert_eq!(stats["nodes"].as_array().unwrap().len(), 2, "{stats}");
    let id = alice["id"].as_str().unwrap();
    let (status, _) = b
        .call_json(
            "DELETE",
            &format!("/api/admin/connections/{id}"),
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (ended, _) = on_a.until_closed(WAIT).await;
    assert_eq!(ended.code(), Some(4003), "{ended:?}");
    let (status, _) = b
        .call_json(
            "DELETE",
            "/api/admin/connections/nobody",
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn concurrent_conditional_puts_through_both_nodes_have_one_winner() {
    let nodes = Nodes::start(2, &[]).await;
    let (a, b) = (&nodes.apps[0], &nodes.apps[1]);
    let token = a.token("alice", "agent");
    let (status, draft) = a
        .call_json(
            "POST",
            "/api/drafts",
            &token,
            None,
            Some(&json!({"payload": {"v": 0}})),
        )
        .await;
    assert_eq!(status, 201);
    let id = draft["id"].as_str().unwrap().to_owned();
    let base = draft["serverUpdatedAt"].clone();
    for round in 0..3 {
        let mut tasks = Vec::new();
        for n in 0..12 {
            let app = if n % 2 == 0 { a } else { b };
            let (http, url, token, base) = (
                app.http.clone(),
                app.url(&format!("/api/drafts/{id}")),
                token.clone(),
                base.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let res = http
                    .put(url)
                    .bearer_auth(token)
                    .json(&json!({"payload": {"v": n}, "baseServerUpdatedAt": base}))
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            }));
        }
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        codes.sort();
        if round == 0 {
            assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
            assert_eq!(codes.iter().filter(|c| **c == 409).count(), 11, "{codes:?}");
        } else {
            assert!(
                codes.iter().all(|c| *c == 409),
                "a stale base never wins: {codes:?}"
            );
        }
    }
    // Unconditional writes through both nodes: strictly increasing stamps.
    let mut stamps = Vec::new();
    for n in 0..10 {
        let app = if n % 2 == 0 { a } else { b };
        let (status, d) = app
            .call_json(
                "PUT",
                &format!("/api/drafts/{id}"),
                &token,
                None,
                Some(&json!({"payload": {"w": n}})),
            )
            .await;
        assert_eq!(status, 200);
        stamps.push(d["serverUpdatedAt"].as_str().unwrap().to_owned());
    }
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
}

#[tokio::test]
async fn a_lost_notification_only_delays_delivery_and_is_counted() {
    let nodes = Nodes::start(2, &[("HERALD_POLL_MS", "300")]).await;
    let (a, b) = (&nodes.apps[0], &nodes.apps[1]);
    let (mut on_b, _) = b.realtime_connected("alice", "").await;
    publish_via(a, "alice", 1).await;
    assert_eq!(
        stored_or_report(&mut on_b, 1, &nodes).await[0]["payload"]["n"],
        1
    );
    // Kill both nodes' LISTEN connections: they are made again and counted.
    nodes
        .sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
        .await;
    let mut reconnects = 0.0;
    for _ in 0..100 {
        reconnects = metric(&metrics(b).await, "herald_tailer_notify_reconnects_total");
        if reconnects >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reconnects >= 1.0,
        "the LISTEN connection is made again, and counted"
    );
    publish_via(a, "alice", 2).await;
    assert_eq!(stored(&mut on_b, 1).await[0]["payload"]["n"], 2);
    // No notification at all now: polling alone delivers, and says so.
    nodes
        .sql("ALTER TABLE events DISABLE TRIGGER herald_events_notify")
        .await;
    let before = metric(&metrics(b).await, "herald_tailer_poll_fallbacks_total");
    let started = std::time::Instant::now();
    publish_via(a, "alice", 3).await;
    assert_eq!(stored(&mut on_b, 1).await[0]["payload"]["n"], 3);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "delayed by about the poll interval, not lost"
    );
    // Counted once the read ends (just after the delivery).
    let mut after = before;
    for _ in 0..40 {
        after = metric(&metrics(b).await, "herald_tailer_poll_fallbacks_total");
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        after > before,
        "a poll that found unannounced rows is counted ({before} -> {after}); log:\n{}",
        b.log()
    );
    let text = metrics(b).await;
    assert!(
        text.contains("herald_tailer_lag_seconds_count"),
        "lag is exported"
    );
}

#[tokio::test]
async fn a_node_killed_under_load_loses_nothing_acknowledged() {
    let mut nodes = Nodes::start(2, &[("HERALD_BUFFER_EVENTS", "5")]).await;
    let (mut on_a, hello) = nodes.apps[0].realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    let (mut on_b, _) = nodes.apps[1].realtime_connected("alice", "").await;
    // Writers publish through both nodes for 4 s; each keeps what was
    // acknowledged: the seq answered, and what it published under it.
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let app = &nodes.apps[(w % 2) as usize];
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/publish"),
            app.token("svc", "service"),
        );
        writers.push(tokio::spawn(async move {
            let mut acked: Vec<(u64, Value)> = Vec::new();
            let started = std::time::Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(4) {
                n += 1;
                let payload = json!({"w": w, "n": n});
                let res = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"userId": "alice", "type": "NOTE", "payload": payload}))
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => {
                        let body: Value = r.json().await.unwrap();
                        acked.push((body["seqs"]["alice"].as_u64().unwrap(), payload));
                    }
                    // PostgreSQL is down: refused (503), nothing stored.
                    Ok(r) => assert_eq!(r.status(), 503, "only 503 while the database is down"),
                    // Node A is gone (an answer cut off, or no connection).
                    Err(_) if w % 2 == 0 => break,
                    Err(e) if e.is_timeout() => {}
                    Err(e) => panic!("writer {w}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            acked
        }));
    }
    // PostgreSQL itself dies (immediate stop: no shutdown checkpoint) and
    // comes back; then node A is killed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes.pg.stop_immediately();
    tokio::time::sleep(Duration::from_millis(700)).await;
    nodes.pg.restart();
    tokio::time::sleep(Duration::from_millis(800)).await;
    nodes.apps[0].kill();
    let mut acked: Vec<(u64, Value)> = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    acked.sort_by_key(|(seq, _)| *seq);
    assert!(acked.len() > 50, "writes went through: {}", acked.len());
    let last = acked.last().unwrap().0;
    // The device on B saw every event, in order.
    let on_b_events = stored(&mut on_b, last as usize).await;
    assert_seqs(&on_b_events, 1, last);
    // Every acknowledged seq holds what was published under it.
    let by_seq: BTreeMap<u64, &Value> = on_b_events
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), &e["payload"]))
        .collect();
    for (seq, payload) in &acked {
        assert_eq!(
            by_seq.get(seq),
            Some(&payload),
            "seq {seq} was answered for {payload}"
        );
    }
    // A's device saw some; it reconnects to B and replays the rest.
    let (_, before_death) = on_a.until_closed(WAIT).await;
    let mut seen = 0;
    for s in before_death.iter().filter_map(|ev| ev["seq"].as_u64()) {
        assert_eq!(s, seen + 1, "in order, no gap, before the node died");
        seen = s;
    }
    let (mut again, _) = nodes.apps[1]
        .realtime_connected("alice", &format!("since={seen}&epoch={epoch}"))
        .await;
    let replayed = stored(&mut again, (last - seen) as usize).await;
    assert_seqs(&replayed, seen + 1, last);
    for ev in &replayed {
        let seq = ev["seq"].as_u64().unwrap();
        assert_eq!(
            Some(&&ev["payload"]),
            by_seq.get(&seq),
            "replayed seq {seq}"
        );
    }
    assert_eq!(again.next_json().await["type"], "REPLAY_COMPLETE");
}

/// Built-in jobs: a node that restarts fails nothing another node runs;
/// a dead node's running job is failed as interrupted and its queued job
/// runs on the survivor; no order reaches the order system twice.
#[tokio::test]
async fn built_in_jobs_run_once_across_restarts_and_a_dead_nodes_jobs_are_taken_over() {
    // The first two orders take 1.5 s each; the next one hangs.
    let erp = fake_erp::start(|_, n| match n {
        0..=1 => (
            200,
            json!({"orderNumber": format!("N{n}")}),
            Duration::from_millis(1500),
        ),
        2 => (200, json!({"orderNumber": "LATE"}), Duration::from_secs(60)),
        _ => (200, json!({"orderNumber": format!("N{n}")}), Duration::ZERO),
    })
    .await;
    let env = [
        ("HERALD_ERP_URL", erp.url.as_str()),
        ("HERALD_ERP_TIMEOUT_SECS", "120"),
        ("HERALD_NODE_LEASE_MS", "1500"),
        ("HERALD_JOB_CONCURRENCY", "1"),
    ];
    let mut nodes = Nodes::start(2, &env).await;
    let token = nodes.apps[0].token("alice", "agent");
    let make_orders = |app: &TestApp, n: usize| {
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/pending-orders"),
            token.clone(),
        );
        async move {
            let batch: Vec<Value> = (0..n).map(|i| json!({"payload": {"line": i}})).collect();
            let body: Value = http
                .post(url)
                .bearer_auth(token)
                .json(&batch)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["created"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let job_status = |app: &TestApp, id: &str| {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!("/api/jobs/{id}")),
            token.clone(),
        );
        async move {
            let v: Value = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let first = make_orders(&nodes.apps[0], 2).await;
    let (status, job1) = nodes.apps[0]
        .call_json(
            "POST",
            "/api/jobs",
            &token,
            None,
            Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": first}})),
        )
        .await;
    assert_eq!(status, 202, "{job1}");
    let job1 = job1["id"].as_str().unwrap().to_owned();
    // Node B restarts (SIGKILL) while A runs job 1: job 1 is left alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes.apps[1].restart().await;
    let mut j = Value::Null;
    for _ in 0..100 {
        j = job_status(&nodes.apps[1], &job1).await;
        if j["status"] == "completed" || j["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(j["status"], "completed", "{j}");
    // Job 2 hangs on its first order on A; job 3 waits behind it (one at a time).
    let second = make_orders(&nodes.apps[0], 1).await;
    let third = make_orders(&nodes.apps[0], 1).await;
    let mut ids = Vec::new();
    for orders in [&second, &third] {
        let (_, job) = nodes.apps[0]
            .call_json(
                "POST",
                "/api/jobs",
                &token,
                None,
                Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": orders}})),
            )
            .await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    for _ in 0..100 {
        if erp.received().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(erp.received().len(), 3);
    assert_eq!(
        job_status(&nodes.apps[1], &ids[1]).await["status"],
        "queued"
    );
    nodes.apps[0].kill();
    // After A's lease, B fails the running job and runs the queued one.
    let mut states = (Value::Null, Value::Null);
    for _ in 0..150 {
        states = (
            job_status(&nodes.apps[1], &ids[0]).await,
            job_status(&nodes.apps[1], &ids[1]).await,
        );
        if states.0["status"] == "failed" && states.1["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(states.0["status"], "failed", "{:?}", states.0);
    assert_eq!(states.0["error"], "interrupted");
    assert_eq!(states.1["status"], "completed", "{:?}", states.1);
    let (_, list) = nodes.apps[1]
        .call_json("GET", "/api/pending-orders", &token, None, None)
        .await;
    let order = list
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == second[0].as_str())
        .unwrap();
    // It was being sent when its node died (the order system has it, its
    // answer hangs): in doubt, not free to submit again blindly.
    assert_eq!(order["status"], "failed", "{order}");
    assert!(
        order["error"].as_str().unwrap().starts_with("in doubt"),
        "{order}"
    );
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for r in erp.received() {
        *keys
            .entry(r.idempotency_key.unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys.values().all(|n| *n == 1),
        "no order was sent twice: {keys:?}"
    );
}

/// PostgreSQL goes away: writes answer 503 saying nothing was applied,
/// sockets stay open, and when it is back delivery resumes with no hole.
#[tokio::test]
async fn while_postgresql_is_down_writes_answer_503_and_delivery_resumes_after() {
    let nodes = Nodes::start(2, &[]).await;
    let (a, b) = (&nodes.apps[0], &nodes.apps[1]);
    let (mut on_b, _) = b.realtime_connected("alice", "").await;
    assert_eq!(publish_via(a, "alice", 1).await, 1);
    assert_eq!(stored_or_report(&mut on_b, 1, &nodes).await[0]["seq"], 1);
    nodes.pg.stop();
    let res = try_publish(a, "alice", 2).await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("retry later"),
        "{body}"
    );
    // The device's socket stays open: it still answers a ping.
    on_b.send_json(&json!({"type": "PING"})).await;
    let pong = on_b.until_type("PONG").await;
    assert_eq!(pong["type"], "PONG");
    nodes.pg.restart();
    // The pools reconnect on their own; the first write may race that.
    let mut seq = None;
    for _ in 0..50 {
        let res = try_publish(a, "alice", 3).await;
        if res.status() == 200 {
            let body: Value = res.json().await.unwrap();
            seq = body["seqs"]["alice"].as_u64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seq, Some(2), "the refused write took no seq");
    let ev = stored_or_report(&mut on_b, 1, &nodes).await;
    assert_eq!(ev[0]["seq"], 2);
    assert_eq!(ev[0]["payload"]["n"], 3);
}

/// One `Idempotency-Key` sent through two nodes at once: one publish, and
/// both requests answered with its seqs.
#[tokio::test]
async fn an_idempotency_key_repeated_through_both_nodes_at_once_publishes_once() {
    let nodes = Nodes::start(2, &[]).await;
    let (a, b) = (&nodes.apps[0], &nodes.apps[1]);
    let send = |app: &TestApp, key: String, n: u64| {
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/publish"),
            app.token("svc", "service"),
        );
        async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"userId": "alice", "type": "NOTE", "payload": {"n": n}}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    for n in 0..20u64 {
        let key = format!("k-{n}");
        let ((sa, ba), (sb, bb)) = tokio::join!(send(a, key.clone(), n), send(b, key, n));
        assert_eq!((sa, sb), (200, 200), "{ba} {bb}");
        assert_eq!(ba["seqs"], bb["seqs"], "one answer for one key");
    }
    let (_, hello) = a.realtime_connected("alice", "").await;
    assert_eq!(hello["lastSeq"], 20, "20 keys, 20 events");
}

/// The README's start: two nodes launched together on a fresh database.
/// Both come up (they take turns migrating), three times out of three, and
/// neither logs PostgreSQL's "already exists, skipping" notices.
#[tokio::test]
async fn two_nodes_started_together_on_a_fresh_database_both_come_up() {
    let pg = Postgres::start();
    for round in 0..3 {
        let db = format!("fresh{round}");
        let admin = Database::connect(pg.url()).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = format!("postgres://postgres@127.0.0.1:{}/{db}", pg.port);
        let start = |name: &'static str| {
            let url = url.clone();
            async move {
                spawn_app_in(
                    tempfile::tempdir().unwrap(),
                    &[
                        ("HERALD_DATABASE_URL", url.as_str()),
                        ("HERALD_NODE_NAME", name),
                    ],
                    &[],
                )
                .await
            }
        };
        let (a, b) = tokio::join!(start("a"), start("b"));
        for app in [&a, &b] {
            let res = app.http.get(app.url("/healthz")).send().await.unwrap();
            assert_eq!(res.status(), 200, "round {round}");
            assert!(
                !app.log().contains("already exists"),
                "round {round}: {}",
                app.log()
            );
        }
        // The two are one server: a device on b hears a publish through a.
        let (mut ws, _) = b.realtime_connected("alice", "").await;
        a.publish("alice", "BOTH_UP", json!({"round": round})).await;
        match ws.next_json_within(WAIT).await {
            Some(ev) => assert_eq!(
                (ev["type"].as_str(), ev["seq"].as_u64()),
                (Some("BOTH_UP"), Some(1))
            ),
            None => panic!(
                "round {round}: node b never heard node a's publish\n--- a:\n{}\n--- b:\n{}",
                a.log(),
                b.log()
            ),
        }
    }
}
