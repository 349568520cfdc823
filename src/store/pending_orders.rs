//! Pending orders: created one at a time or upserted in batches (one
//! transaction, one event), updated, deleted; submitted by jobs.

use std::collections::HashSet;

use entity::pending_orders;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, ModelTrait, QueryFilter, QueryOrder,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    command::{check_payload, Command, DomainError, Outcome},
    drafts::Created,
};
use crate::{
    core::{
        events::RoomKey,
        wire::dashboard::{types, BatchUpserted, OrderEvent, PendingOrder},
    },
    store::event_log::NewEvent,
};

pub const STATUSES: [&str; 4] = ["pending", "submitting", "submitted", "failed"];

/// Most orders in one batch.
pub const MAX_BATCH: usize = 1000;

/// One order as a client sends it (create, update or batch item).
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct OrderInput {
    pub id: Option<String>,
    pub payload: Option<Box<RawValue>>,
    pub status: Option<String>,
    pub order_number: Option<String>,
    pub job_id: Option<String>,
}

/// A canonical (lowercase, hyphenated) UUID, or a 400 naming `what`.
pub fn parse_uuid(value: &str, what: &str) -> Result<String, DomainError> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| DomainError::Validation(format!("{what} must be a UUID (got `{value}`)")))
}

impl OrderInput {
    /// Checks the fields a client may set; `what` names the item in errors.
    pub fn validate(&mut self, what: &str) -> Result<(), DomainError> {
        if let Some(id) = &self.id {
            self.id = Some(parse_uuid(id, &format!("{what}.id"))?);
        }
        if let Some(payload) = &self.payload {
            check_payload(payload, &format!("{what}.payload"))?;
        }
        if let Some(status) = &self.status {
            if !STATUSES.contains(&status.as_str()) {
                return Err(DomainError::Validation(format!(
                    "{what}.status must be one of {} (got `{status}`)",
                    STATUSES.join(", ")
                )));
            }
        }
        for (field, value) in [("orderNumber", &self.order_number), ("jobId", &self.job_id)] {
            if value
                .as_ref()
                .is_some_and(|v| v.is_empty() || v.len() > 128)
            {
                return Err(DomainError::Validation(format!(
                    "{what}.{field} must be 1-128 characters"
                )));
            }
        }
        Ok(())
    }
}

pub async fn list<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
) -> Result<Vec<PendingOrder>, DomainError> {
    let rows = pending_orders::Entity::find()
        .filter(pending_orders::Column::UserId.eq(user_id))
        .order_by_asc(pending_orders::Column::CreatedAt)
        .order_by_asc(pending_orders::Column::Id)
        .all(db)
        .await?;
    Ok(rows.iter().map(PendingOrder::from).collect())
}

pub async fn get<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    id: &str,
) -> Result<PendingOrder, DomainError> {
    Ok(PendingOrder::from(&owned(db, user_id, id).await?))
}

pub async fn owned<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    id: &str,
) -> Result<pending_orders::Model, DomainError> {
    match pending_orders::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
    {
        Some(row) if row.user_id == user_id => Ok(row),
        _ => Err(DomainError::NotFound(format!("no pending order {id}"))),
    }
}

fn busy(row: &pending_orders::Model) -> DomainError {
    DomainError::Conflict {
        code: "ORDER_BUSY",
        message: format!(
            "order {} is being submitted by job {}; wait for the job to finish",
            row.id,
            row.job_id.as_deref().unwrap_or("?")
        ),
        current: Some(serde_json::to_value(PendingOrder::from(row)).expect("orders serialize")),
    }
}

fn new_row(
    user_id: &str,
    id: String,
    input: OrderInput,
    now: i64,
) -> Result<pending_orders::ActiveModel, String> {
    let payload = input.payload.ok_or("payload is required for a new order")?;
    Ok(pending_orders::ActiveModel {
        id: Set(id),
        user_id: Set(user_id.to_owned()),
        payload: Set(payload.get().to_owned()),
        status: Set(input.status.unwrap_or_else(|| "pending".into())),
        order_number: Set(input.order_number),
        job_id: Set(input.job_id),
        error: Set(None),
        updated_at: Set(now),
        created_at: Set(now),
    })
}

fn apply(row: pending_orders::Model, input: OrderInput, now: i64) -> pending_orders::ActiveModel {
    let mut active = row.into_active_model();
    if let Some(payload) = input.payload {
        active.payload = Set(payload.get().to_owned());
    }
    if let Some(status) = input.status {
        active.status = Set(status);
    }
    if input.order_number.is_some() {
        active.order_number = Set(input.order_number);
    }
    if input.job_id.is_some() {
        active.job_id = Set(input.job_id);
    }
    active.updated_at = Set(now);
    active
}

