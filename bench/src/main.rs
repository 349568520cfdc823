//! herald-bench: a load generator for herald, loopback only.
//!
//! Each scenario is bounded in count and time, prints progress to stderr and
//! one JSON line with its figures to stdout:
//!
//! - `idle`: open N sockets and hold them; connect times, and the server's
//!   RSS per connection (given its pid);
//! - `cashier-fanout`: N terminals, K of them sending `device_update` at R
//!   broadcasts a second; delivery latency from a timestamp in the message,
//!   deliveries per second, lost deliveries;
//! - `realtime-fanout`: U users x D devices, `POST /api/publish` at R a second;
//!   end-to-end latency, seq gaps and duplicates;
//! - `reconnect-storm`: every device disconnects, E events per user are
//!   published, every device reconnects with `since`; time until all have
//!   `REPLAY_COMPLETE`, and whether every missed event arrived exactly once.

use std::{
    cell::RefCell,
    collections::HashMap,
    rc::Rc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures_util::{stream, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser)]
#[command(
    name = "herald-bench",
    about = "Load generator for herald (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
struct Common {
    /// herald's address (must be loopback).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's JWT secret, to mint tokens.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// The server's pid, to report its memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Sockets opened at once.
    #[arg(long, default_value = "100")]
    connect_concurrency: usize,
    /// Hard limit for the whole scenario.
    #[arg(long, default_value = "300")]
    timeout_secs: u64,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Kind {
    Realtime,
    Cashier,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open N sockets and hold them.
    Idle {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "1000")]
        connections: usize,
        #[arg(long, value_enum, default_value = "realtime")]
        kind: Kind,
        /// Seconds to hold the sockets before measuring.
        #[arg(long, default_value = "3")]
        hold_secs: u64,
    },
    /// N terminals, K senders, R broadcasts a second.
    CashierFanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "100")]
        terminals: usize,
        #[arg(long, default_value = "5")]
        senders: usize,
        /// Broadcasts a second, all senders together.
        #[arg(long, default_value = "50")]
        rate: f64,
        #[arg(long, default_value = "10")]
        duration_secs: u64,
        #[arg(long, default_value = "bench")]
        venue: String,
    },
    /// U users x D devices, R durable publishes a second.
    RealtimeFanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "100")]
        users: usize,
        #[arg(long, default_value = "3")]
        devices: usize,
        #[arg(long, default_value = "500")]
        rate: f64,
        #[arg(long, default_value = "10")]
        duration_secs: u64,
        /// Publish requests in flight at once.
        #[arg(long, default_value = "64")]
        concurrency: usize,
        /// More nodes of the same cluster (repeat): devices and publishes
        /// are spread over `--url` and these, round robin, and deliveries
        /// published on another node than the device's are timed apart.
        #[arg(long = "also-url")]
        also: Vec<String>,
        /// Every publish carries an `Idempotency-Key` (its answer is
        /// stored with it), to measure what a keyed write costs.
        #[arg(long)]
        keyed: bool,
    },
    /// Disconnect every device, publish E events per user, reconnect all.
    ReconnectStorm {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "100")]
        users: usize,
        #[arg(long, default_value = "3")]
        devices: usize,
        #[arg(long, default_value = "50")]
        events: usize,
    },
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn token(secret: &str, sub: &str, role: &str, venue: Option<&str>) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 24 * 3600;
    let mut claims = json!({"sub": sub, "role": role, "exp": exp});
    if let Some(v) = venue {
        claims["venue"] = json!(v);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// The server's resident memory in KiB.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds")
}

/// p50/p99/p999/max in milliseconds from a microsecond histogram.
fn percentiles(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.50)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

fn ws_base(url: &str) -> String {
    url.replacen("http://", "ws://", 1)
}

fn check_loopback(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad --url: {e}"))?;
    match parsed.host_str() {
        Some("127.0.0.1") | Some("localhost") | Some("[::1]") | Some("::1") => Ok(()),
        other => Err(format!(
            "herald-bench only targets loopback; got host {other:?}"
        )),
    }
}

/// Reads the next text frame as JSON (skipping pings).
async fn next_json(ws: &mut Ws) -> Option<Value> {
    serde_json::from_str(&next_text(ws).await?).ok()
}

