//! Jobs: the built-in submission against a fake ERP, local numbering,
//! external workers, cancel, roles, and crash recovery.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{fake_erp, helpers::*};

/// Creates `n` pending orders for `user`; answers their ids.
async fn orders(app: &TestApp, token: &str, n: usize) -> Vec<String> {
    let batch: Vec<Value> = (0..n)
        .map(|i| json!({"payload": {"line": i, "name": "كولا"}}))
        .collect();
    let (status, body) = app
        .call_json(
            "POST",
            "/api/pending-orders",
            token,
            None,
            Some(&json!(batch)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads events until the job's final event; answers them all.
async fn until_job_ends(ws: &mut Ws) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let ev = ws.next_json().await;
        let done = ev["type"] == "JOB_COMPLETED" || ev["type"] == "JOB_FAILED";
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// The buffered events (seq not null) in order, progress removed.
fn buffered(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| !e["seq"].is_null())
        .cloned()
        .collect()
}

#[tokio::test]
async fn submission_sends_every_order_and_every_device_sees_the_whole_sequence() {
    let erp = fake_erp::start(|_, n| {
        (
            200,
            json!({"orderNumber": format!("ERP-{}", 100 + n)}),
            Duration::ZERO,
        )
    })
    .await;
    let app = spawn_app_with(&[("HERALD_ERP_URL", &erp.url)]).await;
    let alice = app.token("alice", "agent");
    let ids = orders(&app, &alice, 3).await;
    let (mut tab1, _) = app.realtime_connected("alice", "deviceId=tab-1").await;
    let (mut tab2, _) = app.realtime_connected("alice", "deviceId=tab-2").await;

    let (status, job) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            Some("tab-1"),
            Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["kind"], "submit-pending-orders");

    let mut sequences = Vec::new();
    for ws in [&mut tab1, &mut tab2] {
        let events = until_job_ends(ws).await;
        let kinds: Vec<String> = types(&buffered(&events));
        let mut expected = vec![
            "JOB_QUEUED",
            "JOB_STARTED",
            "PENDING_BATCH_UPSERTED",
            "ORDER_NUMBERS_RESOLVED",
        ];
        expected.extend(["PENDING_UPDATED"; 3]);
        expected.push("JOB_COMPLETED");
        assert_eq!(kinds, expected, "{events:#?}");
        let seqs: Vec<u64> = buffered(&events)
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "contiguous: {seqs:?}"
        );
        // Progress: transient, after JOB_STARTED and before the numbers, ending at 100.
        let progress: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "JOB_PROGRESS")
            .collect();
        assert!(!progress.is_empty());
        assert!(progress.iter().all(|p| p["seq"].is_null()));
        assert_eq!(progress.last().unwrap()["payload"]["progress"], 100);
        let first_progress = events
            .iter()
            .position(|e| e["type"] == "JOB_PROGRESS")
            .unwrap();
        let started = events
            .iter()
            .position(|e| e["type"] == "JOB_STARTED")
            .unwrap();
        let resolved = events
            .iter()
            .position(|e| e["type"] == "ORDER_NUMBERS_RESOLVED")
            .unwrap();
        assert!(started < first_progress && first_progress < resolved);

        let marked = &buffered(&events)[2]["payload"]["updated"];
        assert!(marked
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "submitting"));
        let mapping = &buffered(&events)[3]["payload"];
        assert_eq!(mapping["jobId"], job["id"]);
        let numbers: Vec<(&str, &str)> = mapping["mapping"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["pendingOrderId"].as_str().unwrap(),
                    m["orderNumber"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(numbers.len(), 3);
        for (i, (id, number)) in numbers.iter().enumerate() {
            assert_eq!(*id, ids[i]);
            assert_eq!(*number, format!("ERP-{}", 100 + i));
        }
        for (i, ev) in buffered(&events)[4..7].iter().enumerate() {
            assert_eq!(ev["payload"]["order"]["id"], ids[i].as_str());
            assert_eq!(ev["payload"]["order"]["status"], "submitted");
            assert_eq!(
                ev["payload"]["order"]["orderNumber"],
                format!("ERP-{}", 100 + i)
            );
        }
        let done = &buffered(&events)[7]["payload"]["job"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["progress"], 100);
        sequences.push(types(&buffered(&events)));
    }
    assert_eq!(sequences[0], sequences[1]);

    // The ERP saw each order once, with its id as the idempotency key.
    let got = erp.received();
    assert_eq!(got.len(), 3);
    for (r, id) in got.iter().zip(&ids) {
        assert_eq!(r.idempotency_key.as_deref(), Some(id.as_str()));
        assert_eq!(r.body["pendingOrderId"], id.as_str());
        assert_eq!(r.body["userId"], "alice");
        assert_eq!(r.body["payload"]["name"], "كولا");
    }
    let (_, stored) = app
        .call_json(
            "GET",
            &format!("/api/jobs/{}", job["id"].as_str().unwrap()),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["result"]["mapping"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_rejected_order_fails_alone_and_the_job_completes() {
    let erp = fake_erp::start(|_, n| {
        if n == 1 {
            (
                422,
                json!({"error": {"message": "customer blocked"}}),
                Duration::ZERO,
            )
        } else {
            (200, json!({"orderNumber": format!("N{n}")}), Duration::ZERO)
        }
    })
    .await;
    let app = spawn_app_with(&[("HERALD_ERP_URL", &erp.url)]).await;
    let alice = app.token("alice", "agent");
    let ids = orders(&app, &alice, 3).await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    app.call_json(
        "POST",
        "/api/jobs",
        &alice,
        None,
        Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
    )
    .await;
    let events = buffered(&until_job_ends(&mut ws).await);
    let resolved = events
        .iter()
        .find(|e| e["type"] == "ORDER_NUMBERS_RESOLVED")
        .unwrap();
    assert_eq!(resolved["payload"]["mapping"].as_array().unwrap().len(), 2);
    let updates: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "PENDING_UPDATED")
        .collect();
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[1]["payload"]["order"]["status"], "failed");
    assert!(updates[1]["payload"]["order"]["error"]
        .as_str()
        .unwrap()
        .contains("customer blocked"));
    assert_eq!(updates[0]["payload"]["order"]["status"], "submitted");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "JOB_COMPLETED");
    assert_eq!(
        last["payload"]["job"]["result"]["failed"][0]["pendingOrderId"],
        ids[1].as_str()
    );
    assert_eq!(erp.received().len(), 3, "a rejection is not retried");
}

