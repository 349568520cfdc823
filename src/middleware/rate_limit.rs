//! Rate limits: REST calls per token, socket upgrades per client address.
//!
//! Token buckets from `governor` (keyed, lock-free): a token may make
//! `HERALD_REST_RATE` calls a second with bursts of `HERALD_REST_BURST`; an
//! address may open `HERALD_UPGRADE_RATE` sockets a second with bursts of
//! twice that, so a reconnect storm from one misbehaving client cannot
//! starve the others. Beyond a limit the answer is 429 with `Retry-After`
//! and the contract's error shape; `/metrics` counts them.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use actix_web::http::StatusCode;
use governor::{clock::DefaultClock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{error::ApiError, metrics::METRICS};

/// Both limiters; cheap to clone (shared by every worker).
#[derive(Clone)]
pub struct Limits {
    rest: Arc<DefaultKeyedRateLimiter<String>>,
    upgrades: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

impl Limits {
    pub fn new(rest_rate: u32, rest_burst: u32, upgrade_rate: u32) -> Self {
        METRICS
            .rate_limit_per_second
            .with_label_values(&["rest"])
            .set(rest_rate as i64);
        METRICS
            .rate_limit_per_second
            .with_label_values(&["upgrade"])
            .set(upgrade_rate as i64);
        let rest = Quota::per_second(nonzero(rest_rate)).allow_burst(nonzero(rest_burst));
        let upgrades = Quota::per_second(nonzero(upgrade_rate))
            .allow_burst(nonzero(upgrade_rate.saturating_mul(2)));
        Limits {
            rest: Arc::new(RateLimiter::keyed(rest)),
            upgrades: Arc::new(RateLimiter::keyed(upgrades)),
        }
    }

    /// One REST call with this bearer token.
    pub fn check_rest(&self, token: &str) -> Result<(), RateLimited> {
        self.rest
            .check_key(&token.to_owned())
            .map_err(|not_until| RateLimited::new("rest", not_until.wait_time_from(now())))
    }

    /// One socket upgrade from this address.
    pub fn check_upgrade(&self, addr: IpAddr) -> Result<(), RateLimited> {
        self.upgrades
            .check_key(&addr)
            .map_err(|not_until| RateLimited::new("upgrade", not_until.wait_time_from(now())))
    }

    /// Forgets keys whose buckets are full again (run now and then, so the
    /// maps do not grow with every token and address ever seen).
    pub fn forget_idle(&self) {
        self.rest.retain_recent();
        self.upgrades.retain_recent();
    }
}

fn now() -> governor::clock::QuantaInstant {
    use governor::clock::Clock;
    DefaultClock::default().now()
}

/// A refused request: 429 with `Retry-After` (whole seconds, at least 1).
#[derive(Debug)]
pub struct RateLimited {
    limit: &'static str,
    retry_after: Duration,
}

impl RateLimited {
    fn new(limit: &'static str, retry_after: Duration) -> Self {
        METRICS.rate_limited.with_label_values(&[limit]).inc();
        RateLimited { limit, retry_after }
    }

    fn retry_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.limit {
            "rest" => write!(
                f,
                "too many requests with this token; retry after {} s (HERALD_REST_RATE)",
                self.retry_secs()
            ),
            _ => write!(
                f,
                "too many new sockets from this address; retry after {} s (HERALD_UPGRADE_RATE)",
                self.retry_secs()
            ),
        }
    }
}

impl From<RateLimited> for ApiError {
    fn from(limited: RateLimited) -> Self {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            limited.to_string(),
        );
        err.retry_after = Some(limited.retry_secs());
        err
    }
}
