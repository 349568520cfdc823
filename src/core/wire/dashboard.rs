//! Dashboard resources as REST answers and event payloads: `Draft`,
//! `PendingOrder` (and, with jobs, `Job`), in camelCase.

use entity::{drafts, jobs, pending_orders};
use serde::Serialize;
use serde_json::value::RawValue;

use super::format_ms;

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned())
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
}

#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    pub id: String,
    pub user_id: String,
    pub device_id: Option<String>,
    #[schema(value_type = Value)]
    pub payload: Box<RawValue>,
    pub server_updated_at: String,
    pub deleted: bool,
    pub created_at: String,
}

impl From<&drafts::Model> for Draft {
    fn from(m: &drafts::Model) -> Self {
        Draft {
            id: m.id.clone(),
            user_id: m.user_id.clone(),
            device_id: m.device_id.clone(),
            payload: raw(&m.payload),
            server_updated_at: format_ms(m.server_updated_at),
            deleted: m.deleted,
            created_at: format_ms(m.created_at),
        }
    }
}

#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingOrder {
    pub id: String,
    pub user_id: String,
    #[schema(value_type = Value)]
    pub payload: Box<RawValue>,
    pub status: String,
    pub order_number: Option<String>,
    pub job_id: Option<String>,
    pub error: Option<String>,
    pub updated_at: String,
    pub created_at: String,
}

impl From<&pending_orders::Model> for PendingOrder {
    fn from(m: &pending_orders::Model) -> Self {
        PendingOrder {
            id: m.id.clone(),
            user_id: m.user_id.clone(),
            payload: raw(&m.payload),
            status: m.status.clone(),
            order_number: m.order_number.clone(),
            job_id: m.job_id.clone(),
            error: m.error.clone(),
            updated_at: format_ms(m.updated_at),
            created_at: format_ms(m.created_at),
        }
    }
}

#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    #[schema(value_type = Value)]
    pub params: Box<RawValue>,
    pub status: String,
    pub progress: i32,
    pub label: Option<String>,
    #[schema(value_type = Option<Value>)]
    pub result: Option<Box<RawValue>>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<&jobs::Model> for Job {
    fn from(m: &jobs::Model) -> Self {
        Job {
            id: m.id.clone(),
            user_id: m.user_id.clone(),
            kind: m.kind.clone(),
            params: raw(&m.params),
            status: m.status.clone(),
            progress: m.progress,
            label: m.label.clone(),
            result: m.result.as_deref().map(raw),
            error: m.error.clone(),
            created_at: format_ms(m.created_at),
            updated_at: format_ms(m.updated_at),
            started_at: m.started_at.map(format_ms),
            finished_at: m.finished_at.map(format_ms),
        }
    }
}

/// `JOB_*` payload.
#[derive(Serialize)]
pub struct JobEvent<'a> {
    pub job: &'a Job,
}

/// `JOB_PROGRESS` payload (transient).
#[derive(Serialize)]
pub struct JobProgress<'a> {
    pub job: &'a Job,
    pub progress: i32,
    pub label: Option<&'a str>,
}

/// One order the order system accepted.
#[derive(Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NumberMapping {
    pub pending_order_id: String,
    pub order_number: String,
}

/// `ORDER_NUMBERS_RESOLVED` payload.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderNumbersResolved<'a> {
    pub job_id: &'a str,
    pub mapping: &'a [NumberMapping],
}

/// Event types of the dashboard domains.
pub mod types {
    pub const DRAFT_CREATED: &str = "DRAFT_CREATED";
    pub const DRAFT_UPDATED: &str = "DRAFT_UPDATED";
    pub const DRAFT_DELETED: &str = "DRAFT_DELETED";
    pub const DRAFT_CONVERTED: &str = "DRAFT_CONVERTED";
    pub const PENDING_CREATED: &str = "PENDING_CREATED";
    pub const PENDING_UPDATED: &str = "PENDING_UPDATED";
    pub const PENDING_DELETED: &str = "PENDING_DELETED";
    pub const PENDING_BATCH_UPSERTED: &str = "PENDING_BATCH_UPSERTED";
    pub const JOB_QUEUED: &str = "JOB_QUEUED";
    pub const JOB_STARTED: &str = "JOB_STARTED";
    pub const JOB_PROGRESS: &str = "JOB_PROGRESS";
    pub const JOB_COMPLETED: &str = "JOB_COMPLETED";
    pub const JOB_FAILED: &str = "JOB_FAILED";
    pub const ORDER_NUMBERS_RESOLVED: &str = "ORDER_NUMBERS_RESOLVED";
}

/// `DRAFT_*` payload.
#[derive(Serialize)]
pub struct DraftEvent<'a> {
    pub draft: &'a Draft,
}

/// `PENDING_CREATED|UPDATED|DELETED` payload.
#[derive(Serialize)]
pub struct OrderEvent<'a> {
    pub order: &'a PendingOrder,
}

/// `DRAFT_CONVERTED` payload.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftConverted<'a> {
    pub draft_id: &'a str,
    pub pending_order_id: &'a str,
}

/// `PENDING_BATCH_UPSERTED` payload (also the batch's REST answer).
#[derive(Serialize, Debug, Clone, Default)]
pub struct BatchUpserted {
    pub created: Vec<PendingOrder>,
    pub updated: Vec<PendingOrder>,
}
