//! `spawn_app()`: the real `herald` binary on an ephemeral port with a fresh
//! database, plus a WebSocket and an HTTP client that talk to it as any
//! client would.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{self, client::IntoClientRequest, protocol::CloseFrame, Message},
    MaybeTlsStream, WebSocketStream,
};

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub http: reqwest::Client,
    child: Option<Child>,
    /// Everything the server logged (stderr), across restarts.
    pub log_path: PathBuf,
    /// The test's own PostgreSQL, with `HERALD_TEST_DATABASE=postgres`.
    _postgres: Option<crate::postgres::Postgres>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts herald with extra `HERALD_*` variables.
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir"), env, &[]).await
}

/// Starts herald on SQLite whatever `HERALD_TEST_DATABASE` says: for tests
/// of SQLite's own behaviour (fsync, the disk, the secret file).
pub async fn spawn_sqlite_app_with(env: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = database_url(dir.path());
    let mut all = vec![("HERALD_DATABASE_URL", url.as_str())];
    all.extend_from_slice(env);
    spawn_app_in(dir, &all, &[]).await
}

/// Starts herald on the database in `dir`, with extra variables and without
/// the ones named in `unset`.
pub async fn spawn_app_in(dir: tempfile::TempDir, env: &[(&str, &str)], unset: &[&str]) -> TestApp {
    let mut all: Vec<(String, String)> = vec![
        ("HERALD_JWT_SECRET".into(), SECRET.into()),
        ("RUST_LOG".into(), "info".into()),
    ];
    for (k, v) in env {
        all.retain(|(key, _)| key != k);
        all.push((k.to_string(), v.to_string()));
    }
    // One name across restarts: a restarted node frees its earlier run's
    // jobs at once (as an operator's fixed HERALD_NODE_NAME does).
    if !all.iter().any(|(k, _)| k == "HERALD_NODE_NAME") {
        let name = format!("test-{}", dir.path().file_name().unwrap().to_string_lossy());
        all.push(("HERALD_NODE_NAME".into(), name));
    }
    all.retain(|(k, _)| !unset.contains(&k.as_str()));
    // `HERALD_TEST_DATABASE=postgres` runs every test that does not choose
    // its database on a fresh PostgreSQL of its own instead of SQLite.
    let postgres = (std::env::var("HERALD_TEST_DATABASE").as_deref() == Ok("postgres")
        && !all.iter().any(|(k, _)| k == "HERALD_DATABASE_URL"))
    .then(crate::postgres::Postgres::start);
    if let Some(pg) = &postgres {
        all.push(("HERALD_DATABASE_URL".into(), pg.url()));
    }
    let log_path = dir.path().join("server.log");
    let mut app = TestApp {
        addr: String::new(),
        env: all,
        dir,
        http: reqwest::Client::new(),
        child: None,
        log_path,
        _postgres: postgres,
    };
    app.start().await;
    app
}

pub fn database_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}/herald.db?mode=rwc", dir.display())
}

/// The binary under test; `HERALD_TEST_BIN` points the suite at another
/// build (an older commit's, to see a new test fail on it).
pub fn herald_bin() -> String {
    std::env::var("HERALD_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_herald").to_owned())
}

