//! Browser origins: which web pages may call herald.
//!
//! A browser says where a page comes from in `Origin`. The server's own
//! origin (the page it serves at `/`) is always allowed, and so is every
//! origin in `HERALD_ALLOWED_ORIGINS`. REST answers CORS preflights and sets
//! the CORS headers for those only (actix-cors does the protocol); socket
//! upgrades from any other origin are refused with 403 before the upgrade,
//! since browsers do not apply CORS to WebSockets. A request without
//! `Origin` (a native app such as the Flutter terminal, a back end, curl) is
//! not a browser's and is never affected.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::{
    dev::RequestHead,
    http::{header, Method},
    HttpRequest,
};

use crate::http::error::ApiError;

/// The allowed origins; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Origins {
    allowed: Arc<Vec<String>>,
}

impl Origins {
    pub fn new(allowed: &[String]) -> Self {
        Origins {
            allowed: Arc::new(allowed.to_vec()),
        }
    }

    /// Whether a browser page from `origin` may call us, `host` being the
    /// `Host` the request reached us by. The own origin is compared by host
    /// and port only: behind a TLS-terminating proxy the page is `https://`
    /// while herald sees plain HTTP.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/');
        if self.allowed.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }

    fn allows_head(&self, origin: &str, head: &RequestHead) -> bool {
        let host = head
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        self.allows(origin, host)
    }

    /// The CORS middleware: preflights and headers for allowed origins; a
    /// refused origin gets no CORS headers (the browser then blocks the page),
    /// and clients without `Origin` pass untouched.
    pub fn cors(&self) -> Cors {
        let origins = self.clone();
        Cors::default()
            .allowed_origin_fn(move |origin, head| {
                origin.to_str().is_ok_and(|o| origins.allows_head(o, head))
            })
            .allowed_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-device-id"),
                header::HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(600)
            .block_on_origin_mismatch(false)
    }

    /// Refuses a socket upgrade from a browser page of another origin.
    pub fn check_upgrade(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(()); // not a browser
        };
        let origin = origin.to_str().unwrap_or("");
        if self.allows_head(origin, req.head()) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "origin `{origin}` may not open sockets here; add it to HERALD_ALLOWED_ORIGINS"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_listed_origins() {
        let o = Origins::new(&["https://app.example.com".into()]);
        assert!(o.allows("https://app.example.com", Some("herald:8080")));
        assert!(o.allows("http://herald:8080", Some("herald:8080")));
        assert!(o.allows("https://herald:8080/", Some("herald:8080")));
        assert!(!o.allows("https://evil.example", Some("herald:8080")));
        assert!(!o.allows("https://app.example.com.evil", Some("herald:8080")));
        assert!(!o.allows("null", Some("herald:8080")));
        assert!(!o.allows("http://herald:8080", None));
    }
}