#[tokio::test]
async fn an_unreachable_erp_is_retried_then_the_job_fails_with_the_reason() {
    let erp = fake_erp::start(|_, _| (503, json!({"error": "maintenance"}), Duration::ZERO)).await;
    let app = spawn_app_with(&[("HERALD_ERP_URL", &erp.url), ("HERALD_ERP_RETRIES", "2")]).await;
    let alice = app.token("alice", "agent");
    let ids = orders(&app, &alice, 2).await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    app.call_json(
        "POST",
        "/api/jobs",
        &alice,
        None,
        Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
    )
    .await;
    let events = buffered(&until_job_ends(&mut ws).await);
    assert_eq!(
        types(&events),
        [
            "JOB_QUEUED",
            "JOB_STARTED",
            "PENDING_BATCH_UPSERTED",
            "PENDING_UPDATED",
            "PENDING_UPDATED",
            "JOB_FAILED"
        ]
    );
    let job = &events.last().unwrap()["payload"]["job"];
    assert_eq!(job["status"], "failed");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("unreachable") && error.contains("503") && error.contains("3 attempts"),
        "{error}"
    );
    for ev in &events[3..5] {
        assert_eq!(ev["payload"]["order"]["status"], "failed");
    }
    assert_eq!(
        erp.received().len(),
        3,
        "one order, tried 1 + 2 times; the rest not sent"
    );
}

#[tokio::test]
async fn local_numbers_are_unique_across_a_restart() {
    let mut app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let mut numbers = Vec::new();
    for round in 0..2 {
        let ids = orders(&app, &alice, 2).await;
        let (mut ws, _) = app.realtime_connected("alice", "").await;
        let (status, _) = app
            .call_json(
                "POST",
                "/api/jobs",
                &alice,
                None,
                Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
            )
            .await;
        assert_eq!(status, 202);
        let events = until_job_ends(&mut ws).await;
        assert_eq!(events.last().unwrap()["type"], "JOB_COMPLETED");
        let resolved = events
            .iter()
            .find(|e| e["type"] == "ORDER_NUMBERS_RESOLVED")
            .unwrap();
        for m in resolved["payload"]["mapping"].as_array().unwrap() {
            numbers.push(m["orderNumber"].as_str().unwrap().to_owned());
        }
        if round == 0 {
            app.restart().await;
        }
    }
    let year = chrono::Utc::now().format("%Y").to_string();
    let expected: Vec<String> = (1..=4).map(|n| format!("ORD-{year}-{n:06}")).collect();
    assert_eq!(numbers, expected);
}

