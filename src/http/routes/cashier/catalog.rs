//! `/api/categories` and `/api/products`: the venue's catalog.

use actix_web::{get, put, web, HttpRequest, HttpResponse};

use super::{venue_of, venue_space, write, VenueQuery};
use crate::{
    core::wire::cashier,
    http::{
        auth::Authenticated,
        error::ApiError,
        extract::{parse_json, read_json},
        receipts,
        routes::drafts::ok_json,
        schemas::{Keyed, ReadErrors, WriteErrors},
        state::AppState,
    },
    store::venue::{self, Category, Product},
};

#[utoipa::path(tag = "cashier", params(VenueQuery), responses((status = 200, body = [Category]), ReadErrors))]
#[get("/api/categories")]
pub async fn get_categories(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    Ok(HttpResponse::Ok().json(venue::categories(&state.db.read, &venue).await?))
}

/// Checks ids: 1-64 characters, no repeats.
fn unique_ids<'a>(ids: impl Iterator<Item = &'a str>, what: &str) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.enumerate() {
        if id.trim().is_empty() || id.len() > 64 {
            return Err(ApiError::validation(format!(
                "{what}[{i}].id must be 1-64 characters"
            )));
        }
        if !seen.insert(id) {
            return Err(ApiError::validation(format!(
                "{what}[{i}].id `{id}` repeats"
            )));
        }
    }
    Ok(())
}

#[utoipa::path(tag = "cashier", params(VenueQuery, Keyed), request_body = [Category], responses((status = 200, description = "The new list (`categories_updated`)", body = [Category]), WriteErrors))]
#[put("/api/categories")]
pub async fn put_categories(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&req, payload).await;
    let keyed = receipts::Keyed::of(&req, &state, venue_space(&auth, &q), Some(&bytes))?;
    let cmd = (|| {
        let venue = venue_of(&auth, &q)?;
        let categories: Vec<Category> = parse_json(&bytes?, "the categories")?;
        unique_ids(categories.iter().map(|c| c.id.as_str()), "categories")?;
        if let Some((i, _)) = categories
            .iter()
            .enumerate()
            .find(|(_, c)| c.name.trim().is_empty() || c.name.len() > 200)
        {
            return Err(ApiError::validation(format!(
                "categories[{i}].name must be 1-200 characters"
            )));
        }
        Ok(venue::SetCategories { venue, categories })
    })();
    write(keyed, &state, cmd, ok_json).await
}

#[utoipa::path(tag = "cashier", params(VenueQuery), responses((status = 200, body = [Product]), ReadErrors))]
#[get("/api/products")]
pub async fn get_products(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    Ok(HttpResponse::Ok().json(venue::products(&state.db.read, &venue).await?))
}

#[utoipa::path(tag = "cashier", params(VenueQuery, Keyed), request_body = [Product], responses((status = 200, description = "The new list (`prices_updated`)", body = [Product]), WriteErrors))]
#[put("/api/products")]
pub async fn put_products(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&req, payload).await;
    let keyed = receipts::Keyed::of(&req, &state, venue_space(&auth, &q), Some(&bytes))?;
    let cmd = (|| {
        let venue = venue_of(&auth, &q)?;
        let products: Vec<Product> = parse_json(&bytes?, "the products")?;
        unique_ids(products.iter().map(|p| p.id.as_str()), "products")?;
        for (i, p) in products.iter().enumerate() {
            if p.name.trim().is_empty() || p.name.len() > 200 {
                return Err(ApiError::validation(format!(
                    "products[{i}].name must be 1-200 characters"
                )));
            }
            if let Err(why) = cashier::check_price(&p.price) {
                return Err(ApiError::validation(format!("products[{i}].price {why}")));
            }
        }
        Ok(venue::SetProducts { venue, products })
    })();
    write(keyed, &state, cmd, ok_json).await
}
