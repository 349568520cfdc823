//! The web dashboard from `static/`, embedded in the binary; and the JSON 404
//! for unknown `/api/...` routes.

use actix_web::{http::header, HttpRequest, HttpResponse};
use rust_embed::Embed;

use crate::http::error::ApiError;

#[derive(Embed)]
#[folder = "static/"]
struct Assets;

/// The client SDK (`clients/js/`), served at `/sdk/`: the module, its
/// declarations, its parts and the IndexedDB helper it imports.
#[derive(Embed)]
#[folder = "clients/js/"]
#[include = "herald.js"]
#[include = "herald.d.ts"]
#[include = "idb.js"]
#[include = "idb.LICENSE"]
#[include = "lib/*.js"]
#[include = "package.json"]
struct Sdk;

/// Serves a dashboard file, `index.html` for `/`; unknown `/api` paths get a
/// JSON 404.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    if path == "/api" || path.starts_with("/api/") {
        return actix_web::ResponseError::error_response(&ApiError::not_found(format!(
            "no route {} {path}",
            req.method()
        )));
    }
    if req.method() != actix_web::http::Method::GET && req.method() != actix_web::http::Method::HEAD
    {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let file = match path.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let found = match file.strip_prefix("sdk/") {
        Some(part) => Sdk::get(part),
        None => Assets::get(file),
    };
    match found {
        Some(content) => {
            let mime = if file.ends_with(".d.ts") {
                "application/typescript; charset=utf-8".to_owned()
            } else {
                mime_guess::from_path(file)
                    .first_or_octet_stream()
                    .as_ref()
                    .to_owned()
            };
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, mime))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .body(content.data.into_owned())
        }
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}
