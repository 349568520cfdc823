//! The admin view's history: once a second, the sampler reads the process's
//! counters and keeps the last ten minutes, so a chart can show a spike or a
//! slow drift without an outside time-series database.

use std::collections::VecDeque;

use actix::prelude::*;
use serde::Serialize;

use crate::core::{metrics::METRICS, wire};

/// Samples kept: ten minutes at one a second.
const KEEP: usize = 600;

/// One second of the server, as rates over the second before it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// When it was taken (ms since the Unix epoch).
    pub at: i64,
    /// Open sockets (dashboards and terminals).
    pub connections: i64,
    pub deliveries_per_sec: f64,
    pub publishes_per_sec: f64,
    pub replayed_per_sec: f64,
    /// Sockets closed with 4008 in that second.
    pub slow_closes: u64,
}

#[derive(Default)]
struct Totals {
    at: i64,
    delivered: u64,
    published: u64,
    replayed: u64,
    slow: u64,
}

fn totals() -> Totals {
    Totals {
        at: wire::now_ms(),
        delivered: METRICS.events_delivered.get(),
        published: METRICS.events_published.get(),
        replayed: METRICS.events_replayed.get(),
        slow: METRICS.slow_consumer_closes.get(),
    }
}

pub struct Sampler {
    last: Totals,
    samples: VecDeque<Sample>,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            last: totals(),
            samples: VecDeque::with_capacity(KEEP),
        }
    }
}

impl Sampler {
    fn sample(&mut self) {
        let now = totals();
        let secs = ((now.at - self.last.at) as f64 / 1000.0).max(0.001);
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        let connections = ["realtime", "cashier"]
            .iter()
            .map(|k| METRICS.connections.with_label_values(&[k]).get())
            .sum();
        self.samples.push_back(Sample {
            at: now.at,
            connections,
            deliveries_per_sec: rate(now.delivered, self.last.delivered),
            publishes_per_sec: rate(now.published, self.last.published),
            replayed_per_sec: rate(now.replayed, self.last.replayed),
            slow_closes: now.slow.saturating_sub(self.last.slow),
        });
        while self.samples.len() > KEEP {
            self.samples.pop_front();
        }
        self.last = now;
    }
}

impl Actor for Sampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(std::time::Duration::from_secs(1), |s, _| s.sample());
    }
}

/// The samples of the last `seconds` (at most ten minutes), oldest first.
#[derive(Message)]
#[rtype(result = "Vec<Sample>")]
pub struct History {
    pub seconds: usize,
}

impl Handler<History> for Sampler {
    type Result = MessageResult<History>;

    fn handle(&mut self, msg: History, _: &mut Self::Context) -> Self::Result {
        let skip = self.samples.len().saturating_sub(msg.seconds);
        MessageResult(self.samples.iter().skip(skip).cloned().collect())
    }
}
