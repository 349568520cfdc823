//! Tokens: refused before the upgrade, roles on REST, expiry and refresh on
//! sockets, the generated secret, and tokens kept out of the logs.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

#[tokio::test]
async fn socket_without_a_valid_token_is_refused_before_the_upgrade() {
    let app = spawn_app().await;
    let url = |q: &str| app.ws_url(&format!("/ws/realtime{q}"));
    let status = |u: String| async move { upgrade_status(u.into_client_request().unwrap()).await };

    assert_eq!(status(url("")).await, 401, "no token");
    assert_eq!(status(url("?token=garbage")).await, 401, "malformed");
    let expired = token_with(SECRET, "alice", "agent", -60, None);
    assert_eq!(
        status(url(&format!("?token={expired}"))).await,
        401,
        "expired"
    );
    let forged = token_with("another-secret-of-some-length", "alice", "agent", 600, None);
    assert_eq!(
        status(url(&format!("?token={forged}"))).await,
        401,
        "wrong secret"
    );
    let no_role = sign(SECRET, &json!({"sub": "alice", "exp": now_secs() + 600}));
    assert_eq!(
        status(url(&format!("?token={no_role}"))).await,
        401,
        "no role"
    );
    let no_exp = sign(SECRET, &json!({"sub": "alice", "role": "agent"}));
    assert_eq!(
        status(url(&format!("?token={no_exp}"))).await,
        401,
        "no exp"
    );
    let bad_role = sign(
        SECRET,
        &json!({"sub": "alice", "role": "root", "exp": now_secs() + 600}),
    );
    assert_eq!(
        status(url(&format!("?token={bad_role}"))).await,
        401,
        "unknown role"
    );

    // The refusal is a JSON error, and no socket was ever registered.
    let res = app.http.get(app.url("/ws/realtime")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let stats: serde_json::Value = app
        .get("/api/websocket/stats", &app.token("root", "admin"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["totalConnections"], 0);
}

#[tokio::test]
async fn socket_accepts_a_bearer_header_or_a_query_token() {
    let app = spawn_app().await;
    let mut request = app.ws_url("/ws/realtime").into_client_request().unwrap();
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", app.token("alice", "agent"))
            .parse()
            .unwrap(),
    );
    let mut ws = Ws::connect_request(request)
        .await
        .expect("header token accepted");
    let connected = ws.next_json().await;
    assert_eq!(connected["type"], "CONNECTED");
    assert_eq!(connected["payload"]["userId"], "alice");

    let (_ws, payload) = app.realtime_connected("bob", "").await;
    assert_eq!(payload["userId"], "bob");
}

#[tokio::test]
async fn rest_checks_tokens_and_roles() {
    let app = spawn_app().await;
    let body = json!({"userId": "alice", "type": "X_HAPPENED", "payload": {}});
    let res = app
        .http
        .post(app.url("/api/publish"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let err: serde_json::Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "UNAUTHORIZED");

    let res = app
        .http
        .post(app.url("/api/publish"))
        .header("Authorization", "Basic abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "not a bearer token");

    let expired = token_with(SECRET, "svc", "service", -30, None);
    assert_eq!(
        app.post("/api/publish", &expired, &body).await.status(),
        401
    );

    for role in ["agent", "cashier"] {
        let res = app
            .post("/api/publish", &app.token("alice", role), &body)
            .await;
        assert_eq!(res.status(), 403, "{role} may not publish");
        let err: serde_json::Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "FORBIDDEN");
    }
    for role in ["service", "admin"] {
        let res = app.post("/api/publish", &app.token("x", role), &body).await;
        assert_eq!(res.status(), 200, "{role} may publish");
    }
    for path in ["/api/websocket/stats", "/api/admin/connections"] {
        for role in ["agent", "service", "cashier"] {
            assert_eq!(
                app.get(path, &app.token("x", role)).await.status(),
                403,
                "{role} {path}"
            );
        }
        assert_eq!(app.get(path, &app.token("x", "admin")).await.status(), 200);
    }
}

#[tokio::test]
async fn socket_closes_with_4001_when_its_token_expires() {
    let app = spawn_app().await;
    let token = token_with(SECRET, "alice", "agent", 2, None);
    let mut ws = Ws::connect(&app.ws_url(&format!("/ws/realtime?token={token}")))
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["type"], "CONNECTED");
    let started = std::time::Instant::now();
    let (ended, _) = ws.until_closed(Duration::from_secs(15)).await;
    assert_eq!(ended.code(), Some(4001), "{ended:?}");
    // exp is 2 s away; the contract allows closing up to 5 s after it.
    assert!(
        started.elapsed() <= Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refresh_token_keeps_the_socket_open_and_bad_refreshes_are_refused() {
    let app = spawn_app().await;
    let token = token_with(SECRET, "alice", "agent", 2, None);
    let mut ws = Ws::connect(&app.ws_url(&format!("/ws/realtime?token={token}")))
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["type"], "CONNECTED");

    // Another user's token, an earlier one, a forged one, and no token: refused.
    let bad = [
        (
            json!({"type": "REFRESH_TOKEN", "token": token_with(SECRET, "bob", "agent", 600, None)}),
            "INVALID_TOKEN",
        ),
        (
            json!({"type": "REFRESH_TOKEN", "token": token_with(SECRET, "alice", "agent", 1, None)}),
            "INVALID_TOKEN",
        ),
        (
            json!({"type": "REFRESH_TOKEN", "token": token_with("forged-secret-forged-secret", "alice", "agent", 600, None)}),
            "INVALID_TOKEN",
        ),
        (json!({"type": "REFRESH_TOKEN"}), "VALIDATION_FAILED"),
    ];
    for (msg, code) in &bad {
        ws.send_json(msg).await;
        let reply = ws.next_json().await;
        assert_eq!(reply["type"], "ERROR", "{msg} -> {reply}");
        assert_eq!(reply["payload"]["code"], *code, "{msg} -> {reply}");
    }
    // The socket is still alice's, on the first token: it closes at that
    // token's exp (4001), as if no refresh had been sent.
    app.publish("alice", "STILL_ALICE", json!({})).await;
    assert_eq!(ws.until_type("STILL_ALICE").await["seq"], 1);

    let fresh = token_with(SECRET, "alice", "agent", 600, None);
    ws.send_json(&json!({"type": "REFRESH_TOKEN", "token": fresh}))
        .await;
    let reply = ws.next_json().await;
    assert_eq!(reply["type"], "TOKEN_REFRESHED", "{reply}");

    // Well past the first token's exp + leeway, the socket still serves.
    tokio::time::sleep(Duration::from_secs(9)).await;
    app.publish("alice", "STILL_HERE", json!({})).await;
    let msg = ws.until_type("STILL_HERE").await;
    assert_eq!(msg["seq"], 2);
}

/// The default log filter leaves the access log out (a line per request
/// is a line per publish); `RUST_LOG=info` puts it back.
#[tokio::test]
async fn access_log_is_off_by_default_and_on_with_rust_log_info() {
    let quiet = spawn_app_in(tempfile::tempdir().unwrap(), &[], &["RUST_LOG"]).await;
    let loud = spawn_app().await;
    for app in [&quiet, &loud] {
        let res = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    // Both requests were answered; the loud one's line is there once logged.
    let loud_log = loud.log_contains("\"GET /healthz\" 200").await;
    let quiet_log = quiet.log();
    assert!(
        quiet_log.contains("rooms run on"),
        "herald's own info lines stay on by default: {quiet_log}"
    );
    assert!(
        !quiet_log.contains("GET /healthz"),
        "no access log by default: {quiet_log}"
    );
    assert!(
        loud_log.contains("\"GET /healthz\" 200"),
        "RUST_LOG=info logs each request: {loud_log}"
    );
}

#[tokio::test]
async fn access_log_never_contains_the_token() {
    let app = spawn_app().await;
    let token = app.token("alice", "agent");
    let (ws, _) = app.realtime_connected("alice", "deviceId=tab-1").await;
    ws.close().await;
    // A rejected one too.
    let _ = app
        .http
        .get(app.url(&format!("/ws/realtime?token={token}x")))
        .send()
        .await;
    // The socket's line and the refused request's, both redacted.
    let log = app.log_holds("/ws/realtime?token=[REDACTED]", 2).await;
    assert!(!log.contains(&token), "the token leaked into the log");
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !log.contains(signature),
        "the token's signature leaked into the log"
    );
}

#[tokio::test]
async fn generated_secret_is_private_and_shared_with_the_token_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    // The token command creates the secret when the server has not run yet...
    let out = std::process::Command::new(herald_bin())
        .args([
            "token",
            "--sub",
            "alice",
            "--role",
            "agent",
            "--ttl",
            "1h",
            "--database-url",
            &db,
        ])
        .env_remove("HERALD_JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let secret_file = dir.path().join("herald.db.jwt-secret");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // ...and a server started without HERALD_JWT_SECRET accepts its tokens.
    let app = spawn_app_in(
        dir,
        &[("HERALD_DATABASE_URL", db.as_str())],
        &["HERALD_JWT_SECRET"],
    )
    .await;
    let mut ws = Ws::connect(&app.ws_url(&format!("/ws/realtime?token={token}")))
        .await
        .expect("token from `herald token` accepted");
    assert_eq!(ws.next_json().await["payload"]["userId"], "alice");
    // A token signed with the test default secret is not.
    let other = app.token("alice", "agent");
    let status = upgrade_status(
        app.ws_url(&format!("/ws/realtime?token={other}"))
            .into_client_request()
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
}

/// A refresh passes the upgrade's checks again: an admin watching bob's
/// stream who refreshes with an agent (or cashier) token of the same `sub`
/// is closed with 4003 and hears nothing more of bob's.
#[tokio::test]
async fn a_refresh_with_a_token_that_could_not_open_the_stream_closes_it_with_4003() {
    let app = spawn_app().await;
    for weaker in ["agent", "cashier", "service"] {
        let admin = token_with(SECRET, "ops", "admin", 600, None);
        let mut ws = Ws::connect(&app.ws_url(&format!("/ws/realtime?token={admin}&userId=bob")))
            .await
            .unwrap();
        assert_eq!(ws.next_json().await["type"], "CONNECTED");
        let refresh = token_with(SECRET, "ops", weaker, 1200, Some("main"));
        ws.send_json(&json!({"type": "REFRESH_TOKEN", "token": refresh}))
            .await;
        let (ended, seen) = ws.until_closed(WAIT).await;
        assert_eq!(
            ended.code(),
            Some(4003),
            "{weaker}: {ended:?} after {seen:?}"
        );
        assert!(
            seen.iter().all(|m| m["type"] != "TOKEN_REFRESHED"),
            "{weaker}: {seen:?}"
        );
        assert!(seen.iter().all(|m| m["type"] != "BOB_EVENT"), "{seen:?}");
    }
    // An admin token refreshing an admin's watch, or an agent's own stream
    // refreshed with an admin token of the same `sub`, stays open.
    let admin = token_with(SECRET, "ops", "admin", 600, None);
    let mut watch = Ws::connect(&app.ws_url(&format!("/ws/realtime?token={admin}&userId=bob")))
        .await
        .unwrap();
    assert_eq!(watch.next_json().await["type"], "CONNECTED");
    watch
        .send_json(&json!({"type": "REFRESH_TOKEN", "token": token_with(SECRET, "ops", "admin", 1200, None)}))
        .await;
    assert_eq!(watch.next_json().await["type"], "TOKEN_REFRESHED");
    app.publish("bob", "BOB_EVENT", json!({})).await;
    assert_eq!(watch.until_type("BOB_EVENT").await["seq"], 1);
}
