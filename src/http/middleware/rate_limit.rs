//! Rate limits: REST calls per token, socket upgrades per client address.
//!
//! Token buckets from `governor` (keyed, lock-free): a token may make
//! `HERALD_REST_RATE` calls a second with bursts of `HERALD_REST_BURST`; an
//! address may open `HERALD_UPGRADE_RATE` sockets a second with bursts of
//! twice that, so a reconnect storm from one misbehaving client cannot
//! starve the others. Beyond a limit the answer is 429 with `Retry-After`
//! and the contract's error shape; `/metrics` counts them.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::StatusCode,
    middleware::Next,
    web,
};
use governor::{clock::DefaultClock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{
    core::{auth::bearer_token, metrics::METRICS},
    http::error::ApiError,
};

/// Both limiters; cheap to clone (shared by every worker).
#[derive(Clone)]
pub struct Limits {
    /// Keyed by a hash of the bearer token: no copy of a token is kept.
    rest: Arc<DefaultKeyedRateLimiter<u64>>,
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
        use std::hash::{BuildHasher, RandomState};
        static SEED: std::sync::LazyLock<RandomState> = std::sync::LazyLock::new(RandomState::new);
        self.rest
            .check_key(&SEED.hash_one(token))
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

    /// Runs [`forget_idle`](Self::forget_idle) every `period`, for as long
    /// as the server runs.
    pub fn forget_idle_every(&self, period: Duration) {
        let limits = self.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(period);
            loop {
                every.tick().await;
                limits.forget_idle();
            }
        });
    }
}

/// Per-token REST rate limit: a call over it is answered 429 before its
/// route runs (CORS headers still apply, so a browser can read the answer).
pub async fn limit_rest(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.path().starts_with("/api/") {
        let token = bearer_token(req.headers()).filter(|t| !t.is_empty());
        if let Some(token) = token {
            let limits = req
                .app_data::<web::Data<Limits>>()
                .expect("the limits are registered at startup");
            if let Err(limited) = limits.check_rest(token) {
                return Ok(req
                    .error_response(ApiError::from(limited))
                    .map_into_right_body());
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
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