/// The next text frame (`None` once the socket closes).
async fn next_text(ws: &mut Ws) -> Option<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// What the storm reads of a replayed frame: typed and borrowed, the rest
/// skipped. A `serde_json::Value` per frame (a map, a string per key) was
/// about a third of the generator's samples during the storm, which this
/// machine's generator core could not spare.
#[derive(serde::Deserialize)]
struct ReplayFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    seq: Option<u64>,
    payload: Option<ReplayPayload>,
}

#[derive(serde::Deserialize)]
struct ReplayPayload {
    recovered: Option<bool>,
}

/// The digits after `key` in `text` (cheap field extraction on the hot path).
fn number_after(text: &str, key: &str) -> Option<u128> {
    let start = text.find(key)? + key.len();
    let digits: String = text[start..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Prints `line()` to stderr every second until dropped.
fn progress(line: impl Fn() -> String + 'static) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!("  {}", line());
        }
    })
}

/// Opens `n` sockets, `concurrency` at a time; `open(i)` connects socket i.
async fn open_many<F, Fut, T>(n: usize, concurrency: usize, label: &str, open: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let done = Rc::new(RefCell::new(0usize));
    let d = done.clone();
    let label_owned = label.to_owned();
    let ticker = progress(move || format!("{label_owned}: {}/{n} open", d.borrow()));
    let results: Vec<Result<T, String>> = stream::iter(0..n)
        .map(|i| {
            let done = done.clone();
            let fut = open(i);
            async move {
                let r = fut.await;
                *done.borrow_mut() += 1;
                r
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    ticker.abort();
    let mut ok = Vec::with_capacity(n);
    let mut failed = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "  {label}: {failed} of {n} failed to open (first: {})",
            first_error.unwrap_or_default()
        );
    }
    ok
}

async fn connect(url: &str) -> Result<Ws, String> {
    // A small read buffer: the 128 KiB default is zeroed on every read, which
    // alone took a third of the generator's core at 250k frames a second.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// A realtime device: connected and past `CONNECTED`; answers (ws, lastSeq, epoch).
async fn realtime_device(
    base: &str,
    token: &str,
    extra: &str,
) -> Result<(Ws, u64, String), String> {
    let mut ws = connect(&format!("{base}/ws/realtime?token={token}{extra}")).await?;
    let hello = next_json(&mut ws).await.ok_or("closed before CONNECTED")?;
    if hello["type"] != "CONNECTED" {
        return Err(format!("expected CONNECTED, got {hello}"));
    }
    Ok((
        ws,
        hello["payload"]["lastSeq"].as_u64().unwrap_or(0),
        hello["payload"]["epoch"].as_str().unwrap_or("").to_owned(),
    ))
}

/// A cashier terminal past `connected`.
async fn terminal(base: &str, token: &str, client_id: &str) -> Result<Ws, String> {
    let mut ws = connect(&format!("{base}/ws?token={token}")).await?;
    ws.send(Message::text(
        json!({"type": "connect", "clientId": client_id}).to_string(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    let hello = next_json(&mut ws).await.ok_or("closed before connected")?;
    if hello["type"] != "connected" {
        return Err(format!("expected connected, got {hello}"));
    }
    Ok(ws)
}

async fn idle(common: Common, connections: usize, kind: Kind, hold_secs: u64) -> Value {
    let base = ws_base(&common.url);
    let before = rss_kib(common.pid);
    let connect_times = Rc::new(RefCell::new(histogram()));
    let secret = common.secret.clone();
    let started = Instant::now();
    let sockets = open_many(connections, common.connect_concurrency, "idle", |i| {
        let (base, secret, times) = (base.clone(), secret.clone(), connect_times.clone());
        async move {
            let t0 = Instant::now();
            let ws = match kind {
                Kind::Realtime => {
                    let tok = token(&secret, &format!("idle-u{}", i / 3), "agent", None);
                    realtime_device(&base, &tok, &format!("&deviceId=d{}", i % 3))
                        .await?
                        .0
                }
                Kind::Cashier => {
                    let tok = token(&secret, "idle", "cashier", Some("bench-idle"));
                    terminal(&base, &tok, &format!("idle-{i}")).await?
                }
            };
            times
                .borrow_mut()
                .record(t0.elapsed().as_micros().max(1) as u64)
                .ok();
            Ok(ws)
        }
    })
    .await;
    let open_secs = started.elapsed().as_secs_f64();
    eprintln!("  holding {} sockets for {hold_secs}s", sockets.len());
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let after = rss_kib(common.pid);
    let per_conn = match (before, after) {
        (Some(b), Some(a)) if !sockets.is_empty() => {
            Some(((a.saturating_sub(b)) as f64 * 1024.0 / sockets.len() as f64).round())
        }
        _ => None,
    };
    let result = json!({
        "scenario": "idle",
        "kind": if kind == Kind::Realtime { "realtime" } else { "cashier" },
        "requested": connections,
        "open": sockets.len(),
        "open_secs": (open_secs * 100.0).round() / 100.0,
        "connect_ms": percentiles(&connect_times.borrow()),
        "server_rss_kib_before": before,
        "server_rss_kib_after": after,
        "server_bytes_per_connection": per_conn,
    });
    drop(sockets);
    result
}

#[derive(Default)]
struct Fanout {
    received: u64,
    latency: Option<Histogram<u64>>,
}

async fn cashier_fanout(
    common: Common,
    terminals: usize,
    senders: usize,
    rate: f64,
    duration_secs: u64,
    venue: String,
) -> Value {
    let base = ws_base(&common.url);
    let tok = token(&common.secret, "bench-till", "cashier", Some(&venue));
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/api/devices", common.url))
        .bearer_auth(&tok)
        .json(&json!({"deviceId": "bench-pc1"}))
        .send()
        .await;
    if let Err(e) = created {
        return json!({"scenario": "cashier-fanout", "error": format!("cannot reach herald: {e}")});
    }
    let sockets = open_many(terminals, common.connect_concurrency, "terminals", |i| {
        let (base, tok) = (base.clone(), tok.clone());
        async move { terminal(&base, &tok, &format!("bench-{i}")).await }
    })
    .await;
    let n = sockets.len();
    let stats = Rc::new(RefCell::new(Fanout {
        received: 0,
        latency: Some(histogram()),
    }));
    let mut writers = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let stats = stats.clone();
        let record = move |msg: Message| {
            if let Message::Text(text) = msg {
                if let Some(sent) = number_after(&text, "\"notes\":\"t=") {
                    let us = ((now_ns().saturating_sub(sent)) / 1000).max(1) as u64;
                    let mut s = stats.borrow_mut();
                    s.received += 1;
                    if let Some(h) = s.latency.as_mut() {
                        h.record(us).ok();
                    }
                }
            }
        };
        if i < senders {
            let (sink, mut read) = ws.split();
            writers.push(sink);
            tokio::task::spawn_local(async move {
                while let Some(Ok(msg)) = read.next().await {
                    record(msg);
                }
            });
        } else {
            // Receivers only: no split, no lock on every read.
            let mut ws = ws;
            tokio::task::spawn_local(async move {
                while let Some(Ok(msg)) = ws.next().await {
                    record(msg);
                }
            });
        }
    }
    let sent = Rc::new(RefCell::new(0u64));
    let (s2, st2) = (sent.clone(), stats.clone());
    let ticker = progress(move || {
        format!(
            "sent {} broadcasts, {} deliveries",
            s2.borrow(),
            st2.borrow().received
        )
    });
    let k = writers.len().max(1);
    let every = Duration::from_secs_f64(k as f64 / rate);
    let until = Instant::now() + Duration::from_secs(duration_secs);
    let mut tasks = Vec::new();
    for (w, mut sink) in writers.into_iter().enumerate() {
        let sent = sent.clone();
        tasks.push(tokio::task::spawn_local(async move {
            // Spread the senders over one interval.
            tokio::time::sleep(every.mul_f64(w as f64 / k as f64)).await;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while Instant::now() < until {
                tick.tick().await;
                let msg = json!({"type": "device_update", "deviceId": "bench-pc1",
                                 "data": {"notes": format!("t={}", now_ns())}});
                if sink.send(Message::text(msg.to_string())).await.is_err() {
                    break;
                }
                *sent.borrow_mut() += 1;
            }
            sink
        }));
    }
    let mut sinks = Vec::new();
    for t in tasks {
        if let Ok(s) = t.await {
            sinks.push(s);
        }
    }
    let sent_total = *sent.borrow();
    let expected = sent_total * (n as u64 - 1);
    let drain_until = Instant::now() + Duration::from_secs(10);
    while stats.borrow().received < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ticker.abort();
    let s = stats.borrow();
    json!({
        "scenario": "cashier-fanout",
        "terminals": n,
        "senders": k,
        "rate_per_s": rate,
        "duration_s": duration_secs,
        "broadcasts": sent_total,
        "expected_deliveries": expected,
        "delivered": s.received,
        "lost": expected.saturating_sub(s.received),
        "deliveries_per_s": (s.received as f64 / duration_secs as f64).round(),
        "latency_ms": percentiles(s.latency.as_ref().unwrap()),
        "server_rss_kib": rss_kib(common.pid),
    })
}

#[derive(Default)]
struct DeviceLog {
    last: u64,
    received: u64,
    gaps: u64,
    dups: u64,
}

async fn realtime_fanout(
    common: Common,
    users: usize,
    devices: usize,
    rate: f64,
    duration_secs: u64,
    concurrency: usize,
    also: Vec<String>,
    keyed: bool,
) -> Value {
    // Keys unique to this run: a fresh database is not assumed.
    let run = now_ns();
    let mut nodes = vec![common.url.clone()];
    nodes.extend(also);
    for url in &nodes {
        if let Err(e) = check_loopback(url) {
            return json!({"error": e});
        }
    }
    let bases: Vec<String> = nodes.iter().map(|u| ws_base(u)).collect();
    let secret = common.secret.clone();
    let n = users * devices;
    let count = nodes.len();
    let opened = open_many(n, common.connect_concurrency, "devices", |i| {
        let (base, secret) = (bases[i % count].clone(), secret.clone());
        async move {
            let tok = token(&secret, &format!("rt-u{}", i / devices), "agent", None);
            realtime_device(&base, &tok, &format!("&deviceId=d{}", i % devices)).await
        }
    })
    .await;
    let latency = Rc::new(RefCell::new(histogram()));
    // Deliveries published through another node than the device's.
    let cross = Rc::new(RefCell::new(histogram()));
    let logs: Rc<RefCell<Vec<DeviceLog>>> = Rc::new(RefCell::new(Vec::new()));
    for (idx, (ws, last, _)) in opened.into_iter().enumerate() {
        logs.borrow_mut().push(DeviceLog {
            last,
            ..Default::default()
        });
        let (latency, logs, cross) = (latency.clone(), logs.clone(), cross.clone());
        let node = (idx % count) as u128;
        let mut read = ws;
        tokio::task::spawn_local(async move {
            while let Some(Ok(msg)) = read.next().await {
                if let Message::Text(text) = msg {
                    let (Some(seq), Some(sent)) = (
                        number_after(&text, "\"seq\":"),
                        number_after(&text, "\"t\":"),
                    ) else {
                        continue;
                    };
                    let us = ((now_ns().saturating_sub(sent)) / 1000).max(1) as u64;
                    latency.borrow_mut().record(us).ok();
                    if number_after(&text, "\"o\":").is_some_and(|o| o != node) {
                        cross.borrow_mut().record(us).ok();
                    }
                    let mut logs = logs.borrow_mut();
                    let log = &mut logs[idx];
                    let seq = seq as u64;
                    log.received += 1;
                    if seq <= log.last {
                        log.dups += 1;
                    } else {
                        if seq > log.last + 1 {
                            log.gaps += seq - log.last - 1;
                        }
                        log.last = seq;
                    }
                }
            }
        });
    }
    let connected = logs.borrow().len();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let svc = token(&common.secret, "bench-backend", "service", None);
    let urls: Vec<String> = nodes.iter().map(|u| format!("{u}/api/publish")).collect();
    let ack = Rc::new(RefCell::new(histogram()));
    let published = Rc::new(RefCell::new((0u64, 0u64))); // (ok, failed)
    let (p2, l2) = (published.clone(), latency.clone());
    let ticker = progress(move || {
        let (ok, failed) = *p2.borrow();
        format!(
            "published {ok} ({failed} failed), {} deliveries",
            l2.borrow().len()
        )
    });
    let (tx, rx) = tokio::sync::mpsc::channel::<usize>(concurrency * 4);
    let rx = Rc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (rx, http, urls, svc, ack, published) = (
            rx.clone(),
            http.clone(),
            urls.clone(),
            svc.clone(),
            ack.clone(),
            published.clone(),
        );
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let Some(k) = rx.lock().await.recv().await else {
                    break;
                };
                let origin = k % urls.len();
                let body = json!({"userId": format!("rt-u{}", k % users), "type": "BENCH_EVENT",
                                  "payload": {"t": now_ns() as u64, "k": k, "o": origin}});
                let t0 = Instant::now();
                let mut request = http.post(&urls[origin]).bearer_auth(&svc).json(&body);
                if keyed {
                    request = request.header("Idempotency-Key", format!("bench-{run}-{k}"));
                }
                let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
                ack.borrow_mut()
                    .record(t0.elapsed().as_micros().max(1) as u64)
                    .ok();
                let mut p = published.borrow_mut();
                if ok {
                    p.0 += 1;
                } else {
                    p.1 += 1;
                }
            }
        }));
    }
    let every = Duration::from_secs_f64(1.0 / rate);
    let until = Instant::now() + Duration::from_secs(duration_secs);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut k = 0usize;
    let mut dropped = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        if tx.try_send(k).is_err() {
            dropped += 1; // the publishers cannot keep up: offered load not sent
        }
        k += 1;
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let (ok, failed) = *published.borrow();
    let expected = ok * devices as u64;
    let drain_until = Instant::now() + Duration::from_secs(10);
    while latency.borrow().len() < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ticker.abort();
    let logs = logs.borrow();
    let received: u64 = logs.iter().map(|l| l.received).sum();
    json!({
        "scenario": "realtime-fanout",
        "keyed": keyed,
        "users": users,
        "devices": connected,
        "offered_rate_per_s": rate,
        "duration_s": duration_secs,
        "published": ok,
        "publish_failed": failed,
        "not_sent_backlog": dropped,
        "publishes_per_s": (ok as f64 / duration_secs as f64).round(),
        "expected_deliveries": expected,
        "delivered": received,
        "lost": expected.saturating_sub(received),
        "seq_gaps": logs.iter().map(|l| l.gaps).sum::<u64>(),
        "duplicates": logs.iter().map(|l| l.dups).sum::<u64>(),
        "nodes": count,
        "end_to_end_ms": percentiles(&latency.borrow()),
        "cross_node_ms": percentiles(&cross.borrow()),
        "publish_ack_ms": percentiles(&ack.borrow()),
        "server_rss_kib": rss_kib(common.pid),
    })
}

