//! How fast one terminal may send: a token bucket per socket.

use std::time::Instant;

/// A token bucket: `rate` messages a second, bursts up to twice that.
pub struct RateLimit {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(per_second: u32) -> Self {
        let rate = per_second as f64;
        RateLimit {
            rate,
            capacity: rate * 2.0,
            tokens: rate * 2.0,
            last: Instant::now(),
        }
    }

    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
