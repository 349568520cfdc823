//! Drafts: last write wins, `serverUpdatedAt` strictly increases, deletes
//! are tombstones and a tombstone always wins.

use entity::{drafts, pending_orders};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};
use serde_json::value::RawValue;

use super::command::{check_payload, Command, DomainError, Outcome};
use crate::{
    core::{
        events::RoomKey,
        wire::dashboard::{types, Draft, DraftConverted, DraftEvent, OrderEvent, PendingOrder},
    },
    store::event_log::NewEvent,
};

/// Every write moves `serverUpdatedAt` forward, even within one millisecond.
fn next_stamp(previous: i64, now_ms: i64) -> i64 {
    now_ms.max(previous + 1)
}

pub async fn list<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    include_deleted: bool,
) -> Result<Vec<Draft>, DomainError> {
    let mut query = drafts::Entity::find().filter(drafts::Column::UserId.eq(user_id));
    if !include_deleted {
        query = query.filter(drafts::Column::Deleted.eq(false));
    }
    let rows = query
        .order_by_desc(drafts::Column::ServerUpdatedAt)
        .all(db)
        .await?;
    Ok(rows.iter().map(Draft::from).collect())
}

pub async fn get<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    id: &str,
) -> Result<Draft, DomainError> {
    Ok(Draft::from(&owned(db, user_id, id).await?))
}

/// The draft if it exists and belongs to `user_id`; another user's draft is
/// "not found", never their data.
async fn owned<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    id: &str,
) -> Result<drafts::Model, DomainError> {
    match drafts::Entity::find_by_id(id.to_owned()).one(db).await? {
        Some(row) if row.user_id == user_id => Ok(row),
        _ => Err(DomainError::NotFound(format!("no draft {id}"))),
    }
}

fn gone(row: &drafts::Model) -> DomainError {
    DomainError::Gone {
        message: format!("draft {} was deleted; create a new one", row.id),
        current: serde_json::to_value(Draft::from(row)).expect("drafts serialize"),
    }
}

fn event(kind: &str, draft: &Draft, origin: &Option<String>) -> NewEvent {
    NewEvent::new(kind, &DraftEvent { draft }, origin.clone())
}

/// Creates a draft; repeating it with the same id answers the stored draft.
pub struct Create {
    pub user_id: String,
    pub id: String,
    pub device_id: Option<String>,
    pub payload: Box<RawValue>,
    pub origin: Option<String>,
}

/// Whether a create made something new (201) or found it already there (200).
pub enum Created<T> {
    New(T),
    Existing(T),
}

impl Command for Create {
    type Output = Created<Draft>;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Created<Draft>> {
        Box::pin(async move {
            check_payload(&self.payload, "`payload`")?;
            if let Some(row) = drafts::Entity::find_by_id(self.id.clone()).one(txn).await? {
                if row.user_id != self.user_id {
                    return Err(DomainError::Conflict {
                        code: "ID_TAKEN",
                        message: format!("id {} is already used; choose another", self.id),
                        current: None,
                    });
                }
                return Ok((Created::Existing(Draft::from(&row)), Vec::new()));
            }
            let row = drafts::ActiveModel {
                id: Set(self.id),
                user_id: Set(self.user_id),
                device_id: Set(self.device_id),
                payload: Set(self.payload.get().to_owned()),
                server_updated_at: Set(now),
                deleted: Set(false),
                created_at: Set(now),
            }
            .insert(txn)
            .await?;
            let draft = Draft::from(&row);
            let ev = event(types::DRAFT_CREATED, &draft, &self.origin);
            Ok((Created::New(draft), vec![ev]))
        })
    }
}

/// Replaces a draft's payload (last write wins, unless `base` says otherwise).
pub struct Update {
    pub user_id: String,
    pub id: String,
    pub device_id: Option<String>,
    pub payload: Box<RawValue>,
    /// The `serverUpdatedAt` the client edited; a different stored one is a 409.
    pub base: Option<i64>,
    pub origin: Option<String>,
}

