//! `/api/devices`: a venue's stations over REST, through the same venue
//! actor and commands as terminal messages (each broadcasts to every terminal).

use actix_web::{delete, get, http::StatusCode, post, put, web, HttpRequest, HttpResponse};

use super::{answer, apply, check_id, object, refused, venue_of, venue_space, write, VenueQuery};
use crate::{
    core::wire::cashier::{self, codes, Change, Device, Fields, Refusal},
    http::{
        auth::Authenticated,
        error::ApiError,
        extract::read_json,
        receipts::{self, Answer},
        schemas::{DeviceBody, Keyed, ReadErrors, TransferBody, WriteErrors},
        state::AppState,
    },
    store::venue,
};

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

#[utoipa::path(tag = "cashier", params(VenueQuery, Keyed), request_body = DeviceBody, responses((status = 201, description = "Added (`device_created` to every terminal)", body = Device), WriteErrors))]
#[post("/api/devices")]
pub async fn create(
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
        let body = object(bytes)?;
        let f = Fields(&body);
        let device_id = check_id(&f.id("deviceId").map_err(refused)?)?;
        let name = f.opt_string("name", 200).map_err(refused)?;
        if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
            return Err(ApiError::validation("`name` must not be empty"));
        }
        let fields = cashier::device_fields(&f).map_err(refused)?;
        Ok(venue::CreateDevice {
            venue,
            device_id,
            name,
            fields,
        })
    })();
    write(keyed, &state, cmd, |device: &Device| {
        Answer::json(StatusCode::CREATED, device)
    })
    .await
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

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery, Keyed), request_body = DeviceBody, responses((status = 200, description = "The station (`device_updated`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[put("/api/devices/{id}")]
pub async fn update(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&req, payload).await;
    let keyed = receipts::Keyed::of(&req, &state, venue_space(&auth, &q), Some(&bytes))?;
    let cmd = (|| {
        let venue = venue_of(&auth, &q)?;
        let body = object(bytes)?;
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
        Ok(apply(venue, change))
    })();
    write(keyed, &state, cmd, answer).await
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery, Keyed), responses((status = 200, body = Device), (status = 204, description = "Deleted (`device_removed`)"), WriteErrors))]
#[delete("/api/devices/{id}")]
pub async fn remove(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let keyed = receipts::Keyed::of(&req, &state, venue_space(&auth, &q), None)?;
    let cmd = (|| {
        let change = Change::DeviceDeleted {
            device_id: check_id(&id)?,
        };
        Ok(apply(venue_of(&auth, &q)?, change))
    })();
    write(keyed, &state, cmd, answer).await
}

#[utoipa::path(tag = "cashier", params(("id" = String, Path, description = "The station id"), VenueQuery, Keyed), responses((status = 200, description = "The station (`device_cleared`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[post("/api/devices/{id}/reset")]
pub async fn reset(
    auth: Authenticated,
    state: web::Data<AppState>,
    q: web::Query<VenueQuery>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let keyed = receipts::Keyed::of(&req, &state, venue_space(&auth, &q), None)?;
    let cmd = (|| {
        let change = Change::DeviceReset {
            device_id: check_id(&id)?,
        };
        Ok(apply(venue_of(&auth, &q)?, change))
    })();
    write(keyed, &state, cmd, answer).await
}

#[utoipa::path(tag = "cashier", params(VenueQuery, Keyed), request_body = TransferBody, responses((status = 200, description = "The target station (`device_transferred`)", body = Device), (status = 204, description = "Applied"), WriteErrors))]
#[post("/api/devices/transfer")]
pub async fn transfer(
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
        let body = object(bytes)?;
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
        Ok(apply(venue, Change::DeviceTransfer { from, to }))
    })();
    write(keyed, &state, cmd, answer).await
}
