//! Startup: bad settings stop the server with a message naming the setting.

use std::process::Command;

use crate::helpers::*;

fn run_with(env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(herald_bin())
        .arg("serve")
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("HERALD_DATABASE_URL", database_url(dir.path()))
        .env("HERALD_JWT_SECRET", SECRET)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Variables, flags, and what the error must mention.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

#[test]
fn bad_settings_are_refused_at_startup_with_a_clear_message() {
    let cases: [Case; 10] = [
        (
            &[("HERALD_HEARTBEAT_SECS", "soon")],
            &[],
            "--heartbeat-secs",
        ),
        (&[("HERALD_BUFFER_EVENTS", "0")], &[], "--buffer-events"),
        (&[("HERALD_CASHIER_AUTH", "maybe")], &[], "--cashier-auth"),
        (
            &[("HERALD_DATABASE_URL", "mysql://x")],
            &[],
            "--database-url",
        ),
        (&[("HERALD_JWT_SECRET", "short")], &[], "at least 16 bytes"),
        (&[], &["--max-connections=-5"], "--max-connections"),
        (&[("HERALD_ROOM_THREADS", "0")], &[], "--room-threads"),
        (&[("HERALD_NODE_LEASE_MS", "10")], &[], "--node-lease-ms"),
        (&[("HERALD_POLL_MS", "0")], &[], "--poll-ms"),
        (&[("HERALD_POLL_MS", "often")], &[], "--poll-ms"),
    ];
    for (env, args, needle) in cases {
        let (ok, stderr) = run_with(env, args);
        assert!(!ok, "{env:?} {args:?} should fail");
        assert!(stderr.contains(needle), "{env:?}: {stderr}");
    }
}

#[test]
fn an_unusable_database_or_address_is_explained() {
    let (ok, stderr) = run_with(
        &[(
            "HERALD_DATABASE_URL",
            "sqlite:///nonexistent-dir/sub/h.db?mode=rwc",
        )],
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("cannot open the SQLite database"),
        "{stderr}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(herald_bin())
        .args([
            "serve",
            "--addr",
            &addr,
            "--database-url",
            &database_url(dir.path()),
        ])
        .env("HERALD_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}

#[test]
fn migrate_runs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(herald_bin())
        .args(["migrate", "--database-url", &database_url(dir.path())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("herald.db").exists());
}

#[tokio::test]
async fn a_second_process_on_the_same_sqlite_file_is_refused() {
    let mut app = spawn_sqlite_app_with(&[]).await;
    let out = Command::new(herald_bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--database-url"])
        .arg(database_url(app.dir.path()))
        .env_clear()
        .env("HERALD_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a second node on SQLite must not start"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another herald process") && err.contains("PostgreSQL"),
        "{err}"
    );
    // The first still serves; once it is gone (even killed), the file is free.
    assert_eq!(
        app.publish("alice", "STILL_ONE", serde_json::json!({}))
            .await,
        Some(1)
    );
    app.restart().await;
    assert_eq!(
        app.publish("alice", "AFTER", serde_json::json!({})).await,
        Some(2)
    );
}

/// PostgreSQL that cannot be reached is explained: where (host, port, user,
/// database), what happened, and advice that fits PostgreSQL, at once (a
/// refused connection took 5 s to be reported as "pool timed out").
#[tokio::test]
async fn postgresql_errors_say_what_is_wrong_and_what_to_do() {
    let run = |url: String| {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let out = Command::new(herald_bin())
            .args(["serve", "--addr", "127.0.0.1:0", "--database-url", &url])
            .env("HERALD_JWT_SECRET", SECRET)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            started.elapsed(),
        )
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (err, took) = run(format!(
        "postgres://herald:secret@127.0.0.1:{closed}/orders"
    ));
    for part in [
        format!("127.0.0.1:{closed}"),
        "user `herald`".into(),
        "database `orders`".into(),
        "connection refused".into(),
        "Is PostgreSQL running".into(),
    ] {
        assert!(err.contains(&part), "{part} in {err}");
    }
    assert!(!err.contains("secret"), "no password in {err}");
    assert!(!err.contains("directory exists"), "no SQLite advice: {err}");
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");

    let pg = crate::postgres::Postgres::start();
    let (err, _) = run(format!("postgres://nobody@127.0.0.1:{}/herald", pg.port));
    assert!(err.contains(r#"role "nobody" does not exist"#), "{err}");
    assert!(err.contains("createuser --pwprompt nobody"), "{err}");
    assert!(!err.contains(" at line "), "{err}");
    let (err, _) = run(format!("postgres://postgres@127.0.0.1:{}/nodb", pg.port));
    assert!(err.contains(r#"database "nodb" does not exist"#), "{err}");
    assert!(err.contains("createdb -O postgres nodb"), "{err}");
}