/// An order's event (`PENDING_*`), as every writer of orders sends it.
pub(super) fn order_event(kind: &str, order: &PendingOrder, origin: &Option<String>) -> NewEvent {
    NewEvent::new(kind, &OrderEvent { order }, origin.clone())
}

/// Creates one order (validated input); repeating it answers the stored one.
pub struct Create {
    pub user_id: String,
    pub input: OrderInput,
    pub origin: Option<String>,
}

impl Command for Create {
    type Output = Created<PendingOrder>;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Self::Output> {
        Box::pin(async move {
            let id = self
                .input
                .id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if let Some(row) = pending_orders::Entity::find_by_id(id.clone())
                .one(txn)
                .await?
            {
                if row.user_id != self.user_id {
                    return Err(DomainError::Conflict {
                        code: "ID_TAKEN",
                        message: format!("id {id} is already used; choose another"),
                        current: None,
                    });
                }
                return Ok((Created::Existing(PendingOrder::from(&row)), Vec::new()));
            }
            let row = new_row(&self.user_id, id, self.input, now)
                .map_err(|m| DomainError::Validation(m.to_owned()))?
                .insert(txn)
                .await?;
            let order = PendingOrder::from(&row);
            let ev = order_event(types::PENDING_CREATED, &order, &self.origin);
            Ok((Created::New(order), vec![ev]))
        })
    }
}

/// Upserts many orders in one transaction with one event; any bad item
/// rejects the whole batch.
pub struct BatchUpsert {
    pub user_id: String,
    pub items: Vec<OrderInput>,
    pub origin: Option<String>,
}

impl Command for BatchUpsert {
    type Output = BatchUpserted;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Self::Output> {
        Box::pin(async move {
            let mut seen = HashSet::new();
            let mut result = BatchUpserted::default();
            for (i, input) in self.items.into_iter().enumerate() {
                let what = format!("items[{i}]");
                let id = input
                    .id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                if !seen.insert(id.clone()) {
                    return Err(DomainError::Validation(format!(
                        "{what}.id {id} appears twice in the batch"
                    )));
                }
                match pending_orders::Entity::find_by_id(id.clone())
                    .one(txn)
                    .await?
                {
                    Some(row) if row.user_id != self.user_id => {
                        return Err(DomainError::Conflict {
                            code: "ID_TAKEN",
                            message: format!("{what}.id {id} is already used; choose another"),
                            current: None,
                        })
                    }
                    Some(row) if row.status == "submitting" => {
                        return Err(DomainError::Conflict {
                            code: "ORDER_BUSY",
                            message: format!(
                                "{what}: order {id} is being submitted; wait for its job"
                            ),
                            current: None,
                        })
                    }
                    Some(row) => {
                        let row = apply(row, input, now).update(txn).await?;
                        result.updated.push(PendingOrder::from(&row));
                    }
                    None => {
                        let row = new_row(&self.user_id, id, input, now)
                            .map_err(|m| DomainError::Validation(format!("{what}: {m}")))?
                            .insert(txn)
                            .await?;
                        result.created.push(PendingOrder::from(&row));
                    }
                }
            }
            let ev = NewEvent::new(types::PENDING_BATCH_UPSERTED, &result, self.origin.clone());
            Ok((result, vec![ev]))
        })
    }
}

/// Changes the given fields of one order.
pub struct Update {
    pub user_id: String,
    pub id: String,
    pub input: OrderInput,
    pub origin: Option<String>,
}

impl Command for Update {
    type Output = PendingOrder;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Self::Output> {
        Box::pin(async move {
            let row = owned(txn, &self.user_id, &self.id).await?;
            if row.status == "submitting" {
                return Err(busy(&row));
            }
            let row = apply(row, self.input, now).update(txn).await?;
            let order = PendingOrder::from(&row);
            let ev = order_event(types::PENDING_UPDATED, &order, &self.origin);
            Ok((order, vec![ev]))
        })
    }
}

/// Deletes one order; the event carries its last state.
pub struct Delete {
    pub user_id: String,
    pub id: String,
    pub origin: Option<String>,
}

impl Command for Delete {
    type Output = PendingOrder;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, _now: i64) -> Outcome<'_, Self::Output> {
        Box::pin(async move {
            let row = owned(txn, &self.user_id, &self.id).await?;
            if row.status == "submitting" {
                return Err(busy(&row));
            }
            let order = PendingOrder::from(&row);
            row.delete(txn).await?;
            let ev = order_event(types::PENDING_DELETED, &order, &self.origin);
            Ok((order, vec![ev]))
        })
    }
}
