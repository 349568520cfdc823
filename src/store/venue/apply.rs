//! A terminal's (or REST's) change to one device of a venue: its state,
//! its orders, a transfer, a reset or its removal.

use entity::{device_orders, devices};
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, ModelTrait, QueryFilter,
};
use serde_json::json;

use super::{find_device, not_found, orders_of, refused, to_device, to_order, whole_units};
use crate::{
    core::{
        events::{ConnId, RoomKey},
        wire::cashier::{codes, types, Change, Device},
    },
    store::{
        command::{Command, DomainError, Outcome},
        event_log::NewEvent,
    },
};

fn in_use(row: &devices::Model, order_count: usize) -> bool {
    row.is_running || row.elapsed_seconds > 0 || order_count > 0
}

/// A terminal's (or REST's) change to a venue; answers the device it left
/// behind (`None` when deleted, or when not asked for).
pub struct Apply {
    pub venue: String,
    pub change: Change,
    /// The sending terminal's `clientId` (carried by the broadcast).
    pub client_id: Option<String>,
    /// The sending connection, which does not get the broadcast back.
    pub conn: Option<ConnId>,
    /// Whether to answer the device. REST answers it; a terminal's socket
    /// gets no acknowledgement, so its changes skip reading the orders.
    pub answer_device: bool,
}

impl Command for Apply {
    type Output = Option<Device>;

    fn room(&self) -> RoomKey {
        RoomKey::Venue(self.venue.clone())
    }

