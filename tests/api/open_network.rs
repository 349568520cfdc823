//! Ready for the open network (issue 14): allowed origins and CORS, TLS in
//! the binary with SIGHUP reload, security headers, rate limits.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};

use crate::helpers::*;

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, app.url("/api/drafts"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,x-device-id,idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

fn acao(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let app = spawn_app_with(&[(
        "HERALD_ALLOWED_ORIGINS",
        "https://app.example.com,http://localhost:5173",
    )])
    .await;
    let ok = preflight(&app, APP).await;
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(acao(&ok).as_deref(), Some(APP));
    let allowed = ok
        .headers()
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "x-device-id",
        "idempotency-key",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert!(ok
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let refused = preflight(&app, EVIL).await;
    assert_eq!(
        acao(&refused),
        None,
        "a refused origin gets no CORS headers"
    );

    // Real calls: the allowed origin gets the headers, a refused one does not.
    let token = app.token("alice", "agent");
    for (origin, want) in [(APP, Some(APP)), (EVIL, None)] {
        let res = app
            .http
            .post(app.url("/api/drafts"))
            .bearer_auth(&token)
            .header("Origin", origin)
            .json(&json!({"payload": {"from": origin}}))
            .send()
            .await
            .unwrap();
        assert_eq!(acao(&res).as_deref(), want, "{origin}");
    }
    // The server's own origin always; no Origin (a back end): no CORS at all.
    let own = format!("http://{}", app.addr);
    let res = app
        .http
        .get(app.url("/api/drafts"))
        .bearer_auth(&token)
        .header("Origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&res).as_deref(), Some(own.as_str()));
    let res = app
        .http
        .get(app.url("/api/drafts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(acao(&res), None);
}

fn upgrade_request(url: &str, origin: Option<&str>) -> tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn socket_upgrades_refuse_other_browser_origins() {
    let app = spawn_app_with(&[("HERALD_ALLOWED_ORIGINS", APP)]).await;
    let own = format!("http://{}", app.addr);
    let realtime = app.ws_url(&format!(
        "/ws/realtime?token={}",
        app.token("alice", "agent")
    ));
    let cashier = app.ws_url(&format!("/ws?token={}", app.cashier_token("main")));
    for url in [&realtime, &cashier] {
        assert_eq!(
            upgrade_status(upgrade_request(url, Some(APP))).await,
            101,
            "{url}"
        );
        assert_eq!(
            upgrade_status(upgrade_request(url, Some(&own))).await,
            101,
            "{url}"
        );
        assert_eq!(
            upgrade_status(upgrade_request(url, None)).await,
            101,
            "{url}"
        );
        assert_eq!(
            upgrade_status(upgrade_request(url, Some(EVIL))).await,
            403,
            "{url}"
        );
    }
}

#[tokio::test]
async fn security_headers_are_on_the_dashboard_and_the_api() {
    let app = spawn_app().await;
    for path in ["/", "/js/app.js", "/api/drafts", "/healthz"] {
        let res = app.get(path, &app.token("alice", "agent")).await;
        let h = res.headers();
        let csp = h
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned());
        let csp = csp.unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(
            h.get("x-content-type-options").unwrap(),
            "nosniff",
            "{path}"
        );
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn a_token_over_its_rest_limit_gets_429_and_others_are_unaffected() {
    let app = spawn_app_with(&[("HERALD_REST_RATE", "2"), ("HERALD_REST_BURST", "5")]).await;
    let busy = app.token("alice", "agent");
    let mut statuses = Vec::new();
    let mut limited = None;
    // More calls than the burst plus any refill a slow machine allows.
    for _ in 0..16 {
        let res = app.get("/api/drafts", &busy).await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            limited = Some(res);
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    let res = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
    // Another token, even of the same user, has its own bucket.
    let other = token_with(SECRET, "bob", "agent", 3600, None);
    assert_eq!(app.get("/api/drafts", &other).await.status(), 200);
    // After the wait, the first token is served again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(app.get("/api/drafts", &busy).await.status(), 200);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herald_rate_limited_total{limit=\"rest\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_rate_limit_per_second{limit=\"rest\"} 2"),
        "{metrics}"
    );
}

/// Opens `/ws/realtime` from a chosen loopback source address.
async fn upgrade_from(app: &TestApp, source: &str) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(app.addr.parse().unwrap()).await.unwrap();
    let url = app.ws_url(&format!(
        "/ws/realtime?token={}",
        app.token("alice", "agent")
    ));
    match tokio_tungstenite::client_async(url, stream).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(res)) => {
            if res.status() == 429 {
                assert!(res.headers().get("retry-after").is_some());
            }
            res.status().as_u16()
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_flood_of_upgrades_from_one_address_is_limited_while_another_connects() {
    let app = spawn_app_with(&[("HERALD_UPGRADE_RATE", "3")]).await;
    let mut seen = Vec::new();
    for _ in 0..16 {
        seen.push(upgrade_from(&app, "127.0.0.1").await);
    }
    // A burst of twice the rate, then 429.
    assert_eq!(&seen[..6], &[101; 6], "{seen:?}");
    assert!(seen[6..].contains(&429), "{seen:?}");
    assert_eq!(
        upgrade_from(&app, "127.0.0.2").await,
        101,
        "another address is not limited"
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herald_rate_limited_total{limit=\"upgrade\"}"),
        "{metrics}"
    );
}

struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn make_cert() -> Cert {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    Cert {
        pem: c.cert.pem(),
        key: c.signing_key.serialize_pem(),
        der: c.cert.der().to_vec(),
    }
}

/// A TLS connection trusting `certs`; answers the stream and the server's certificate.
async fn tls_connect(
    addr: &str,
    certs: &[&Cert],
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(rustls::pki_types::CertificateDer::from(c.der.clone()))
            .unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (tls, peer)
}

#[tokio::test]
async fn https_and_wss_with_a_certificate_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = make_cert();
    std::fs::write(&cert_path, &first.pem).unwrap();
    std::fs::write(&key_path, &first.key).unwrap();
    let app = spawn_app_with(&[
        ("HERALD_TLS_CERT", cert_path.to_str().unwrap()),
        ("HERALD_TLS_KEY", key_path.to_str().unwrap()),
    ])
    .await;
    let second = make_cert();

    // https://
    let (mut tls, peer) = tls_connect(&app.addr, &[&first, &second]).await;
    assert_eq!(peer, first.der);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // wss:// for a dashboard and a terminal.
    let (tls, _) = tls_connect(&app.addr, &[&first]).await;
    let url = format!(
        "wss://localhost/ws/realtime?token={}",
        app.token("alice", "agent")
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let hello = next_text(&mut ws).await;
    assert_eq!(hello["type"], "CONNECTED", "{hello}");
    let (tls, _) = tls_connect(&app.addr, &[&first]).await;
    let url = format!("wss://localhost/ws?token={}", app.cashier_token("main"));
    let (mut term, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    futures_util::SinkExt::send(
        &mut term,
        Message::text(json!({"type": "connect", "clientId": "till-1"}).to_string()),
    )
    .await
    .unwrap();
    assert_eq!(next_text(&mut term).await["type"], "connected");

    // A renewed certificate: SIGHUP, and new connections get it.
    std::fs::write(&cert_path, &second.pem).unwrap();
    std::fs::write(&key_path, &second.key).unwrap();
    unsafe {
        libc::kill(app.pid() as i32, libc::SIGHUP);
    }
    let mut served = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        served = tls_connect(&app.addr, &[&first, &second]).await.1;
        if served == second.der {
            break;
        }
    }
    assert_eq!(served, second.der, "the reloaded certificate is served");
    // The socket opened before the reload still works.
    let (mut tls, _) = tls_connect(&app.addr, &[&second]).await;
    let body = json!({"userId": "alice", "type": "AFTER_RELOAD", "payload": {}}).to_string();
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        app.token("svc", "service"),
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(next_text(&mut ws).await["type"], "AFTER_RELOAD");
    // A bad file on SIGHUP keeps the certificate in use.
    std::fs::write(&key_path, "not a key").unwrap();
    unsafe {
        libc::kill(app.pid() as i32, libc::SIGHUP);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        tls_connect(&app.addr, &[&first, &second]).await.1,
        second.der
    );
    assert!(
        app.log().contains("still serving the previous certificate"),
        "{}",
        app.log()
    );
}

async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn startup_names_a_missing_or_bad_tls_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, &cert.pem).unwrap();
    let missing = dir.path().join("no-such-key.pem");
    let bad = dir.path().join("bad-cert.pem");
    std::fs::write(&bad, "garbage").unwrap();
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, &cert.key).unwrap();
    for (c, k, named) in [(&cert_path, &missing, &missing), (&bad, &key_path, &bad)] {
        let out = std::process::Command::new(herald_bin())
            .args(["serve", "--addr", "127.0.0.1:0"])
            .arg("--database-url")
            .arg(database_url(dir.path()))
            .env_clear()
            .env("HERALD_JWT_SECRET", SECRET)
            .env("HERALD_TLS_CERT", c)
            .env("HERALD_TLS_KEY", k)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named.to_str().unwrap()), "{err}");
    }
    // One without the other is refused by the settings themselves.
    let out = std::process::Command::new(herald_bin())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_clear()
        .env("HERALD_TLS_CERT", &cert_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tls-key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate with another certificate's key: every handshake would
/// fail, so startup stops naming both files; and a SIGHUP after only the
/// certificate was replaced keeps the pair in use, saying why.
#[tokio::test]
async fn a_key_that_is_not_the_certificates_is_refused_at_startup_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (make_cert(), make_cert());
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &a.pem).unwrap();
    std::fs::write(&key_path, &b.key).unwrap();
    let mut child = std::process::Command::new(herald_bin())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .arg("--database-url")
        .arg(database_url(dir.path()))
        .env_clear()
        .env("HERALD_JWT_SECRET", SECRET)
        .env("HERALD_TLS_CERT", &cert_path)
        .env("HERALD_TLS_KEY", &key_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("herald started with a key that is not its certificate's");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains(cert_path.to_str().unwrap()) && err.contains(key_path.to_str().unwrap()),
        "{err}"
    );
    assert!(err.contains("does not belong"), "{err}");

    // Running with A: a SIGHUP after only the certificate became B's keeps A.
    std::fs::write(&key_path, &a.key).unwrap();
    let app = spawn_app_with(&[
        ("HERALD_TLS_CERT", cert_path.to_str().unwrap()),
        ("HERALD_TLS_KEY", key_path.to_str().unwrap()),
    ])
    .await;
    std::fs::write(&cert_path, &b.pem).unwrap();
    unsafe {
        libc::kill(app.pid() as i32, libc::SIGHUP);
    }
    let deadline = std::time::Instant::now() + WAIT;
    while !app.log().contains("does not belong") {
        assert!(std::time::Instant::now() < deadline, "{}", app.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, served) = tls_connect(&app.addr, &[&a, &b]).await;
    assert_eq!(
        served, a.der,
        "the pair in use is kept; handshakes still work"
    );
    assert!(
        !app.log().contains("SIGHUP: TLS certificate reloaded"),
        "{}",
        app.log()
    );
}
