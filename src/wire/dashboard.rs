//! Dashboard resources as REST answers and event payloads: `Draft`,
//! `PendingOrder` (and, with jobs, `Job`), in camelCase.

use serde::Serialize;
use serde_json::value::RawValue;

use entity::{drafts, pending_orders};

use super::format_ms;

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned())
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    pub id: String,
    pub user_id: String,
    pub device_id: Option<String>,
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

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PendingOrder {
    pub id: String,
    pub user_id: String,
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
