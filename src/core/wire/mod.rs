//! Every JSON shape that crosses a socket, in one place.
//!
//! `realtime` is the `/ws/realtime` dashboard protocol; `cashier` (added with
//! the cashier terminals) is the `/ws` venue protocol. REST bodies live beside
//! their routes, error bodies in [`crate::http::error`].

pub mod cashier;
pub mod dashboard;
pub mod realtime;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Close codes of the contract.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    /// A text message that is not UTF-8 (RFC 6455 §7.4.1).
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const KICKED: u16 = 4003;
    /// The same code for a socket whose refreshed token may no longer read
    /// its stream (the upgrade would have answered 403).
    pub const FORBIDDEN: u16 = 4003;
    pub const TOO_SLOW: u16 = 4008;
}

/// The default of `HERALD_MAX_MESSAGE_BYTES`: the largest socket message
/// and REST body.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// RFC 3339 in UTC with milliseconds: `2026-02-03T02:25:33.123Z`.
pub fn format_ms(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format_ms(0),
    }
}

/// Parses a time given as ms since the epoch or as RFC 3339 with any offset.
pub fn parse_time_ms(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Some(ms);
    }
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_ms(1_770_085_533_123), "2026-02-03T02:25:33.123Z");
        assert_eq!(
            parse_time_ms("2026-02-03T02:25:33+03:00"),
            Some(1_770_074_733_000)
        );
        assert_eq!(parse_time_ms("1770085533123"), Some(1_770_085_533_123));
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
