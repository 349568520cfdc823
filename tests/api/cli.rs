//! The operators' commands against a real server and database:
//! `herald check` and `herald tail`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::helpers::*;

fn check(app: &TestApp) -> (bool, String) {
    let out = Command::new(herald_bin())
        .arg("check")
        .arg("--database-url")
        .arg(database_url(app.dir.path()))
        .env_clear()
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn check_passes_a_sound_database_and_names_a_hole() {
    let app = spawn_sqlite_app_with(&[]).await;
    let agent = app.token("alice", "agent");
    for i in 0..5 {
        app.publish("alice", "E", json!({"i": i})).await;
    }
    let (_, draft) = app
        .call_json(
            "POST",
            "/api/drafts",
            &agent,
            None,
            Some(&json!({"payload": {}})),
        )
        .await;
    let id = draft["id"].as_str().unwrap().to_owned();
    app.call_json(
        "POST",
        &format!("/api/drafts/{id}/convert"),
        &agent,
        None,
        None,
    )
    .await;
    let (ok, out) = check(&app);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok:") && out.contains("1 stream(s), 8 stored event(s)"),
        "{out}"
    );

    // Knock a row out of the log, as a bad restore would.
    let db = sea_orm::Database::connect(database_url(app.dir.path()))
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM events WHERE stream = 'user:alice' AND seq = 3")
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM drafts").await.unwrap();
    let (ok, out) = check(&app);
    assert!(!ok, "{out}");
    assert!(out.contains("user:alice: seqs 3..3 are missing"), "{out}");
    assert!(
        out.contains(&format!("names draft {id}, which does not exist")),
        "{out}"
    );
}

#[tokio::test]
async fn tail_prints_a_stream_live_and_resumes_with_since() {
    let app = spawn_app().await;
    for i in 1..=3 {
        app.publish("alice", "BEFORE", json!({"i": i})).await;
    }
    let mut child = Command::new(herald_bin())
        .args(["tail", "--user", "alice", "--since", "1", "--url"])
        .arg(format!("http://{}", app.addr))
        .env_clear()
        .env("HERALD_JWT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).expect("one JSON frame a line"));
        }
    });
    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap()
    }
    assert_eq!(next(&mut rx).await["type"], "CONNECTED");
    assert_eq!(next(&mut rx).await["seq"], 2);
    assert_eq!(next(&mut rx).await["seq"], 3);
    assert_eq!(next(&mut rx).await["type"], "REPLAY_COMPLETE");
    app.publish("alice", "LIVE", json!({})).await;
    let live = next(&mut rx).await;
    assert_eq!(
        (live["type"].as_str(), live["seq"].as_u64()),
        (Some("LIVE"), Some(4))
    );
    let _ = child.kill();
    let _ = child.wait();

    // A venue too.
    let (mut till, _) = app.terminal("till-1", "main", json!({})).await;
    let mut venue = Command::new(herald_bin())
        .args(["tail", "--venue", "main", "--url"])
        .arg(format!("http://{}", app.addr))
        .env_clear()
        .env("HERALD_JWT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(venue.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["type"], "connected");
    let (status, _) = app
        .call_json(
            "POST",
            "/api/devices",
            &app.cashier_token("main"),
            None,
            Some(&json!({"deviceId": "pc9"})),
        )
        .await;
    assert_eq!(status, 201);
    let created: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(created["type"], "device_created");
    assert_eq!(till.until_type("device_created").await["deviceId"], "pc9");
    let _ = venue.kill();
    let _ = venue.wait();
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[test]
fn tail_says_what_to_do_when_no_server_answers() {
    let out = Command::new(herald_bin())
        .args(["tail", "--user", "alice", "--url", "http://127.0.0.1:9"])
        .env_clear()
        .env("HERALD_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is herald running there"), "{err}");
    let out = Command::new(herald_bin())
        .args(["tail", "--url", "http://x"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success(), "a stream is required");
}
