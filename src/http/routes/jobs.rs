//! `/api/jobs`: queue, read and cancel jobs; external workers report
//! progress and outcomes (role `service`).

use actix_web::{get, http::StatusCode, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    core::{auth::Role, wire::dashboard::Job},
    http::{
        auth::Authenticated,
        error::ApiError,
        extract::{self, acting_user, parse_json, read_json, ForUser},
        receipts::{self, user_space, Answer},
        schemas::{Keyed, ReadErrors, WriteErrors},
        state::AppState,
    },
    store::{
        jobs::{self as job_domain, Report},
        pending_orders::parse_uuid,
        receipts::Written,
    },
    writers::jobs::{CancelJob, Cancelled, CreateJob, WorkerReport},
};

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = JobCreate)]
struct CreateBody {
    /// `submit-pending-orders` (built in, `params: {"orderIds": [...]}`) or any
    /// other kind, run by an external worker.
    kind: String,
    #[schema(value_type = Option<Value>)]
    params: Option<Box<RawValue>>,
}

/// The job, if this token may see it: its owner, or an admin or service.
async fn visible_job(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
) -> Result<entity::jobs::Model, ApiError> {
    auth.require(&[Role::Agent, Role::Admin, Role::Service])?;
    let id = parse_uuid(id, "the job id")?;
    let owner = (!auth.0.role.is_privileged()).then_some(auth.0.sub.as_str());
    Ok(job_domain::find(&state.db.read, &id, owner).await?)
}

#[utoipa::path(tag = "jobs", params(ForUser, Keyed), request_body = CreateBody, responses((status = 202, description = "Queued (`JOB_QUEUED`)", body = Job), WriteErrors))]
#[post("/api/jobs")]
pub async fn create(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ForUser>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&req, payload).await;
    let asked = query.user_id.as_deref();
    let keyed = receipts::Keyed::of(&req, &state, user_space(&auth, asked), Some(&bytes))?;
    if let Some(stored) = keyed.stored(&state).await? {
        return Ok(stored);
    }
    let parsed = (|| {
        let user = acting_user(&auth, asked)?;
        let body: CreateBody = parse_json(&bytes?, "the body")?;
        if !job_domain::valid_kind(&body.kind) {
            return Err(ApiError::validation(
                "`kind` must be 1-64 characters of a-z, 0-9, `-`, `_` or `.`",
            ));
        }
        let params = match body.params {
            Some(p) if p.get().trim_start().starts_with('{') => p,
            Some(_) => return Err(ApiError::validation("`params` must be a JSON object")),
            None => RawValue::from_string("{}".into()).expect("{} is JSON"),
        };
        // The key also names the job's id (see drafts).
        let id = extract::idempotent_id(&req, &auth, &user, "jobs")?;
        Ok(CreateJob {
            user_id: user,
            id,
            kind: body.kind,
            params,
            receipt: None,
        })
    })();
    let mut msg = match parsed {
        Ok(msg) => msg,
        Err(err) => return keyed.refuse(&state, err).await,
    };
    let render = |job: &Job| Answer::json(StatusCode::ACCEPTED, job);
    msg.receipt = keyed
        .receipt()
        .map(|r| (r.clone(), receipts::renderer(render)));
    Ok(match state.jobs.send(msg).await?? {
        Written::Plain(job) => render(&job).response(),
        Written::Keyed(reply) => receipts::respond(reply),
    })
}

#[utoipa::path(tag = "jobs", params(ForUser), responses((status = 200, body = [Job]), ReadErrors))]
#[get("/api/jobs")]
pub async fn list(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ForUser>,
) -> Result<HttpResponse, ApiError> {
    let user = acting_user(&auth, query.user_id.as_deref())?;
    Ok(HttpResponse::Ok().json(job_domain::list(&state.db.read, &user).await?))
}

#[utoipa::path(tag = "jobs", params(("id" = String, Path)), responses((status = 200, body = Job), ReadErrors))]
#[get("/api/jobs/{id}")]
pub async fn get_one(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = visible_job(&state, &auth, &path).await?;
    Ok(HttpResponse::Ok().json(Job::from(&row)))
}

