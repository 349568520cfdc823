//! `GET /ws` (cashier terminals) and the venue REST API: devices, their
//! orders, categories and products. REST changes go through the same venue
//! actor and commands as terminal messages and broadcast to every terminal.

use actix::{Actor, AsyncContext};
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use crate::core::wire::cashier::Device;
use crate::http::schemas::DeviceBody;
use crate::http::schemas::OrdersBody;
use crate::http::schemas::ReadErrors;
use crate::http::schemas::TransferBody;
use crate::http::schemas::WriteErrors;
use crate::{
    core::auth::{Claims, Role},
    core::config::CashierAuth,
    core::wire::{
        cashier::{self, codes, Change, Fields, Refusal},
        format_ms, now_ms,
    },
    http::auth::{request_token, Authenticated},
    http::error::ApiError,
    http::extract::{json_problem, parse_json, read_json},
    http::routes::upgrade::{check_upgrade, open_socket, refuse, Opened},
    http::state::AppState,
    sessions::terminal::{CashierConfig, CashierSession},
    socket::reader::PRE_AUTH_MESSAGE_BYTES,
    store::venue::{self, Category, Product},
    writers::crud::Exec,
};

#[derive(Deserialize)]
struct WsQuery {
    venue: Option<String>,
}

fn refused(refusal: Refusal) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::BAD_REQUEST,
        refusal.code,
        refusal.message,
    )
}

#[get("/ws")]
pub async fn terminal(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_upgrade(&req, &state)?;
    let claims: Option<Claims> = match request_token(&req) {
        None => None,
        Some(token) => {
            let claims = state
                .keys
                .verify(&token)
                .map_err(|e| refuse("unauthorized", e.into()))?;
            if !matches!(claims.role, Role::Cashier | Role::Admin) {
                return Err(refuse(
                    "forbidden",
                    ApiError::forbidden(format!(
                        "role `{}` may not use /ws; it needs cashier or admin",
                        claims.role.as_str()
                    )),
                ));
            }
            Some(claims)
        }
    };
    let query = web::Query::<WsQuery>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or(WsQuery { venue: None });
    if let Some(v) = &query.venue {
        if v.is_empty() || v.len() > 64 {
            return Err(ApiError::validation("`venue` must be 1-64 characters"));
        }
    }
    let Opened {
        conn_id,
        response,
        queue,
        frames,
        limit,
    } = open_socket(&req, body, &state, PRE_AUTH_MESSAGE_BYTES).await?;
    let settings = &state.settings;
    let config = CashierConfig {
        auth_required: settings.cashier_auth == CashierAuth::Required,
        heartbeat: settings.heartbeat(),
        heartbeat_timeout: settings.heartbeat_timeout(),
        idle_timeout: settings.idle_timeout(),
        rate_per_second: settings.cashier_rate,
    };
    let session = CashierSession::new(
        conn_id,
        config,
        queue,
        state.registry.clone(),
        state.venues.clone(),
        state.keys.clone(),
        claims,
        query.venue,
        req.peer_addr().map(|a| a.to_string()),
    )
    .with_limit(limit, settings.max_message_bytes as usize);
    CashierSession::create(|ctx| {
        ctx.add_stream(frames);
        session
    });
    Ok(response)
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VenueQuery {
    /// An admin may act on another venue than the token's.
    venue: Option<String>,
}

/// The venue a REST call acts on: the token's; admins may name another.
fn venue_of(auth: &Authenticated, query: &VenueQuery) -> Result<String, ApiError> {
    auth.require(&[Role::Cashier, Role::Admin])?;
    match (&query.venue, auth.0.role) {
        (Some(v), Role::Admin) if !v.is_empty() && v.len() <= 64 => Ok(v.clone()),
        (Some(v), _) if v == auth.0.venue() => Ok(v.clone()),
        (Some(_), Role::Admin) => Err(ApiError::validation("`venue` must be 1-64 characters")),
        (Some(_), _) => Err(ApiError::forbidden("this token is for another venue")),
        (None, _) => Ok(auth.0.venue().to_owned()),
    }
}

async fn object(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let bytes = read_json(req, payload).await?;
    match parse_json::<Value>(&bytes, "the body")? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::validation("the body must be a JSON object")),
    }
}

