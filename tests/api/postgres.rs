//! herald on PostgreSQL: a server the test starts itself (initdb + pg_ctl
//! from `/usr/lib/postgresql/*/bin`, as the `postgres` user when run as
//! root) on a free loopback port, with a fresh database, and herald run
//! against it through the paths that use backend-specific SQL.
//!
//! The server helper here is what `HERALD_TEST_DATABASE=postgres` (the
//! second pass of `scripts/test`) and the several-node tests start; the
//! tests in this file check the PostgreSQL-specific paths directly.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;

use crate::helpers::*;

/// A PostgreSQL server of the test's own, stopped when dropped.
pub struct Postgres {
    bin: PathBuf,
    data: tempfile::TempDir,
    pub port: u16,
}

fn as_postgres(cmd: &str) -> Command {
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", cmd]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", cmd]);
        c
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql; .ci/run does)")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let data = tempfile::Builder::new()
            .prefix("herald-pg-")
            .tempdir()
            .unwrap();
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(data.path())
            .status();
        let port = free_port();
        let dir = data.path().display();
        let run = |cmd: String| {
            let out = as_postgres(&cmd).stdout(Stdio::null()).output().unwrap();
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(format!(
            "{}/initdb -D {dir}/db -A trust -U postgres",
            bin.display()
        ));
        run(format!(
            "{}/pg_ctl -D {dir}/db -w -l {dir}/log -o \"-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off\" start",
            bin.display()
        ));
        run(format!(
            "{}/createdb -h 127.0.0.1 -p {port} -U postgres herald",
            bin.display()
        ));
        Postgres { bin, data, port }
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) {
        self.ctl("-m fast stop");
    }

    /// Stops the server as a crash would (immediate: no shutdown
    /// checkpoint, recovery from the WAL at the next start).
    pub fn stop_immediately(&self) {
        self.ctl("-m immediate stop");
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        let dir = self.data.path().display();
        self.ctl(&format!(
            "-l {dir}/log -o \"-p {} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off\" start",
            self.port
        ));
    }

    fn ctl(&self, args: &str) {
        let cmd = format!(
            "{}/pg_ctl -D {}/db -w {args}",
            self.bin.display(),
            self.data.path().display()
        );
        let out = as_postgres(&cmd).stdout(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/herald", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&format!(
            "{}/pg_ctl -D {}/db -m immediate stop",
            self.bin.display(),
            self.data.path().display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}

#[tokio::test]
async fn herald_serves_on_postgresql() {
    let pg = Postgres::start();
    let url = pg.url();
    let mut app = spawn_app_with(&[
        ("HERALD_DATABASE_URL", url.as_str()),
        ("HERALD_BUFFER_EVENTS", "2"),
    ])
    .await;
    let agent = app.token("alice", "agent");
    let (_, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    // Appends (timestamps under the row lock), idempotent publish, drafts.
    assert_eq!(app.publish("alice", "ONE", json!({})).await, Some(1));
    let res = app
        .http
        .post(app.url("/api/publish"))
        .bearer_auth(app.token("svc", "service"))
        .header("Idempotency-Key", "k")
        .json(&json!({"userId": "alice", "type": "TWO", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, draft) = app
        .call_json(
            "POST",
            "/api/drafts",
            &agent,
            None,
            Some(&json!({"payload": {"n": 1}})),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
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
    // Cashier orders with Dart prices.
    let cashier = app.cashier_token("main");
    app.call_json(
        "POST",
        "/api/devices",
        &cashier,
        None,
        Some(&json!({"deviceId": "pc1"})),
    )
    .await;
    let (status, device) = app
        .call_json(
            "POST",
            "/api/devices/pc1/orders",
            &cashier,
            None,
            Some(&json!({"orders": [{"name": "tea", "price": 12.5, "quantity": 3.0}]})),
        )
        .await;
    assert_eq!(status, 201, "{device}");
    assert_eq!(device["orders"][0]["price"], 12.5);
    // A replay from the database (the ring holds 2) and by lastEventTs.
    let (mut ws, _) = app
        .realtime_connected("alice", &format!("since=0&epoch={epoch}"))
        .await;
    let mut seqs = Vec::new();
    loop {
        let ev = ws.next_json().await;
        if ev["type"] == "REPLAY_COMPLETE" {
            assert_eq!(ev["payload"]["recovered"], true, "{ev}");
            break;
        }
        seqs.push(ev["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // herald check reads PostgreSQL too.
    let out = Command::new(herald_bin())
        .args(["check", "--database-url", &url])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A SIGKILL loses nothing acknowledged.
    app.kill();
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.start().await;
    let (_, hello) = app.realtime_connected("alice", "").await;
    assert_eq!(hello["lastSeq"], 5);
    assert_eq!(hello["epoch"], epoch.as_str());
}

#[tokio::test]
async fn on_postgresql_every_node_and_herald_token_share_one_generated_secret() {
    let pg = Postgres::start();
    let url = pg.url();
    let env = [("HERALD_DATABASE_URL", url.as_str())];
    let a = spawn_app_in(tempfile::tempdir().unwrap(), &env, &["HERALD_JWT_SECRET"]).await;
    let b = spawn_app_in(tempfile::tempdir().unwrap(), &env, &["HERALD_JWT_SECRET"]).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(herald_bin())
        .args([
            "token",
            "--sub",
            "alice",
            "--role",
            "agent",
            "--database-url",
            &url,
        ])
        // Run from elsewhere: nothing beside the working directory may matter.
        .current_dir(elsewhere.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    for node in [&a, &b] {
        let (status, me) = node.call_json("GET", "/api/me", &token, None, None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["sub"], "alice");
    }
    // The test's own secret is not the one in use.
    let (status, _) = a
        .call_json("GET", "/api/me", &a.token("alice", "agent"), None, None)
        .await;
    assert_eq!(status, 401);
    assert!(
        !a.dir.path().join("herald.jwt-secret").exists(),
        "no secret file beside a PostgreSQL node"
    );
}
