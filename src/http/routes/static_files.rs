//! The web dashboard from `static/`, embedded in the binary; and the JSON 404
//! for unknown `/api/...` routes.

use actix_web::{http::header, HttpRequest, HttpResponse};
use rust_embed::Embed;

use crate::http::error::ApiError;

#[derive(Embed)]
#[folder = "static/"]
struct Assets;

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
    match Assets::get(file) {
        Some(content) => {
            let mime = mime_guess::from_path(file).first_or_octet_stream();
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, mime.as_ref()))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .body(content.data.into_owned())
        }
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}