    fn exclude(&self) -> Option<ConnId> {
        self.conn.clone()
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Option<Device>> {
        Box::pin(async move {
            let venue = self.venue.as_str();
            let origin = self.client_id.clone();
            let event = |kind: &str, payload: serde_json::Value| {
                NewEvent::new(kind, &payload, origin.clone())
            };
            let (changed, ev) = match self.change {
                Change::DeviceUpdate { device_id, data } => {
                    // One statement, no read first: the UPDATE answers the
                    // new row, and matches none when the device does not exist.
                    let col = |c: devices::Column| Expr::col((devices::Entity, c));
                    let mut update = devices::Entity::update_many()
                        .col_expr(devices::Column::UpdatedAt, Expr::value(now))
                        .filter(devices::Column::VenueId.eq(venue))
                        .filter(devices::Column::Id.eq(device_id.as_str()));
                    if let Some(v) = &data.name {
                        update = update.col_expr(devices::Column::Name, Expr::value(v.clone()));
                    }
                    // The timer: a given time is true now; a start counts on
                    // from the stored time; a stop without a time keeps the
                    // seconds it ran (both sides of SET read the old row).
                    match (data.elapsed_seconds, data.is_running) {
                        (Some(v), _) => {
                            update = update
                                .col_expr(devices::Column::ElapsedSeconds, Expr::value(v))
                                .col_expr(devices::Column::ElapsedAt, Expr::value(now));
                        }
                        (None, Some(true)) => {
                            update = update.col_expr(
                                devices::Column::ElapsedAt,
                                Expr::case(
                                    col(devices::Column::IsRunning).eq(true),
                                    col(devices::Column::ElapsedAt),
                                )
                                .finally(Expr::value(now))
                                .into(),
                            );
                        }
                        (None, Some(false)) => {
                            let ran = Expr::value(now)
                                .sub(col(devices::Column::ElapsedAt))
                                .div(1000);
                            update = update
                                .col_expr(
                                    devices::Column::ElapsedSeconds,
                                    Expr::case(
                                        col(devices::Column::IsRunning)
                                            .eq(true)
                                            .and(col(devices::Column::ElapsedAt).gt(0))
                                            .and(col(devices::Column::ElapsedAt).lt(now)),
                                        col(devices::Column::ElapsedSeconds).add(ran),
                                    )
                                    .finally(col(devices::Column::ElapsedSeconds))
                                    .into(),
                                )
                                .col_expr(devices::Column::ElapsedAt, Expr::value(now));
                        }
                        (None, None) => {}
                    }
                    if let Some(v) = data.is_running {
                        update = update.col_expr(devices::Column::IsRunning, Expr::value(v));
                    }
                    if let Some(v) = &data.mode {
                        update = update.col_expr(devices::Column::Mode, Expr::value(v.clone()));
                    }
                    if let Some(v) = data.customer_count {
                        update = update.col_expr(devices::Column::CustomerCount, Expr::value(v));
                    }
                    if let Some(v) = &data.notes {
                        update = update.col_expr(devices::Column::Notes, Expr::value(v.clone()));
                    }
                    let row = update
                        .exec_with_returning(txn)
                        .await?
                        .pop()
                        .ok_or_else(|| not_found(&device_id))?;
                    let ev = event(
                        types::DEVICE_UPDATED,
                        json!({"deviceId": device_id, "data": data.to_json()}),
                    );
                    (Some(row), ev)
                }
                Change::OrderPlaced { device_id, orders } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    let start = orders_of(txn, venue, &device_id).await?.len() as i32;
                    for (i, o) in orders.iter().enumerate() {
                        device_orders::ActiveModel {
                            venue_id: Set(venue.to_owned()),
                            device_id: Set(device_id.clone()),
                            position: Set(start + i as i32),
                            name: Set(o.name.clone()),
                            price: Set(whole_units(&o.price)),
                            price_json: Set(o.price.to_string()),
                            quantity: Set(o.quantity),
                            notes: Set(o.notes.clone()),
                            first_order_time: Set(o.first_order_time.clone()),
                            last_order_time: Set(o.last_order_time.clone()),
                            ..Default::default()
                        }
                        .insert(txn)
                        .await?;
                    }
                    let row = touch(txn, row, now).await?;
                    let ev = event(
                        types::ORDER_ADDED,
                        json!({"deviceId": device_id, "orders": orders}),
                    );
                    (Some(row), ev)
                }
                Change::OrderUpdated {
                    device_id,
                    order_index,
                    data,
                } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    let order = order_at(txn, venue, &device_id, order_index).await?;
                    let mut o = order.into_active_model();
                    if let Some(v) = &data.name {
                        o.name = Set(v.clone());
                    }
                    if let Some(v) = &data.price {
                        o.price = Set(whole_units(v));
                        o.price_json = Set(v.to_string());
                    }
                    if let Some(v) = data.quantity {
                        o.quantity = Set(v);
                    }
                    if let Some(v) = &data.notes {
                        o.notes = Set(v.clone());
                    }
                    if let Some(v) = &data.first_order_time {
                        o.first_order_time = Set(v.clone());
                    }
                    if let Some(v) = &data.last_order_time {
                        o.last_order_time = Set(v.clone());
                    }
                    o.update(txn).await?;
                    let row = touch(txn, row, now).await?;
                    let ev = event(
                        types::ORDER_MODIFIED,
                        json!({"deviceId": device_id, "orderIndex": order_index, "data": data.to_json()}),
                    );
                    (Some(row), ev)
                }
                Change::OrderDeleted {
                    device_id,
                    order_index,
                } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    let order = order_at(txn, venue, &device_id, order_index).await?;
                    order.delete(txn).await?;
                    device_orders::Entity::update_many()
                        .col_expr(
                            device_orders::Column::Position,
                            Expr::col(device_orders::Column::Position).sub(1),
                        )
                        .filter(device_orders::Column::VenueId.eq(venue))
                        .filter(device_orders::Column::DeviceId.eq(device_id.as_str()))
                        .filter(device_orders::Column::Position.gt(order_index as i32))
                        .exec(txn)
                        .await?;
                    let row = touch(txn, row, now).await?;
                    let ev = event(
                        types::ORDER_REMOVED,
                        json!({"deviceId": device_id, "orderIndex": order_index}),
                    );
                    (Some(row), ev)
                }
                Change::DeviceTransfer { from, to } => {
                    let source = find_device(txn, venue, &from).await?;
                    let target = find_device(txn, venue, &to).await?;
                    let target_orders = orders_of(txn, venue, &to).await?.len();
                    if in_use(&target, target_orders) {
                        return Err(refused(
                            codes::VALIDATION_FAILED,
                            format!("Device {to} is in use (running or has orders); reset it or choose a free device"),
                        ));
                    }
                    device_orders::Entity::update_many()
                        .col_expr(device_orders::Column::DeviceId, Expr::value(to.clone()))
                        .filter(device_orders::Column::VenueId.eq(venue))
                        .filter(device_orders::Column::DeviceId.eq(from.as_str()))
                        .exec(txn)
                        .await?;
                    let mut t = target.into_active_model();
                    t.is_running = Set(source.is_running);
                    t.elapsed_seconds = Set(source.elapsed_seconds);
                    t.elapsed_at = Set(source.elapsed_at);
                    t.mode = Set(source.mode.clone());
                    t.customer_count = Set(source.customer_count);
                    t.notes = Set(source.notes.clone());
                    t.updated_at = Set(now);
                    let target = t.update(txn).await?;
                    let mut s = source.into_active_model();
                    s.is_running = Set(false);
                    s.elapsed_seconds = Set(0);
                    s.elapsed_at = Set(now);
                    s.mode = Set("single".into());
                    s.customer_count = Set(1);
                    s.notes = Set(String::new());
                    s.updated_at = Set(now);
                    s.update(txn).await?;
                    let message = format!("Device data transferred from {from} to {to}");
                    let ev = event(
                        types::DEVICE_TRANSFERRED,
                        json!({"fromDeviceId": from, "toDeviceId": to, "message": message}),
                    );
                    (Some(target), ev)
                }
                Change::DeviceDeleted { device_id } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    device_orders::Entity::delete_many()
                        .filter(device_orders::Column::VenueId.eq(venue))
                        .filter(device_orders::Column::DeviceId.eq(device_id.as_str()))
                        .exec(txn)
                        .await?;
                    row.delete(txn).await?;
                    (
                        None,
                        event(types::DEVICE_REMOVED, json!({"deviceId": device_id})),
                    )
                }
                Change::DeviceReset { device_id } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    device_orders::Entity::delete_many()
                        .filter(device_orders::Column::VenueId.eq(venue))
                        .filter(device_orders::Column::DeviceId.eq(device_id.as_str()))
                        .exec(txn)
                        .await?;
                    let mut d = row.into_active_model();
                    d.is_running = Set(false);
                    d.elapsed_seconds = Set(0);
                    d.elapsed_at = Set(now);
                    d.updated_at = Set(now);
                    let row = d.update(txn).await?;
                    let ev = event(types::DEVICE_CLEARED, json!({"deviceId": device_id}));
                    (Some(row), ev)
                }
            };
            // The row each change wrote, with its orders.
            let device = match changed {
                Some(row) if self.answer_device => {
                    let orders = orders_of(txn, venue, &row.id).await?;
                    Some(to_device(&row, orders.iter().map(to_order).collect()))
                }
                _ => None,
            };
            Ok((device, vec![ev]))
        })
    }
}

/// The device's order at `index` (its position), or `ORDER_NOT_FOUND`.
async fn order_at(
    txn: &DatabaseTransaction,
    venue: &str,
    device_id: &str,
    index: i64,
) -> Result<device_orders::Model, DomainError> {
    device_orders::Entity::find()
        .filter(device_orders::Column::VenueId.eq(venue))
        .filter(device_orders::Column::DeviceId.eq(device_id))
        .filter(device_orders::Column::Position.eq(index))
        .one(txn)
        .await?
        .ok_or_else(|| {
            refused(
                codes::ORDER_NOT_FOUND,
                format!("Order {index} does not exist on device {device_id}"),
            )
        })
}

/// Marks the device changed; answers its new row.
async fn touch(
    txn: &DatabaseTransaction,
    row: devices::Model,
    now: i64,
) -> Result<devices::Model, DomainError> {
    let mut d = row.into_active_model();
    d.updated_at = Set(now);
    Ok(d.update(txn).await?)
}