#[tokio::test]
async fn an_external_worker_reports_progress_and_the_outcome() {
    let app = spawn_app().await;
    let alice = app.token("alice", "agent");
    let worker = app.token("sync-worker", "service");
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let (status, job) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "customer-sync", "params": {"full": true}})),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(job["params"], json!({"full": true}));
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(ws.next_json().await["type"], "JOB_QUEUED");

    let (status, j) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{id}/progress"),
            &worker,
            None,
            Some(&json!({"progress": 10, "label": "customers 1-100"})),
        )
        .await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["status"], "running");
    let started = ws.next_json().await;
    assert_eq!(started["type"], "JOB_STARTED");
    let p = ws.next_json().await;
    assert_eq!(p["type"], "JOB_PROGRESS");
    assert_eq!(
        (
            p["payload"]["progress"].as_i64(),
            p["payload"]["label"].as_str()
        ),
        (Some(10), Some("customers 1-100"))
    );

    // A burst is throttled, but the latest value still arrives.
    for n in 11..=40 {
        app.call_json(
            "POST",
            &format!("/api/jobs/{id}/progress"),
            &worker,
            None,
            Some(&json!({"progress": n, "label": format!("at {n}")})),
        )
        .await;
    }
    let mut seen = Vec::new();
    while let Some(ev) = ws.next_json_within(Duration::from_millis(800)).await {
        seen.push(ev["payload"]["progress"].as_i64().unwrap());
    }
    assert!(!seen.is_empty() && seen.len() < 30, "throttled: {seen:?}");
    assert_eq!(*seen.last().unwrap(), 40);

    // A device that reconnects reads the current progress.
    ws.close().await;
    let (_, current) = app
        .call_json("GET", &format!("/api/jobs/{id}"), &alice, None, None)
        .await;
    assert_eq!(
        (current["progress"].as_i64(), current["label"].as_str()),
        (Some(40), Some("at 40"))
    );
    let (mut ws, _) = app.realtime_connected("alice", "").await;

    let (status, done) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{id}/complete"),
            &worker,
            None,
            Some(&json!({"result": {"synced": 1234}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(done["status"], "completed");
    let ev = ws.next_json().await;
    assert_eq!(ev["type"], "JOB_COMPLETED");
    assert_eq!(ev["payload"]["job"]["result"], json!({"synced": 1234}));

    // Reports on a finished job are refused.
    for (what, body) in [
        ("progress", json!({"progress": 50})),
        ("complete", json!({})),
        ("fail", json!({"error": "late"})),
    ] {
        let (status, err) = app
            .call_json(
                "POST",
                &format!("/api/jobs/{id}/{what}"),
                &worker,
                None,
                Some(&body),
            )
            .await;
        assert_eq!(status, 409, "{what}: {err}");
        assert_eq!(err["error"]["code"], "JOB_FINISHED");
    }
    // A failing worker.
    let (_, job2) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "price-sync"})),
        )
        .await;
    let id2 = job2["id"].as_str().unwrap();
    let (status, failed) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{id2}/fail"),
            &worker,
            None,
            Some(&json!({"error": "price list missing"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(failed["status"], "failed");
    let kinds: Vec<String> = [
        ws.next_json().await,
        ws.next_json().await,
        ws.next_json().await,
    ]
    .iter()
    .map(|e| e["type"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(kinds, ["JOB_QUEUED", "JOB_STARTED", "JOB_FAILED"]);
}

#[tokio::test]
async fn cancel_a_queued_job_and_a_running_submission() {
    let erp = fake_erp::start(|_, n| {
        (
            200,
            json!({"orderNumber": format!("C{n}")}),
            Duration::from_millis(400),
        )
    })
    .await;
    let app = spawn_app_with(&[("HERALD_ERP_URL", &erp.url)]).await;
    let alice = app.token("alice", "agent");
    let (mut ws, _) = app.realtime_connected("alice", "").await;

    let (_, queued) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "customer-sync"})),
        )
        .await;
    let qid = queued["id"].as_str().unwrap();
    let (status, c) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{qid}/cancel"),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["status"], "cancelled");
    assert_eq!(ws.next_json().await["type"], "JOB_QUEUED");
    let ev = ws.next_json().await;
    assert_eq!(ev["type"], "JOB_FAILED");
    assert_eq!(ev["payload"]["job"]["status"], "cancelled");
    let (status, again) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{qid}/cancel"),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(again["error"]["code"], "JOB_FINISHED", "{again}");

    let ids = orders(&app, &alice, 5).await;
    ws.next_json().await; // the batch
    let (_, job) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    // Wait for the first order's answer, then cancel.
    loop {
        let ev = ws.next_json().await;
        if ev["type"] == "JOB_PROGRESS" {
            break;
        }
    }
    let (status, _) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{id}/cancel"),
            &alice,
            None,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let events = buffered(&until_job_ends(&mut ws).await);
    let end = events.last().unwrap();
    assert_eq!(end["type"], "JOB_FAILED");
    assert_eq!(end["payload"]["job"]["status"], "cancelled");
    let sent = erp.received().len();
    assert!(
        (1..5).contains(&sent),
        "stopped between orders after {sent}"
    );
    let (_, list) = app
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    let list = list.as_array().unwrap();
    let submitted: Vec<&Value> = list.iter().filter(|o| o["status"] == "submitted").collect();
    let pending: Vec<&Value> = list.iter().filter(|o| o["status"] == "pending").collect();
    assert_eq!(submitted.len(), sent, "the ones sent keep their numbers");
    assert!(submitted.iter().all(|o| o["orderNumber"]
        .as_str()
        .is_some_and(|n| n.starts_with('C'))));
    assert_eq!(pending.len(), 5 - sent);
    assert!(pending.iter().all(|o| o["jobId"].is_null()));
}