async fn apply(
    state: &AppState,
    venue: String,
    change: Change,
) -> Result<Option<cashier::Device>, ApiError> {
    let cmd = venue::Apply {
        venue,
        change,
        client_id: None,
        conn: None,
        answer_device: true,
    };
    Ok(state.venues.send(Exec(cmd)).await??)
}

fn answer(device: Option<cashier::Device>) -> HttpResponse {
    match device {
        Some(d) => HttpResponse::Ok().json(d),
        None => HttpResponse::NoContent().finish(),
    }
}

fn check_id(id: &str) -> Result<String, ApiError> {
    if id.trim().is_empty() || id.len() > 64 {
        return Err(ApiError::validation("a device id is 1-64 characters"));
    }
    Ok(id.to_owned())
}

#[utoipa::path(tag = "cashier", params(VenueQuery), responses((status = 200, body = [Device]), ReadErrors))]
#[get("/api/devices")]
pub async fn list(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    Ok(HttpResponse::Ok().json(venue::list_devices(&state.db.read, &venue).await?))
}

#[utoipa::path(tag = "cashier", params(VenueQuery), request_body = DeviceBody, responses((status = 201, description = "Added (`device_created` to every terminal)", body = Device), WriteErrors))]
#[post("/api/devices")]
pub async fn create(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let body = object(&req, payload).await?;
    let f = Fields(&body);
    let device_id = check_id(&f.id("deviceId").map_err(refused)?)?;
    let name = f.opt_string("name", 200).map_err(refused)?;
    if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::validation("`name` must not be empty"));
    }
    let fields = cashier::device_fields(&f).map_err(refused)?;
    let cmd = venue::CreateDevice {
        venue,
        device_id,
        name,
        fields,
    };
    let device = state.venues.send(Exec(cmd)).await??;
    Ok(HttpResponse::Created().json(device))
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery), responses((status = 200, body = Device), ReadErrors))]
#[get("/api/devices/{id}")]
pub async fn get_one(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    Ok(HttpResponse::Ok().json(venue::get_device(&state.db.read, &venue, &id).await?))
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery), request_body = DeviceBody, responses((status = 200, description = "The station (`device_updated`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[put("/api/devices/{id}")]
pub async fn update(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let body = object(&req, payload).await?;
    let f = Fields(&body);
    let mut data = cashier::device_fields(&f).map_err(refused)?;
    data.name = f.opt_string("name", 200).map_err(refused)?;
    if data.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::validation("`name` must not be empty"));
    }
    if data.is_empty() {
        return Err(ApiError::validation(
            "nothing to change: give name, isRunning, elapsedSeconds, mode, customerCount or notes",
        ));
    }
    let change = Change::DeviceUpdate {
        device_id: check_id(&id)?,
        data,
    };
    Ok(answer(apply(&state, venue, change).await?))
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery), responses((status = 200, body = Device), (status = 204, description = "Deleted (`device_removed`)"), WriteErrors))]
#[delete("/api/devices/{id}")]
pub async fn remove(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let change = Change::DeviceDeleted {
        device_id: check_id(&id)?,
    };
    Ok(answer(apply(&state, venue, change).await?))
}