async fn reconnect_storm(common: Common, users: usize, devices: usize, events: usize) -> Value {
    let base = ws_base(&common.url);
    let secret = common.secret.clone();
    let n = users * devices;
    let opened = open_many(n, common.connect_concurrency, "devices", |i| {
        let (base, secret) = (base.clone(), secret.clone());
        async move {
            let tok = token(&secret, &format!("storm-u{}", i / devices), "agent", None);
            let (ws, last, epoch) = realtime_device(&base, &tok, "").await?;
            Ok((i, ws, last, epoch))
        }
    })
    .await;
    let mut resume: HashMap<usize, (u64, String)> = HashMap::new();
    for (i, ws, last, epoch) in opened {
        resume.insert(i, (last, epoch));
        drop(ws); // every device goes away
    }
    eprintln!(
        "  {} devices disconnected; publishing {events} events per user",
        resume.len()
    );
    let http = reqwest::Client::new();
    let svc = token(&common.secret, "bench-backend", "service", None);
    let all: Vec<String> = (0..users).map(|u| format!("storm-u{u}")).collect();
    for e in 0..events {
        for chunk in all.chunks(10_000) {
            let res = http
                .post(format!("{}/api/publish", common.url))
                .bearer_auth(&svc)
                .json(&json!({"userIds": chunk, "type": "STORM_EVENT", "payload": {"e": e}}))
                .send()
                .await;
            if !matches!(res, Ok(ref r) if r.status().is_success()) {
                return json!({"scenario": "reconnect-storm", "error": "publishing failed"});
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    eprintln!("  reconnecting every device with since");
    let completion = Rc::new(RefCell::new(histogram()));
    let started = Instant::now();
    let outcomes = open_many(n, common.connect_concurrency, "reconnect", |i| {
        let (base, secret, completion) = (base.clone(), secret.clone(), completion.clone());
        let (since, epoch) = resume.get(&i).cloned().unwrap_or((0, String::new()));
        async move {
            let tok = token(&secret, &format!("storm-u{}", i / devices), "agent", None);
            let (mut ws, _, _) =
                realtime_device(&base, &tok, &format!("&since={since}&epoch={epoch}")).await?;
            let mut seqs = Vec::new();
            loop {
                let text = next_text(&mut ws).await.ok_or("closed during replay")?;
                let frame: ReplayFrame = serde_json::from_str(&text)
                    .map_err(|e| format!("a frame that is not an event ({e}): {text}"))?;
                if frame.kind == "REPLAY_COMPLETE" {
                    completion
                        .borrow_mut()
                        .record(started.elapsed().as_micros().max(1) as u64)
                        .ok();
                    let recovered = frame.payload.and_then(|p| p.recovered) == Some(true);
                    return Ok((since, seqs, recovered));
                }
                if let Some(s) = frame.seq {
                    seqs.push(s);
                }
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    let mut exact = 0;
    let mut missing = 0u64;
    let mut extra = 0u64;
    let mut unrecovered = 0;
    for (since, seqs, recovered) in &outcomes {
        let want: Vec<u64> = (since + 1..=since + events as u64).collect();
        if *seqs == want {
            exact += 1;
        } else {
            missing += want.iter().filter(|s| !seqs.contains(s)).count() as u64;
            extra += seqs.len().saturating_sub(want.len()) as u64;
        }
        if !recovered {
            unrecovered += 1;
        }
    }
    json!({
        "scenario": "reconnect-storm",
        "users": users,
        "devices": n,
        "events_per_user": events,
        "devices_completed": outcomes.len(),
        "devices_exact": exact,
        "missing_events": missing,
        "extra_events": extra,
        "not_recovered": unrecovered,
        "all_complete_ms": elapsed.as_millis(),
        "completion_ms": percentiles(&completion.borrow()),
        "server_rss_kib": rss_kib(common.pid),
    })
}

fn main() {
    let cli = Cli::parse();
    let common = match &cli.scenario {
        Scenario::Idle { common, .. }
        | Scenario::CashierFanout { common, .. }
        | Scenario::RealtimeFanout { common, .. }
        | Scenario::ReconnectStorm { common, .. } => common.clone(),
    };
    if let Err(e) = check_loopback(&common.url) {
        eprintln!("herald-bench: {e}");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let limit = Duration::from_secs(common.timeout_secs);
    let result = local.block_on(&runtime, async move {
        let run = async move {
            match cli.scenario {
                Scenario::Idle {
                    common,
                    connections,
                    kind,
                    hold_secs,
                } => idle(common, connections, kind, hold_secs).await,
                Scenario::CashierFanout {
                    common,
                    terminals,
                    senders,
                    rate,
                    duration_secs,
                    venue,
                } => cashier_fanout(common, terminals, senders, rate, duration_secs, venue).await,
                Scenario::RealtimeFanout {
                    common,
                    users,
                    devices,
                    rate,
                    duration_secs,
                    concurrency,
                    also,
                    keyed,
                } => {
                    realtime_fanout(
                        common,
                        users,
                        devices,
                        rate,
                        duration_secs,
                        concurrency,
                        also,
                        keyed,
                    )
                    .await
                }
                Scenario::ReconnectStorm {
                    common,
                    users,
                    devices,
                    events,
                } => reconnect_storm(common, users, devices, events).await,
            }
        };
        tokio::time::timeout(limit, run).await
    });
    match result {
        Ok(value) => println!("{value}"),
        Err(_) => {
            eprintln!(
                "herald-bench: gave up after {}s (--timeout-secs)",
                common.timeout_secs
            );
            println!(
                "{}",
                json!({"error": "timeout", "timeout_secs": common.timeout_secs})
            );
            std::process::exit(1);
        }
    }
}