#[utoipa::path(tag = "jobs", params(("id" = String, Path), Keyed), responses((status = 200, description = "Cancelled", body = Job), (status = 202, description = "A running submission stops after its current order", body = Job), WriteErrors))]
#[post("/api/jobs/{id}/cancel")]
pub async fn cancel(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // The caller's key space (the job's owner, or the admin or service
    // that cancels it).
    let keyed = receipts::Keyed::of(&req, &state, user_space(&auth, None), None)?;
    if let Some(stored) = keyed.stored(&state).await? {
        return Ok(stored);
    }
    let row = match visible_job(&state, &auth, &path).await {
        Ok(row) => row,
        Err(err) => return keyed.refuse(&state, err).await,
    };
    let render = |cancelled: &Cancelled| match cancelled {
        Cancelled::Now(job) => Answer::json(StatusCode::OK, job),
        Cancelled::Requested { job, .. } => Answer::json(StatusCode::ACCEPTED, job),
    };
    let msg = CancelJob {
        user_id: row.user_id,
        job_id: row.id,
        by: auth.0.sub.clone(),
        receipt: keyed
            .receipt()
            .map(|r| (r.clone(), receipts::renderer(render))),
    };
    Ok(match state.jobs.send(msg).await?? {
        Written::Plain(cancelled) => render(&cancelled).response(),
        Written::Keyed(reply) => receipts::respond(reply),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProgressBody {
    progress: i64,
    label: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    #[schema(value_type = Option<Value>)]
    result: Option<Box<RawValue>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FailBody {
    error: String,
}

/// A worker's report, checked before it reaches the job.
async fn report(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: &str,
    report: Report,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Service])?;
    let id = parse_uuid(id, "the job id")?;
    let row = job_domain::find(&state.db.read, &id, None).await?;
    let job = state
        .jobs
        .send(WorkerReport {
            user_id: row.user_id,
            job_id: row.id,
            report,
        })
        .await??;
    Ok(HttpResponse::Ok().json(job))
}

#[utoipa::path(tag = "jobs", params(("id" = String, Path)), request_body = ProgressBody, responses((status = 200, description = "An external worker's progress (`JOB_PROGRESS`)", body = Job), WriteErrors))]
#[post("/api/jobs/{id}/progress")]
pub async fn progress(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Service])?;
    let body: ProgressBody = parse_json(&read_json(&req, payload).await?, "the body")?;
    if !(0..=100).contains(&body.progress) {
        return Err(ApiError::validation("`progress` must be 0 to 100"));
    }
    if body.label.as_ref().is_some_and(|l| l.len() > 200) {
        return Err(ApiError::validation(
            "`label` must be at most 200 characters",
        ));
    }
    let r = Report::Progress {
        progress: body.progress as i32,
        label: body.label,
    };
    report(auth, state, &path, r).await
}

#[utoipa::path(tag = "jobs", params(("id" = String, Path)), request_body = CompleteBody, responses((status = 200, description = "`JOB_COMPLETED`", body = Job), WriteErrors))]
#[post("/api/jobs/{id}/complete")]
pub async fn complete(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Service])?;
    let body: CompleteBody = parse_json(&read_json(&req, payload).await?, "the body")?;
    let result = body
        .result
        .unwrap_or_else(|| RawValue::from_string("null".into()).expect("null is JSON"));
    report(auth, state, &path, Report::Complete { result }).await
}

#[utoipa::path(tag = "jobs", params(("id" = String, Path)), request_body = FailBody, responses((status = 200, description = "`JOB_FAILED`", body = Job), WriteErrors))]
#[post("/api/jobs/{id}/fail")]
pub async fn fail(
    auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Role::Service])?;
    let body: FailBody = parse_json(&read_json(&req, payload).await?, "the body")?;
    if body.error.trim().is_empty() || body.error.len() > 2000 {
        return Err(ApiError::validation("`error` must be 1-2000 characters"));
    }
    report(auth, state, &path, Report::Fail { error: body.error }).await
}
