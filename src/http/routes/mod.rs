//! HTTP routes: thin handlers that parse, authorize and ask an actor.

pub mod admin;
pub mod cashier;
pub mod drafts;
pub mod health;
pub mod jobs;
pub mod pending_orders;
pub mod presence;
pub mod publish;
pub mod realtime;
pub mod static_files;
pub mod upgrade;

use actix_web::HttpRequest;

/// `X-Device-Id` of a REST call, echoed as `originDeviceId` in its events.
pub fn device_id(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("x-device-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
}
