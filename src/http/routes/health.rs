//! Operators: liveness and Prometheus metrics.

use actix_web::{get, HttpResponse};

use crate::{
    core::metrics::METRICS,
    http::{
        auth::Authenticated,
        schemas::{Me, ReadErrors},
    },
};

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

#[get("/metrics")]
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(METRICS.render())
}

/// Who the token says you are (the dashboard's sign-in check).
#[utoipa::path(tag = "admin", responses((status = 200, description = "What the token says", body = Me), ReadErrors))]
#[get("/api/me")]
pub async fn me(auth: Authenticated) -> HttpResponse {
    let c = auth.0;
    HttpResponse::Ok().json(serde_json::json!({
        "sub": c.sub,
        "role": c.role.as_str(),
        "venue": c.venue(),
        "exp": c.exp,
    }))
}
