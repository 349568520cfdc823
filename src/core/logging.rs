//! What herald writes to its log besides its own lines: the default
//! filter, the access log (a line per request, off by default), and the
//! redaction that keeps tokens and passwords out of both.

/// Where the access log (a line per request) goes: off unless the log
/// filter enables it (`RUST_LOG=info` does; herald's default filter,
/// [`default_log_filter`], leaves it out). When off, its middleware is not
/// in the chain at all: at thousands of publishes a second a line each cost
/// about 5 % of the server's CPU.
pub const ACCESS_LOG_TARGET: &str = "actix_web::middleware::logger";

/// The log filter when `RUST_LOG` is unset: herald's own lines at `info`,
/// no line per request, and the frameworks' start-up chatter (every
/// migration applied, actix's workers and its own "listening on") at
/// `warn`, so a first start shows herald's one listening line and what to
/// do next.
pub fn default_log_filter() -> String {
    format!("info,{ACCESS_LOG_TARGET}=warn,sea_orm_migration=warn,actix_server=warn")
}

pub(crate) fn access_log_enabled() -> bool {
    log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info)
}

/// Keeps tokens out of logs: a query parameter is redacted when its name,
/// once percent-decoded (`%74oken` is `token`), is `token` or `access_token`,
/// or when its decoded value looks like a JWT, whatever it is called.
pub fn redact_query(uri: &actix_web::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| {
            let raw_key = pair.split('=').next().unwrap_or_default();
            let (key, value) = form_urlencoded::parse(pair.as_bytes())
                .next()
                .unwrap_or_default();
            let secret_name = ["token", "access_token"]
                .iter()
                .any(|name| key.trim().eq_ignore_ascii_case(name));
            if secret_name || looks_like_jwt(&value) {
                format!("{raw_key}=[REDACTED]")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{}?{}", uri.path(), redacted.join("&"))
}

/// Three base64url segments, the first a JSON header (`eyJ` = `{"`).
fn looks_like_jwt(value: &str) -> bool {
    let value = value.trim();
    value.starts_with("eyJ") && value.matches('.').count() == 2
}

/// Hides a password in a database URL.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let uri: actix_web::http::Uri = "/ws/realtime?since=3&token=abc.def.ghi&deviceId=x"
            .parse()
            .unwrap();
        assert_eq!(
            redact_query(&uri),
            "/ws/realtime?since=3&token=[REDACTED]&deviceId=x"
        );
        let uri: actix_web::http::Uri = "/api/drafts?%74oken=abc&TO%4BEN=x&jwt=eyJa.b.c&n=1"
            .parse()
            .unwrap();
        assert_eq!(
            redact_query(&uri),
            "/api/drafts?%74oken=[REDACTED]&TO%4BEN=[REDACTED]&jwt=[REDACTED]&n=1"
        );
        assert_eq!(
            redact_url("postgres://herald:secret@db/herald"),
            "postgres://herald:***@db/herald"
        );
    }
}