impl Command for Update {
    type Output = Draft;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Draft> {
        Box::pin(async move {
            check_payload(&self.payload, "`payload`")?;
            let row = owned(txn, &self.user_id, &self.id).await?;
            if row.deleted {
                return Err(gone(&row));
            }
            if let Some(base) = self.base {
                if base != row.server_updated_at {
                    return Err(DomainError::Conflict {
                        code: "STALE_DRAFT",
                        message:
                            "the draft changed since you read it; merge with `current` and retry"
                                .into(),
                        current: Some(
                            serde_json::to_value(Draft::from(&row)).expect("drafts serialize"),
                        ),
                    });
                }
            }
            let stamp = next_stamp(row.server_updated_at, now);
            let mut active = row.into_active_model();
            active.payload = Set(self.payload.get().to_owned());
            active.server_updated_at = Set(stamp);
            if self.device_id.is_some() {
                active.device_id = Set(self.device_id);
            }
            let row = active.update(txn).await?;
            let draft = Draft::from(&row);
            let ev = event(types::DRAFT_UPDATED, &draft, &self.origin);
            Ok((draft, vec![ev]))
        })
    }
}

/// Tombstones a draft; deleting a tombstone again changes nothing.
pub struct Delete {
    pub user_id: String,
    pub id: String,
    pub device_id: Option<String>,
    pub origin: Option<String>,
}

impl Command for Delete {
    type Output = Draft;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Draft> {
        Box::pin(async move {
            let row = owned(txn, &self.user_id, &self.id).await?;
            if row.deleted {
                return Ok((Draft::from(&row), Vec::new()));
            }
            let stamp = next_stamp(row.server_updated_at, now);
            let mut active = row.into_active_model();
            active.deleted = Set(true);
            active.server_updated_at = Set(stamp);
            if self.device_id.is_some() {
                active.device_id = Set(self.device_id);
            }
            let row = active.update(txn).await?;
            let draft = Draft::from(&row);
            let ev = event(types::DRAFT_DELETED, &draft, &self.origin);
            Ok((draft, vec![ev]))
        })
    }
}

/// Turns a draft into a pending order: the draft is tombstoned and the order
/// created with its payload, in one transaction.
pub struct Convert {
    pub user_id: String,
    pub id: String,
    pub device_id: Option<String>,
    /// The new order's id (a fresh UUID when the client does not choose).
    pub order_id: String,
    pub origin: Option<String>,
}

impl Command for Convert {
    type Output = PendingOrder;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, PendingOrder> {
        Box::pin(async move {
            let row = owned(txn, &self.user_id, &self.id).await?;
            if row.deleted {
                return Err(gone(&row));
            }
            if pending_orders::Entity::find_by_id(self.order_id.clone())
                .one(txn)
                .await?
                .is_some()
            {
                return Err(DomainError::Conflict {
                    code: "ID_TAKEN",
                    message: format!("order id {} is already used; choose another", self.order_id),
                    current: None,
                });
            }
            let stamp = next_stamp(row.server_updated_at, now);
            let payload = row.payload.clone();
            let mut active = row.into_active_model();
            active.deleted = Set(true);
            active.server_updated_at = Set(stamp);
            if self.device_id.is_some() {
                active.device_id = Set(self.device_id);
            }
            active.update(txn).await?;
            let order = pending_orders::ActiveModel {
                id: Set(self.order_id.clone()),
                user_id: Set(self.user_id.clone()),
                payload: Set(payload),
                status: Set("pending".into()),
                order_number: Set(None),
                job_id: Set(None),
                error: Set(None),
                updated_at: Set(now),
                created_at: Set(now),
            }
            .insert(txn)
            .await?;
            let order = PendingOrder::from(&order);
            let events = vec![
                NewEvent::new(
                    types::DRAFT_CONVERTED,
                    &DraftConverted {
                        draft_id: &self.id,
                        pending_order_id: &order.id,
                    },
                    self.origin.clone(),
                ),
                NewEvent::new(
                    types::PENDING_CREATED,
                    &OrderEvent { order: &order },
                    self.origin.clone(),
                ),
            ];
            Ok((order, events))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_strictly_increase() {
        assert_eq!(super::next_stamp(100, 50), 101);
        assert_eq!(super::next_stamp(100, 100), 101);
        assert_eq!(super::next_stamp(100, 200), 200);
    }
}
