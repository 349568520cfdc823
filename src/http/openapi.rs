//! The HTTP API described for machines: an OpenAPI 3.1 document generated
//! from the handlers' own `#[utoipa::path]` attributes and the wire types'
//! schemas (utoipa), served at `GET /api/openapi.json`, and a browsable
//! reference at `GET /api/docs` (Swagger UI, served by herald, renders that document;
//! nothing is fetched from the network).
//!
//! A test compares the document's operations with every route the handlers
//! declare, so a route added without documentation fails the suite.

use actix_web::{get, HttpResponse};
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

use crate::http::schemas::{ErrorBody, ErrorDetail};

/// Operation ids unique across the document: `<tag>.<handler>` (each
/// module's handlers are `list`, `create`, ...).
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let tag = op
                    .tags
                    .as_ref()
                    .and_then(|t| t.first())
                    .cloned()
                    .unwrap_or_default();
                if let Some(id) = &op.operation_id {
                    op.operation_id = Some(format!("{tag}.{id}"));
                }
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some(
            "HS256 JWT with `sub`, `role` (agent | admin | service | cashier), `exp`, optional `venue`; mint one with `herald token`".into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "herald",
        description = "The realtime server's HTTP API: dashboards' drafts, pending orders and jobs, cashier venues, publishing, administration. Every change made here reaches the sockets as events (see the wire contract).",
    ),
    paths(
        super::routes::publish::publish,
        super::routes::admin::stats, super::routes::admin::history, super::routes::admin::connections, super::routes::admin::kick,
        super::routes::health::me,
        super::routes::presence::presence,
        super::routes::drafts::list, super::routes::drafts::get_one, super::routes::drafts::create,
        super::routes::drafts::update, super::routes::drafts::remove, super::routes::drafts::convert,
        super::routes::pending_orders::list, super::routes::pending_orders::get_one, super::routes::pending_orders::create,
        super::routes::pending_orders::update, super::routes::pending_orders::remove,
        super::routes::jobs::create, super::routes::jobs::list, super::routes::jobs::get_one, super::routes::jobs::cancel,
        super::routes::jobs::progress, super::routes::jobs::complete, super::routes::jobs::fail,
        super::routes::cashier::list, super::routes::cashier::create, super::routes::cashier::get_one,
        super::routes::cashier::update, super::routes::cashier::remove, super::routes::cashier::add_orders,
        super::routes::cashier::update_order, super::routes::cashier::remove_order, super::routes::cashier::reset,
        super::routes::cashier::transfer, super::routes::cashier::get_categories, super::routes::cashier::put_categories,
        super::routes::cashier::get_products, super::routes::cashier::put_products,
        openapi_json, docs,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth, &OperationIds),
    security(("bearer" = [])),
    tags(
        (name = "publish", description = "Back ends push events"),
        (name = "drafts", description = "A dashboard user's drafts (last write wins, tombstones)"),
        (name = "pending-orders", description = "A dashboard user's pending orders"),
        (name = "jobs", description = "Background jobs and their external workers"),
        (name = "cashier", description = "A cashier venue's stations, orders and catalog"),
        (name = "presence", description = "Which devices are connected, on every node"),
        (name = "admin", description = "Connections and stats"),
        (name = "docs", description = "This document"),
    ),
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document of every `/api/...` route.
#[utoipa::path(tag = "docs", security(()), responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
#[get("/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// A browsable reference rendered from `/api/openapi.json`.
#[utoipa::path(tag = "docs", security(()), responses((status = 200, description = "An HTML page", content_type = "text/html")))]
#[get("/api/docs")]
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(DOCS_PAGE)
}

/// The page: Swagger UI (the `swagger-ui-dist` package's bundle and
/// stylesheet, served from the binary's static files under
/// `/vendor/swagger-ui/` like the dashboard's, so the CSP's `'self'` holds)
/// started by `/js/api-docs.js`.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>herald API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/vendor/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="/css/api-docs.css"></head>
<body><header class="api-docs-head"><a href="/">← herald dashboard</a>
<span id="api-docs-auth"></span>
<a href="/api/openapi.json">openapi.json</a></header>
<main id="api-docs"><p>Loading <a href="/api/openapi.json">/api/openapi.json</a>…</p></main>
<script src="/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/js/api-docs.js"></script></body></html>"#;
