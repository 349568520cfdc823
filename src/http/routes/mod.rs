//! HTTP routes: thin handlers that parse, authorize and ask an actor.

pub mod admin;
pub mod cashier;
pub mod drafts;
pub mod health;
pub mod jobs;
pub mod pending_orders;
pub mod publish;
pub mod realtime;
pub mod static_files;
pub mod upgrade;

use actix_web::{web, HttpRequest};

use crate::http::error;

/// `X-Device-Id` of a REST call, echoed as `originDeviceId` in its events.
pub fn device_id(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("x-device-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
}

/// Every route, and how bad bodies, queries and paths are answered.
/// `max_body` is `HERALD_MAX_MESSAGE_BYTES`.
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .error_handler(error::json_error),
    )
    .app_data(web::PayloadConfig::default().limit(max_body))
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .service(health::healthz)
    .service(health::metrics)
    .service(health::me)
    .service(crate::http::openapi::openapi_json)
    .service(crate::http::openapi::docs)
    .service(realtime::realtime)
    .service(publish::publish)
    .service(admin::stats)
    .service(admin::history)
    .service(admin::connections)
    .service(admin::kick)
    .service(drafts::list)
    .service(drafts::get_one)
    .service(drafts::create)
    .service(drafts::update)
    .service(drafts::remove)
    .service(drafts::convert)
    .service(pending_orders::list)
    .service(pending_orders::get_one)
    .service(pending_orders::create)
    .service(pending_orders::update)
    .service(pending_orders::remove)
    .service(cashier::terminal)
    .service(cashier::list)
    .service(cashier::create)
    .service(cashier::transfer)
    .service(cashier::get_one)
    .service(cashier::update)
    .service(cashier::remove)
    .service(cashier::add_orders)
    .service(cashier::update_order)
    .service(cashier::remove_order)
    .service(cashier::reset)
    .service(cashier::get_categories)
    .service(cashier::put_categories)
    .service(cashier::get_products)
    .service(cashier::put_products)
    .service(jobs::create)
    .service(jobs::list)
    .service(jobs::get_one)
    .service(jobs::cancel)
    .service(jobs::progress)
    .service(jobs::complete)
    .service(jobs::fail)
    .default_service(web::to(static_files::fallback));
}