impl TestApp {
    /// Starts (or restarts) the server process on the same database.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let mut cmd = Command::new(herald_bin());
        // A test may bring its own database (PostgreSQL); else SQLite in `dir`.
        let db_url = self
            .env
            .iter()
            .find(|(k, _)| k == "HERALD_DATABASE_URL")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| database_url(self.dir.path()));
        cmd.arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--database-url")
            .arg(db_url)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("herald starts");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).ok();
            // Keep draining so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                    sink.clear();
                }
            });
            line
        });
        let line = tokio::time::timeout(Duration::from_secs(30), line)
            .await
            .expect("herald printed its address in time")
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("herald listening on http://")
            .or_else(|| line.trim().strip_prefix("herald listening on https://"))
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log:\n{}",
                    std::fs::read_to_string(&self.log_path).unwrap_or_default()
                )
            })
            .to_owned();
        self.addr = addr;
        self.child = Some(child);
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.start().await;
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the exit; answers the exit status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
        self.wait_exit()
    }

    /// Waits for the process to exit (a signal was sent); answers the exit
    /// status and how long it took.
    pub fn wait_exit(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("herald did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The database the server runs on (its SQLite file, or its PostgreSQL).
    pub fn database_url(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "HERALD_DATABASE_URL")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| database_url(self.dir.path()))
    }

    /// Waits until the log holds `needle` (within [`WAIT`]); answers the log.
    pub async fn log_contains(&self, needle: &str) -> String {
        self.log_holds(needle, 1).await
    }

    /// Waits until the log holds `needle` at least `times` times (within
    /// [`WAIT`]); answers the log.
    pub async fn log_holds(&self, needle: &str, times: usize) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= times {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the log never said {needle:?} {times} time(s):\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub fn token(&self, sub: &str, role: &str) -> String {
        token_with(SECRET, sub, role, 3600, None)
    }

    /// Connects to `/ws/realtime` as `user` with `query` (without the token).
    pub async fn realtime(&self, user: &str, query: &str) -> Ws {
        let token = self.token(user, "agent");
        let sep = if query.is_empty() { "" } else { "&" };
        Ws::connect(&self.ws_url(&format!("/ws/realtime?token={token}{sep}{query}")))
            .await
            .expect("realtime socket opens")
    }

    /// Connects and reads `CONNECTED`; answers the socket and that payload.
    pub async fn realtime_connected(&self, user: &str, query: &str) -> (Ws, Value) {
        let mut ws = self.realtime(user, query).await;
        let connected = ws.next_json().await;
        assert_eq!(connected["type"], "CONNECTED", "first message: {connected}");
        let payload = connected["payload"].clone();
        (ws, payload)
    }

    /// A cashier terminal of `venue` (token in `?token=`) that has sent
    /// `connect`; answers the socket and the `connected` message.
    pub async fn terminal(&self, client_id: &str, venue: &str, extra: Value) -> (Ws, Value) {
        let token = token_with(SECRET, client_id, "cashier", 3600, Some(venue));
        let mut ws = Ws::connect(&self.ws_url(&format!("/ws?token={token}")))
            .await
            .expect("terminal socket opens");
        let mut connect = json!({"type": "connect", "clientId": client_id, "timestamp": "2026-02-03T02:25:33+03:00"});
        if let (Some(c), Some(e)) = (connect.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        ws.send_json(&connect).await;
        let connected = ws.next_json().await;
        assert_eq!(connected["type"], "connected", "{connected}");
        (ws, connected)
    }

    pub fn cashier_token(&self, venue: &str) -> String {
        token_with(SECRET, "till", "cashier", 3600, Some(venue))
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// A JSON call as a dashboard device makes it (`X-Device-Id`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        device: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token);
        if let Some(d) = device {
            req = req.header("X-Device-Id", d);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request")
    }

    /// Like [`call`], answering the status and the JSON body.
    pub async fn call_json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        device: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let res = self.call(method, path, token, device, body).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Publishes one event to `user` as a service; answers its seq.
    pub async fn publish(&self, user: &str, kind: &str, payload: Value) -> Option<u64> {
        let res = self
            .post(
                "/api/publish",
                &self.token("backend", "service"),
                &json!({"userId": user, "type": kind, "payload": payload}),
            )
            .await;
        assert_eq!(res.status(), 200, "publish failed: {:?}", res.text().await);
        let body: Value = res.json().await.unwrap();
        body["seqs"][user].as_u64()
    }
}

/// A process's resident memory (KiB), from `/proc`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs a token the way any issuer sharing the secret would.
pub fn token_with(
    secret: &str,
    sub: &str,
    role: &str,
    ttl_secs: i64,
    venue: Option<&str>,
) -> String {
    let exp = now_secs() as i64 + ttl_secs;
    let mut claims = json!({"sub": sub, "role": role, "exp": exp});
    if let Some(v) = venue {
        claims["venue"] = json!(v);
    }
    sign(secret, &claims)
}

/// Signs HS256 claims with the jsonwebtoken crate, as any issuer sharing
/// the secret would.
pub fn sign(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A WebSocket client.
pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<u16>, String),
    /// The connection dropped without a close frame.
    Dropped(String),
}

impl Ended {
    pub fn code(&self) -> Option<u16> {
        match self {
            Ended::Closed(code, _) => *code,
            Ended::Dropped(_) => None,
        }
    }
}

impl Ws {
    pub async fn connect(url: &str) -> Result<Ws, tungstenite::Error> {
        let request = url.into_client_request()?;
        Self::connect_request(request).await
    }

    pub async fn connect_request(
        request: tungstenite::handshake::client::Request,
    ) -> Result<Ws, tungstenite::Error> {
        let (inner, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws { inner })
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.inner.send(Message::text(text)).await.expect("send");
    }

    /// The next text message as JSON within `wait`, or None (pings are skipped).
    pub async fn next_json_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.inner.next())
                .await
                .ok()?;
            match msg {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("server sends JSON"))
                }
                Some(Ok(Message::Close(frame))) => panic!("socket closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error: {e}"),
                None => panic!("socket ended"),
            }
        }
    }

    /// The next text message, unparsed (for readers that must keep up).
    pub async fn next_text(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.inner.next())
                .await
                .expect("a message within the wait");
            match msg {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Close(frame))) => panic!("socket closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error: {e}"),
                None => panic!("socket ended"),
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        self.next_json_within(WAIT)
            .await
            .expect("a message within the wait")
    }

    /// The next message that is not a presence event (`PRESENCE_JOINED` /
    /// `PRESENCE_LEFT` interleave with a user's events whenever another of
    /// its named devices comes or goes).
    pub async fn next_event(&mut self) -> Value {
        loop {
            let m = self.next_json().await;
            if !m["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("PRESENCE_"))
            {
                return m;
            }
        }
    }

    /// Reads until a message of `kind` arrives; answers it.
    pub async fn until_type(&mut self, kind: &str) -> Value {
        loop {
            let msg = self.next_json().await;
            if msg["type"] == kind {
                return msg;
            }
        }
    }

    /// Asserts no text message arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(msg) = self.next_json_within(wait).await {
            panic!("expected nothing, got {msg}");
        }
    }

    /// Reads until the socket ends; answers the close code and the text
    /// messages that came before it.
    pub async fn until_closed(&mut self, wait: Duration) -> (Ended, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let msg = tokio::time::timeout_at(deadline, self.inner.next())
                .await
                .unwrap_or_else(|_| panic!("socket still open after {wait:?}"));
            match msg {
                Some(Ok(Message::Text(text))) => seen.push(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = match frame {
                        Some(CloseFrame { code, reason }) => {
                            (Some(u16::from(code)), reason.to_string())
                        }
                        None => (None, String::new()),
                    };
                    return (Ended::Closed(code, reason), seen);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return (Ended::Dropped(e.to_string()), seen),
                None => return (Ended::Dropped("end of stream".into()), seen),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

/// The HTTP status of a refused upgrade.
pub async fn upgrade_status(request: tungstenite::handshake::client::Request) -> u16 {
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// Asserts a list of events carries seqs `from..=to` in order.
pub fn assert_seqs(events: &[Value], from: u64, to: u64) {
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    let expected: Vec<u64> = (from..=to).collect();
    assert_eq!(seqs, expected);
}

/// A WebSocket spoken by hand, for what a well-behaved client library
/// refuses to send: frame headers that lie about their length, text that
/// is not UTF-8. Frames from the client are masked (with a zero key, which
/// RFC 6455 allows), as every client's must be.
pub struct RawWs {
    pub read: tokio::net::tcp::OwnedReadHalf,
    pub write: tokio::net::tcp::OwnedWriteHalf,
    buf: Vec<u8>,
}

/// With a 1 s heartbeat: `quiet` reads the server's frames but answers none
/// of its pings, as a dead client would, and must be closed with 1000 after
/// 2.5 heartbeats (the check runs each heartbeat: between 2.5 and 4 s);
/// `lively` keeps reading (tungstenite answers the pings) and must hear
/// nothing and stay open. Answers `lively`, for the caller to show it
/// still works.
pub async fn closed_for_silence_while(mut quiet: RawWs, mut lively: Ws) -> Ws {
    let started = std::time::Instant::now();
    let lively = tokio::spawn(async move {
        lively.expect_silence(Duration::from_millis(5000)).await;
        lively
    });
    let code = quiet.close_code(Duration::from_secs(8)).await;
    let after = started.elapsed();
    assert_eq!(code, Some(1000), "closed as the docs say, after {after:?}");
    assert!(
        after >= Duration::from_millis(2400) && after <= Duration::from_millis(4500),
        "closed after {after:?}, not after about 2.5 heartbeats of 1 s"
    );
    lively.await.unwrap()
}

impl RawWs {
    /// Opens `path` on `addr` (host:port) with a handshake; panics unless 101.
    pub async fn connect(addr: &str, path: &str) -> RawWs {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        let (mut read, mut write) = stream.into_split();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        write.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let end = loop {
            let n = tokio::time::timeout(WAIT, read.read(&mut chunk))
                .await
                .expect("handshake answered")
                .unwrap();
            assert!(n > 0, "connection closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
        RawWs {
            read,
            write,
            buf: buf[end..].to_vec(),
        }
    }

    /// A frame's header as a client sends it: `opcode`, FIN, the announced
    /// length (whatever follows), and a zero mask key.
    pub fn header(opcode: u8, fin: bool, length: u64) -> Vec<u8> {
        let mut h = vec![opcode | if fin { 0x80 } else { 0 }];
        if length < 126 {
            h.push(0x80 | length as u8);
        } else if length <= u16::MAX as u64 {
            h.push(0x80 | 126);
            h.extend_from_slice(&(length as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&length.to_be_bytes());
        }
        h.extend_from_slice(&[0, 0, 0, 0]);
        h
    }

    /// A whole frame (masked with the zero key: the payload as is).
    pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut f = Self::header(opcode, fin, payload.len() as u64);
        f.extend_from_slice(payload);
        f
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.write.write_all(bytes).await
    }

    /// The next frame from the server within `wait`: (opcode, payload);
    /// None when the connection ends or nothing comes.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0F;
                let (len, at) = match self.buf[1] & 0x7F {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.read.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until the server's close frame; answers its code (None: the
    /// connection ended without one, or nothing came within `wait`).
    pub async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (opcode, payload) = self.next_frame(left).await?;
            if opcode == 0x8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    }
}
