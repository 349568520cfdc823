//! Security headers on every response, the dashboard's and the API's.
//!
//! The dashboard loads scripts and styles from its own origin only, may not
//! be framed, and a `?token=` in its address must never leak to another site
//! through `Referer`.

use actix_web::middleware::DefaultHeaders;

/// The dashboard's Content-Security-Policy: everything from `'self'`
/// (sockets included), nothing inline, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
}