#[tokio::test]
async fn roles_and_ownership_are_enforced() {
    let app = spawn_app().await;
    let (alice, bob) = (app.token("alice", "agent"), app.token("bob", "agent"));
    let (_, job) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "customer-sync"})),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    for what in ["progress", "complete", "fail"] {
        for token in [
            &alice,
            &app.token("root", "admin"),
            &app.token("till", "cashier"),
        ] {
            let (status, _) = app
                .call_json(
                    "POST",
                    &format!("/api/jobs/{id}/{what}"),
                    token,
                    None,
                    Some(&json!({"progress": 5, "error": "x"})),
                )
                .await;
            assert_eq!(status, 403, "{what}");
        }
    }
    let (status, _) = app
        .call_json("GET", &format!("/api/jobs/{id}"), &bob, None, None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call_json("POST", &format!("/api/jobs/{id}/cancel"), &bob, None, None)
        .await;
    assert_eq!(status, 404);
    let (_, list) = app.call_json("GET", "/api/jobs", &bob, None, None).await;
    assert_eq!(list, json!([]));
    let (_, list) = app.call_json("GET", "/api/jobs", &alice, None, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Services and admins see any job; services may queue for a user.
    let svc = app.token("backend", "service");
    let (status, _) = app
        .call_json("GET", &format!("/api/jobs/{id}"), &svc, None, None)
        .await;
    assert_eq!(status, 200);
    let (status, j) = app
        .call_json(
            "POST",
            "/api/jobs?userId=bob",
            &svc,
            None,
            Some(&json!({"kind": "price-sync"})),
        )
        .await;
    assert_eq!((status, j["userId"].as_str()), (202, Some("bob")));
    // A worker may not report on a built-in job.
    let ids = orders(&app, &alice, 1).await;
    let (_, builtin) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
        )
        .await;
    let (status, err) = app
        .call_json(
            "POST",
            &format!("/api/jobs/{}/progress", builtin["id"].as_str().unwrap()),
            &svc,
            None,
            Some(&json!({"progress": 5})),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "JOB_NOT_EXTERNAL", "{err}");
}