/// Body: `{"orders": [...]}`, an array of orders, or one order.
#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery), request_body = OrdersBody, responses((status = 200, description = "The station (`order_added`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[post("/api/devices/{id}/orders")]
pub async fn add_orders(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let bytes = read_json(&req, payload).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| json_problem(e, "the body"))?;
    let orders_value = match value {
        Value::Object(mut m) if m.contains_key("orders") => {
            m.remove("orders").unwrap_or(Value::Null)
        }
        Value::Object(m) => Value::Array(vec![Value::Object(m)]),
        other => other,
    };
    let orders = cashier::new_orders(Some(&orders_value), &format_ms(now_ms())).map_err(refused)?;
    let change = Change::OrderPlaced {
        device_id: check_id(&id)?,
        orders,
    };
    let device = apply(&state, venue, change).await?;
    Ok(HttpResponse::Created().json(device))
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), ("index" = i64, Path, description = "The order's index, from 0"), VenueQuery), request_body(content = Object, description = "The fields to change: `name`, `price`, `quantity`, `notes`, `firstOrderTime`, `lastOrderTime`"), responses((status = 200, description = "The station (`order_modified`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[put("/api/devices/{id}/orders/{index}")]
pub async fn update_order(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    path: web::Path<(String, i64)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let (id, index) = path.into_inner();
    if index < 0 {
        return Err(ApiError::validation("the order index must not be negative"));
    }
    let body = object(&req, payload).await?;
    let data = cashier::order_patch(&Fields(&body)).map_err(refused)?;
    let change = Change::OrderUpdated {
        device_id: check_id(&id)?,
        order_index: index,
        data,
    };
    Ok(answer(apply(&state, venue, change).await?))
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), ("index" = i64, Path), VenueQuery), responses((status = 200, description = "The station (`order_removed`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[delete("/api/devices/{id}/orders/{index}")]
pub async fn remove_order(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let (id, index) = path.into_inner();
    if index < 0 {
        return Err(ApiError::validation("the order index must not be negative"));
    }
    let change = Change::OrderDeleted {
        device_id: check_id(&id)?,
        order_index: index,
    };
    Ok(answer(apply(&state, venue, change).await?))
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery), responses((status = 200, description = "The station (`device_cleared`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[post("/api/devices/{id}/reset")]
pub async fn reset(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let change = Change::DeviceReset {
        device_id: check_id(&id)?,
    };
    Ok(answer(apply(&state, venue, change).await?))
}

#[utoipa::path(tag = "cashier", params(VenueQuery), request_body = TransferBody, responses((status = 200, description = "The target station (`device_transferred`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[post("/api/devices/transfer")]
pub async fn transfer(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let body = object(&req, payload).await?;
    let f = Fields(&body);
    let (from, to) = (
        f.id("fromDeviceId").map_err(refused)?,
        f.id("toDeviceId").map_err(refused)?,
    );
    if from == to {
        return Err(refused(Refusal {
            code: codes::VALIDATION_FAILED,
            message: "`fromDeviceId` and `toDeviceId` are the same device".into(),
        }));
    }
    Ok(answer(
        apply(&state, venue, Change::DeviceTransfer { from, to }).await?,
    ))
}

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

#[utoipa::path(tag = "cashier", params(VenueQuery), request_body = [Category], responses((status = 200, description = "The new list (`categories_updated`)", body = [Category]), WriteErrors))]
#[put("/api/categories")]
pub async fn put_categories(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let categories: Vec<Category> = parse_json(&read_json(&req, payload).await?, "the categories")?;
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
    let cmd = venue::SetCategories { venue, categories };
    Ok(HttpResponse::Ok().json(state.venues.send(Exec(cmd)).await??))
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

#[utoipa::path(tag = "cashier", params(VenueQuery), request_body = [Product], responses((status = 200, description = "The new list (`prices_updated`)", body = [Product]), WriteErrors))]
#[put("/api/products")]
pub async fn put_products(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let venue = venue_of(&auth, &q)?;
    let products: Vec<Product> = parse_json(&read_json(&req, payload).await?, "the products")?;
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
    let cmd = venue::SetProducts { venue, products };
    Ok(HttpResponse::Ok().json(state.venues.send(Exec(cmd)).await??))
}
