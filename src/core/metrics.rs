//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Counters and gauges are atomics owned by one process-wide registry; the
//! actors bump them where the thing happens, nothing reads them on a hot path.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Open sockets by kind (`realtime`, `cashier`).
    pub connections: IntGaugeVec,
    pub rooms: IntGauge,
    /// Events held in the rooms' in-memory rings.
    pub buffered_events: IntGauge,
    /// Events accepted (buffered and transient).
    pub events_published: IntCounter,
    /// Frames handed to sockets' send queues.
    pub events_delivered: IntCounter,
    /// Events sent as part of a replay.
    pub events_replayed: IntCounter,
    /// Replays answered with `recovered: false`.
    pub replay_misses: IntCounter,
    /// Sockets closed with 4008 because their send queue filled.
    pub slow_consumer_closes: IntCounter,
    /// Writes answered from their stored receipt (a repeated `Idempotency-Key`).
    pub idempotent_replays: IntCounter,
    /// Sockets refused or closed, by reason.
    pub socket_rejections: IntCounterVec,
    /// Requests answered 429 by a rate limit (`rest` per token, `upgrade` per address).
    pub rate_limited: IntCounterVec,
    /// The configured limits, so a dashboard can draw them next to the counts.
    pub rate_limit_per_second: IntGaugeVec,
    pub http_request_duration: HistogramVec,
    /// Several nodes: commit-to-delivery time of events other nodes wrote.
    pub tailer_lag: prometheus::Histogram,
    /// Several nodes: events and node messages read from the shared log.
    pub tailer_rows: IntCounter,
    /// Several nodes: times the `LISTEN` connection was lost and made again.
    pub notify_reconnects: IntCounter,
    /// Several nodes: timed polls that found rows no notification announced
    /// (a lost or late `NOTIFY`; delivery was delayed by up to `HERALD_POLL_MS`).
    pub poll_fallbacks: IntCounter,
    /// Several nodes: commit-to-delivery time of the last event read from
    /// another node (the admin view's "tailer lag").
    pub tailer_lag_last: prometheus::Gauge,
    /// Several nodes: transactions of herald's database the tailer waits on
    /// (running when it passed them; their rows are read when they end).
    pub tailer_waiting: IntGauge,
    /// Several nodes: how long the oldest of those has been open.
    pub tailer_oldest_waiting: prometheus::Gauge,
}

fn build() -> Metrics {
    let registry = Registry::new();
    let m = Metrics {
        connections: IntGaugeVec::new(
            Opts::new("herald_connections", "Open WebSocket connections"),
            &["kind"],
        )
        .unwrap(),
        rooms: IntGauge::new("herald_rooms", "Live rooms (users and venues)").unwrap(),
        buffered_events: IntGauge::new(
            "herald_buffered_events",
            "Events held in in-memory replay rings",
        )
        .unwrap(),
        events_published: IntCounter::new(
            "herald_events_published_total",
            "Events accepted for delivery",
        )
        .unwrap(),
        events_delivered: IntCounter::new(
            "herald_events_delivered_total",
            "Event frames queued to sockets",
        )
        .unwrap(),
        events_replayed: IntCounter::new(
            "herald_events_replayed_total",
            "Events sent during replays",
        )
        .unwrap(),
        replay_misses: IntCounter::new(
            "herald_replay_misses_total",
            "Replays that could not fill the gap (recovered:false)",
        )
        .unwrap(),
        slow_consumer_closes: IntCounter::new(
            "herald_slow_consumer_closes_total",
            "Sockets closed with 4008 because they did not read fast enough",
        )
        .unwrap(),
        idempotent_replays: IntCounter::new(
            "herald_idempotent_replays_total",
            "Writes answered with their stored answer (a repeated Idempotency-Key)",
        )
        .unwrap(),
        rate_limited: IntCounterVec::new(
            Opts::new(
                "herald_rate_limited_total",
                "Requests refused with 429 by a rate limit",
            ),
            &["limit"],
        )
        .unwrap(),
        rate_limit_per_second: IntGaugeVec::new(
            Opts::new(
                "herald_rate_limit_per_second",
                "Configured rate limits (REST calls per token, upgrades per address)",
            ),
            &["limit"],
        )
        .unwrap(),
        socket_rejections: IntCounterVec::new(
            Opts::new(
                "herald_socket_rejections_total",
                "Socket upgrades refused, by reason",
            ),
            &["reason"],
        )
        .unwrap(),
        http_request_duration: HistogramVec::new(
            HistogramOpts::new(
                "herald_http_request_duration_seconds",
                "HTTP request latency by route and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route", "status"],
        )
        .unwrap(),
        tailer_lag: prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "herald_tailer_lag_seconds",
                "Several nodes: from an event's commit on another node to its delivery here",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .unwrap(),
        tailer_rows: IntCounter::new(
            "herald_tailer_rows_total",
            "Several nodes: rows read from the shared event log and node messages",
        )
        .unwrap(),
        notify_reconnects: IntCounter::new(
            "herald_tailer_notify_reconnects_total",
            "Several nodes: LISTEN connections lost and made again",
        )
        .unwrap(),
        poll_fallbacks: IntCounter::new(
            "herald_tailer_poll_fallbacks_total",
            "Several nodes: timed polls that found rows no NOTIFY announced",
        )
        .unwrap(),
        tailer_lag_last: prometheus::Gauge::new(
            "herald_tailer_lag_last_seconds",
            "Several nodes: commit-to-delivery time of the last event read from another node",
        )
        .unwrap(),
        tailer_waiting: IntGauge::new(
            "herald_tailer_waiting_transactions",
            "Several nodes: running transactions of herald's database whose rows the tailer reads when they end",
        )
        .unwrap(),
        tailer_oldest_waiting: prometheus::Gauge::new(
            "herald_tailer_oldest_waiting_seconds",
            "Several nodes: how long the oldest transaction the tailer waits on has been open",
        )
        .unwrap(),
        registry,
    };
    let r = &m.registry;
    r.register(Box::new(m.connections.clone())).unwrap();
    r.register(Box::new(m.rooms.clone())).unwrap();
    r.register(Box::new(m.buffered_events.clone())).unwrap();
    r.register(Box::new(m.events_published.clone())).unwrap();
    r.register(Box::new(m.events_delivered.clone())).unwrap();
    r.register(Box::new(m.events_replayed.clone())).unwrap();
    r.register(Box::new(m.replay_misses.clone())).unwrap();
    r.register(Box::new(m.idempotent_replays.clone())).unwrap();
    r.register(Box::new(m.slow_consumer_closes.clone()))
        .unwrap();
    r.register(Box::new(m.socket_rejections.clone())).unwrap();
    r.register(Box::new(m.rate_limited.clone())).unwrap();
    r.register(Box::new(m.rate_limit_per_second.clone()))
        .unwrap();
    r.register(Box::new(m.http_request_duration.clone()))
        .unwrap();
    r.register(Box::new(m.tailer_lag.clone())).unwrap();
    r.register(Box::new(m.tailer_rows.clone())).unwrap();
    r.register(Box::new(m.notify_reconnects.clone())).unwrap();
    r.register(Box::new(m.poll_fallbacks.clone())).unwrap();
    r.register(Box::new(m.tailer_lag_last.clone())).unwrap();
    r.register(Box::new(m.tailer_waiting.clone())).unwrap();
    r.register(Box::new(m.tailer_oldest_waiting.clone()))
        .unwrap();
    m
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(build);

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}