#[tokio::test]
async fn invalid_job_requests_change_nothing() {
    let app = spawn_app().await;
    let (alice, bob) = (app.token("alice", "agent"), app.token("bob", "agent"));
    let worker = app.token("w", "service");
    let mine = orders(&app, &alice, 1).await;
    let theirs = orders(&app, &bob, 1).await;
    let (mut ws, _) = app.realtime_connected("alice", "").await;
    let submit = |ids: Value| json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}});
    let cases: Vec<(Value, u16)> = vec![
        (json!({"kind": ""}), 400),
        (json!({"kind": "Has Spaces"}), 400),
        (json!({"params": {}}), 400),
        (json!({"kind": "x", "params": [1]}), 400),
        (json!({"kind": "x", "params": "text"}), 400),
        (submit(json!([])), 400),
        (submit(json!("nope")), 400),
        (submit(json!(["not-a-uuid"])), 400),
        (submit(json!([mine[0], mine[0]])), 400),
        (submit(json!(["00000000-0000-4000-8000-000000000000"])), 404),
        (submit(json!([theirs[0]])), 404),
        (json!({"kind": "submit-pending-orders"}), 400),
    ];
    for (body, status) in cases {
        let (got, err) = app
            .call_json("POST", "/api/jobs", &alice, None, Some(&body))
            .await;
        assert_eq!(got, status, "{body}: {err}");
    }
    let (_, job) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "customer-sync"})),
        )
        .await;
    assert_eq!(ws.next_json().await["type"], "JOB_QUEUED");
    let id = job["id"].as_str().unwrap();
    let reports: Vec<(&str, Value, u16)> = vec![
        ("progress", json!({"progress": 101}), 400),
        ("progress", json!({"progress": -1}), 400),
        ("progress", json!({"progress": "half"}), 400),
        ("progress", json!({}), 400),
        ("progress", json!({"progress": 5, "extra": 1}), 400),
        (
            "progress",
            json!({"progress": 5, "label": "x".repeat(201)}),
            400,
        ),
        ("fail", json!({"error": ""}), 400),
        ("fail", json!({}), 400),
    ];
    for (what, body, status) in reports {
        let (got, err) = app
            .call_json(
                "POST",
                &format!("/api/jobs/{id}/{what}"),
                &worker,
                None,
                Some(&body),
            )
            .await;
        assert_eq!(got, status, "{what} {body}: {err}");
    }
    let (status, _) = app
        .call_json(
            "POST",
            "/api/jobs/00000000-0000-4000-8000-000000000000/progress",
            &worker,
            None,
            Some(&json!({"progress": 1})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call_json("GET", "/api/jobs/xyz", &alice, None, None)
        .await;
    assert_eq!(status, 400);
    ws.expect_silence(Duration::from_millis(300)).await;
    let (_, list) = app.call_json("GET", "/api/jobs", &alice, None, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "queued");
    assert_eq!(list[0]["progress"], 0);
}

#[tokio::test]
async fn a_job_running_when_the_process_dies_is_failed_at_the_next_start() {
    // The first order is answered at once; the second hangs.
    let erp = fake_erp::start(|_, n| {
        if n == 0 {
            (200, json!({"orderNumber": "FIRST"}), Duration::ZERO)
        } else {
            (200, json!({"orderNumber": "LATE"}), Duration::from_secs(60))
        }
    })
    .await;
    let mut app = spawn_app_with(&[
        ("HERALD_ERP_URL", &erp.url),
        ("HERALD_ERP_TIMEOUT_SECS", "120"),
    ])
    .await;
    let alice = app.token("alice", "agent");
    let ids = orders(&app, &alice, 3).await;
    let (ws, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    let seen_before = hello["lastSeq"].as_u64().unwrap();
    drop(ws);
    let (_, job) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": ids}})),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    // Wait until the first order's number is kept on the job.
    for _ in 0..100 {
        let (_, j) = app
            .call_json("GET", &format!("/api/jobs/{id}"), &alice, None, None)
            .await;
        if j["progress"].as_i64().unwrap_or(0) >= 33 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.restart().await; // SIGKILL mid-job

    let (_, j) = app
        .call_json("GET", &format!("/api/jobs/{id}"), &alice, None, None)
        .await;
    assert_eq!(j["status"], "failed");
    assert_eq!(j["error"], "interrupted");
    let (_, list) = app
        .call_json("GET", "/api/pending-orders", &alice, None, None)
        .await;
    let status_of = |oid: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == oid)
            .unwrap()
            .clone()
    };
    assert_eq!(status_of(&ids[0])["status"], "submitted");
    assert_eq!(status_of(&ids[0])["orderNumber"], "FIRST");
    // The second was being sent (the order system has it, its answer was
    // lost): in doubt, not `pending`, where an agent would send it again.
    let second = status_of(&ids[1]);
    assert_eq!(second["status"], "failed", "{second}");
    assert!(
        second["error"].as_str().unwrap().starts_with("in doubt"),
        "{second}"
    );
    assert!(erp
        .received()
        .iter()
        .any(|r| r.body["pendingOrderId"] == ids[1].as_str()));
    assert_eq!(status_of(&ids[2])["status"], "pending");
    // A device that was away replays it all, JOB_FAILED included.
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since={seen_before}&epoch={epoch}"))
        .await;
    let mut kinds = Vec::new();
    loop {
        let ev = ws.next_json().await;
        if ev["type"] == "REPLAY_COMPLETE" {
            assert_eq!(ev["payload"]["recovered"], true);
            break;
        }
        kinds.push(ev["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds.last().map(String::as_str), Some("JOB_FAILED"));
    assert_eq!(kinds.iter().filter(|k| *k == "PENDING_UPDATED").count(), 3);
    // Nothing is stuck: the pending ones can be submitted again.
    let (status, _) = app
        .call_json(
            "POST",
            "/api/jobs",
            &alice,
            None,
            Some(&json!({"kind": "submit-pending-orders", "params": {"orderIds": [ids[1]]}})),
        )
        .await;
    assert_eq!(status, 202);
}
