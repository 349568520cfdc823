//! Several nodes when the database is shared with others, stalls or drops:
//! another database's transaction must not hold delivery; a long one in
//! herald's own database holds only its own rows and is named; what one
//! node tells another survives the other's stall; a job runner cut off
//! from the database stops before it sends an order another node may
//! send too.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use serde_json::{json, Value};

use crate::{cluster::Nodes, fake_erp, helpers::*, proxy::Proxy};

/// Transactions committed or rolled back on the whole server so far.
async fn server_transactions(pg: &DatabaseConnection) -> i64 {
    let row = pg
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT sum(xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// Reads events until one of `kind` arrives within `wait`.
async fn arrives_within(ws: &mut Ws, kind: &str, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = ws.next_json_within(left).await?;
        if ev["type"] == kind {
            return Some(ev);
        }
    }
}

/// The case: `BEGIN; SELECT pg_current_xact_id();` left open in an
/// unrelated database of the same server held every cross-node event for
/// as long as it stayed open, and two idle nodes then polled every 3 ms
/// (17 → 768 transactions a second). Now delivery goes on, and idle nodes
/// stay under ten transactions a second between them.
#[tokio::test]
async fn another_databases_open_transaction_stalls_nothing_and_idle_nodes_stay_quiet() {
    let nodes = Nodes::start(2, &[("HERALD_POLL_MS", "2000")]).await;
    nodes.sql("CREATE DATABASE unrelated").await;
    let other_url = format!("postgres://postgres@127.0.0.1:{}/unrelated", nodes.pg.port);
    let other = Database::connect(other_url).await.unwrap();
    let held = other.begin().await.unwrap();
    held.execute_unprepared("SELECT pg_current_xact_id()")
        .await
        .unwrap();

    let (mut ws, _) = nodes.apps[1].realtime_connected("alice", "").await;
    for i in 0..5 {
        nodes.apps[0]
            .publish("alice", "ACROSS", json!({"i": i}))
            .await;
        let ev = arrives_within(&mut ws, "ACROSS", Duration::from_secs(2))
            .await
            .unwrap_or_else(|| {
                panic!("event {i} did not cross while the other database's transaction was open")
            });
        assert_eq!(ev["payload"]["i"], i);
    }

    // Idle (the transaction still open): the two nodes' own transactions.
    // PostgreSQL counts a backend's transactions when it flushes its stats
    // (an idle backend within 10 s), so the startup's are let settle first.
    let pg = Database::connect(nodes.pg.url()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let before = server_transactions(&pg).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = server_transactions(&pg).await;
    let per_second = (after - before) as f64 / 10.0;
    println!("two idle nodes: {per_second:.1} transactions a second");
    assert!(
        per_second < 10.0,
        "two idle nodes made {per_second:.1} transactions a second"
    );
    held.rollback().await.unwrap();
    let metrics = nodes.apps[1]
        .http
        .get(nodes.apps[1].url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "herald_tailer_lag_seconds",
        "herald_tailer_lag_last_seconds",
        "herald_tailer_waiting_transactions",
        "herald_tailer_oldest_waiting_seconds",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }
}

/// A long transaction in herald's own database (someone's `psql`) holds
/// back only its own rows: other nodes' events cross meanwhile, and after
/// 5 s the log names the backend that holds it.
#[tokio::test]
async fn a_long_transaction_in_heralds_database_is_named_and_holds_only_itself() {
    let nodes = Nodes::start(2, &[]).await;
    let herald_db = Database::connect(nodes.pg.url()).await.unwrap();
    let held = herald_db.begin().await.unwrap();
    held.execute_unprepared("SELECT pg_current_xact_id()")
        .await
        .unwrap();
    let (mut ws, _) = nodes.apps[1].realtime_connected("alice", "").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        nodes.apps[0].publish("alice", "ACROSS", json!({})).await;
        assert!(
            arrives_within(&mut ws, "ACROSS", Duration::from_secs(2))
                .await
                .is_some(),
            "an event was held behind a transaction that wrote none of it"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let log = nodes.apps[1].log();
        if log.contains("has been open for") && log.contains("pid ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log line names the backend:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    held.rollback().await.unwrap();
}

/// What one node tells another is kept until that node has read it: a kick
/// and a job cancel asked while the holder is stalled (SIGSTOP, longer than
/// the 60 s after which messages used to be deleted unread) are carried out
/// once it runs again. The kick is answered 202 (not yet done), not 204.
#[tokio::test]
async fn a_kick_and_a_cancel_for_a_stalled_node_are_carried_out_when_it_wakes() {
    let erp = fake_erp::start(|_, n| {
        (
            200,
            json!({"orderNumber": format!("N{n}")}),
            Duration::from_millis(1500),
        )
    })
    .await;
    // A long lease: the stalled node stays "live" (its jobs are not taken
    // over, and what is told to it is kept); its heartbeat, and so its
    // connection list, comes every 30 s.
    let env = [
        ("HERALD_ERP_URL", erp.url.as_str()),
        ("HERALD_NODE_LEASE_MS", "150000"),
        // The device must outlive the stall (it cannot answer pings meanwhile).
        ("HERALD_HEARTBEAT_SECS", "120"),
    ];
    let nodes = Nodes::start(2, &env).await;
    let (a, b) = (&nodes.apps[0], &nodes.apps[1]);
    let alice = b.token("alice", "agent");
    let admin = a.token("root", "admin");
    let (mut device, hello) = b.realtime_connected("alice", "").await;
    let conn = hello["connectionId"].as_str().unwrap().to_owned();
    // Node a must see the socket in b's connection list (b's heartbeat).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = a
            .call_json("GET", "/api/admin/connections", &admin, None, None)
            .await;
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == conn.as_str())
        {
            break;
        }
        assert!(Instant::now() < deadline, "a never listed b's socket");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A job of six orders on node b (1.5 s each).
    let (_, created) = b
        .call_json(
            "POST",
            "/api/pending-orders",
            &alice,
            None,
            Some(&json!((0..6)
                .map(|i| json!({"payload": {"i": i}}))
                .collect::<Vec<_>>())),
        )
        .await;
    let ids: Vec<Value> = created["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    let (status, job) = b
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    while erp.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unsafe {
        libc::kill(b.pid() as i32, libc::SIGSTOP);
    }
    let (status, body) = a
        .call_json(
            "DELETE",
            &format!("/api/admin/connections/{conn}"),
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(status, 202, "not done yet, so not 204: {body}");
    let (status, body) = a
        .call_json(
            "POST",
            &format!("/api/jobs/{job_id}/cancel"),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // Longer than messages used to be kept (60 s), and than the next of
    // a's heartbeats (every 30 s) that deleted them.
    tokio::time::sleep(Duration::from_secs(95)).await;
    unsafe {
        libc::kill(b.pid() as i32, libc::SIGCONT);
    }
    let (ended, _) = device.until_closed(Duration::from_secs(15)).await;
    assert_eq!(ended.code(), Some(4003), "kicked once b read it: {ended:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        let (_, job) = a
            .call_json("GET", &format!("/api/jobs/{job_id}"), &alice, None, None)
            .await;
        if job["status"] != "running" && job["status"] != "queued" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job never ended: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(
        erp.received().len() < 6,
        "the cancelled job stopped before sending every order"
    );
}

/// The partition: a node cut off from PostgreSQL for three leases
/// while it runs a 10-order job. It must stop before its next order (it
/// sent all 10 before), and what herald shows must match what the order
/// system received: no order the order system holds is left `pending`
/// (where an agent would send it again).
#[tokio::test]
async fn a_runner_cut_off_from_the_database_stops_before_its_next_order() {
    let erp = fake_erp::start(|_, n| {
        (
            200,
            json!({"orderNumber": format!("N{n}")}),
            Duration::from_millis(400),
        )
    })
    .await;
    let pg = crate::postgres::Postgres::start();
    let proxy = Proxy::start(pg.port).await;
    let direct = pg.url();
    let cut_off = proxy.url(&direct);
    let lease = "1000";
    let common = [
        ("HERALD_ERP_URL", erp.url.as_str()),
        ("HERALD_NODE_LEASE_MS", lease),
        ("HERALD_POLL_MS", "200"),
    ];
    let start = |url: String, name: &'static str| {
        let env: Vec<(String, String)> = common
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([
                ("HERALD_DATABASE_URL".into(), url),
                ("HERALD_NODE_NAME".into(), name.into()),
            ])
            .collect();
        async move {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            spawn_app_in(tempfile::tempdir().unwrap(), &env, &[]).await
        }
    };
    let a = start(direct.clone(), "a").await;
    let b = start(cut_off, "b").await;
    let alice = a.token("alice", "agent");
    let (_, created) = a
        .call_json(
            "POST",
            "/api/pending-orders",
            &alice,
            None,
            Some(&json!((0..10)
                .map(|i| json!({"payload": {"i": i}}))
                .collect::<Vec<_>>())),
        )
        .await;
    let ids: Vec<Value> = created["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    let (status, job) = b
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    while erp.received().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await; // three leases
    let sent_while_cut = erp.received().len();
    proxy.restore();
    // Node a recovers the job (b's lease ran out).
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        let (_, job) = a
            .call_json("GET", &format!("/api/jobs/{job_id}"), &alice, None, None)
            .await;
        if job["status"] != "running" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the job was never recovered: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received: std::collections::BTreeSet<String> = erp
        .received()
        .iter()
        .map(|r| r.body["pendingOrderId"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        sent_while_cut <= 3 && received.len() <= 3,
        "the cut-off node kept sending: {} orders reached the order system",
        received.len()
    );
    let (_, orders) = a
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    for order in orders.as_array().unwrap() {
        let id = order["id"].as_str().unwrap();
        if received.contains(id) {
            assert_ne!(
                order["status"], "pending",
                "the order system holds {id}, but herald shows it pending: {order}"
            );
        }
    }
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        b.log().contains("could not confirm"),
        "b says why it stopped"
    );
}
