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

/// A first start says, from the terminal alone, where the dashboard is and
/// how to get a token that the server accepts: the command printed, run as
/// printed, mints a token this server takes; it names the file the secret
/// is in. Nothing but the first line says "listening", and no sign-in link
/// goes to a log (stdout is not a terminal here).
#[tokio::test]
async fn a_first_start_says_where_the_dashboard_is_and_how_to_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(herald_bin())
        .args(["--addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read on a thread of its own: a server that prints less must fail the
    // test, not hang it.
    let stdout = server.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while lines.len() < 5 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = server.kill();
                let _ = server.wait();
                panic!("the server printed only:\n{}", lines.join("\n"));
            }
        }
    }
    let addr = lines[0]
        .strip_prefix("herald listening on http://")
        .unwrap_or_else(|| panic!("first line: {}", lines[0]))
        .to_owned();
    let port = addr.rsplit(':').next().unwrap();
    let text = lines.join("\n");
    assert!(
        lines[1].contains(&format!("dashboard: http://localhost:{port}/")),
        "{text}"
    );
    assert!(
        text.contains(&format!("http://localhost:{port}/api/docs")),
        "{text}"
    );
    // The token command, as printed, mints a token the server accepts.
    let command = lines[2]
        .split_once("a token:")
        .map(|(_, c)| c.trim().to_owned())
        .unwrap_or_else(|| panic!("{text}"));
    let mut words = command.split_whitespace();
    let program = words.next().unwrap();
    assert_eq!(program, herald_bin(), "{text}");
    let minted = Command::new(program)
        .args(words)
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let said = String::from_utf8_lossy(&minted.stderr);
    assert!(said.contains("herald.db.jwt-secret"), "{said}");
    let me = reqwest::Client::new()
        .get(format!("http://{addr}/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // Not a terminal: no sign-in link with a token in it.
    server.kill().unwrap();
    server.wait().unwrap();
    let rest: Vec<String> = rx.iter().collect();
    let rest = rest.join("\n");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        !text.contains("?token=") && !rest.contains("?token="),
        "{text}{rest}"
    );
    let listening = format!("{text}\n{rest}\n{log}")
        .matches("listening")
        .count();
    assert_eq!(listening, 1, "one listening line:\n{text}\n{rest}\n{log}");
}
