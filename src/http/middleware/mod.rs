//! What every request passes through before its route: browser origins
//! (CORS, and the check on socket upgrades), security headers, and rate
//! limits. Each module has one job; `startup` wraps the app in them.

pub mod headers;
pub mod origins;
pub mod rate_limit;
