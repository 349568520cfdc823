//! Cashier venues: stations (devices), their orders, and the catalog.
//! Every change is applied in one transaction with its broadcast event.

use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, ModelTrait,
    QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Number};

use entity::{categories, device_orders, devices, products, venues};

use super::{Command, DomainError, Outcome};
use crate::{
    db::Db,
    events::{ConnId, RoomKey},
    outbox::{self, NewEvent},
    wire::{
        cashier::{codes, types, Change, Device, DeviceFields, Order},
        format_ms,
    },
};

/// The venue as a terminal sees it on connect: every device, and the seq the
/// state is at.
pub struct Snapshot {
    pub seq: u64,
    pub devices: Vec<Device>,
}

/// What a joining terminal gets first: the missed broadcasts (all still
/// stored; the room replays them page by page), or the state.
pub enum Welcome {
    Resume,
    Snapshot(Snapshot),
}

fn refused(code: &'static str, message: String) -> DomainError {
    DomainError::Refused { code, message }
}

fn not_found(device_id: &str) -> DomainError {
    refused(
        codes::DEVICE_NOT_FOUND,
        format!("Device {device_id} does not exist"),
    )
}

/// A stored price, as its client wrote it (`price_json`); rows older than
/// that column fall back to the whole-unit `price`.
fn stored_price(json: &str, whole: i64) -> Number {
    serde_json::from_str(json).unwrap_or_else(|_| Number::from(whole))
}

/// What goes into the whole-unit `price` column next to the exact one.
fn whole_units(price: &Number) -> i64 {
    price
        .as_i64()
        .unwrap_or_else(|| price.as_f64().unwrap_or(0.0).round() as i64)
}

fn to_order(row: &device_orders::Model) -> Order {
    Order {
        name: row.name.clone(),
        price: stored_price(&row.price_json, row.price),
        quantity: row.quantity,
        notes: row.notes.clone(),
        first_order_time: row.first_order_time.clone(),
        last_order_time: row.last_order_time.clone(),
    }
}

fn to_device(row: &devices::Model, orders: Vec<Order>) -> Device {
    Device {
        device_id: row.id.clone(),
        name: row.name.clone(),
        is_running: row.is_running,
        elapsed_seconds: row.elapsed_seconds,
        mode: row.mode.clone(),
        customer_count: row.customer_count,
        notes: row.notes.clone(),
        orders,
        updated_at: format_ms(row.updated_at),
    }
}

async fn device_orders<C: ConnectionTrait>(
    db: &C,
    venue: &str,
    device_id: &str,
) -> Result<Vec<device_orders::Model>, DomainError> {
    Ok(device_orders::Entity::find()
        .filter(device_orders::Column::VenueId.eq(venue))
        .filter(device_orders::Column::DeviceId.eq(device_id))
        .order_by_asc(device_orders::Column::Position)
        .all(db)
        .await?)
}

async fn find_device<C: ConnectionTrait>(
    db: &C,
    venue: &str,
    device_id: &str,
) -> Result<devices::Model, DomainError> {
    devices::Entity::find_by_id((venue.to_owned(), device_id.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| not_found(device_id))
}

/// Every device of the venue with its orders.
pub async fn list_devices<C: ConnectionTrait>(
    db: &C,
    venue: &str,
) -> Result<Vec<Device>, DomainError> {
    let rows = devices::Entity::find()
        .filter(devices::Column::VenueId.eq(venue))
        .order_by_asc(devices::Column::CreatedAt)
        .order_by_asc(devices::Column::Id)
        .all(db)
        .await?;
    let orders = device_orders::Entity::find()
        .filter(device_orders::Column::VenueId.eq(venue))
        .order_by_asc(device_orders::Column::DeviceId)
        .order_by_asc(device_orders::Column::Position)
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .map(|d| {
            let mine = orders
                .iter()
                .filter(|o| o.device_id == d.id)
                .map(to_order)
                .collect();
            to_device(d, mine)
        })
        .collect())
}

pub async fn get_device<C: ConnectionTrait>(
    db: &C,
    venue: &str,
    device_id: &str,
) -> Result<Device, DomainError> {
    let row = find_device(db, venue, device_id).await?;
    let orders = device_orders(db, venue, device_id).await?;
    Ok(to_device(&row, orders.iter().map(to_order).collect()))
}

/// The venue's devices and seq, read in one transaction so they agree: on
/// PostgreSQL a `REPEATABLE READ` one (one snapshot for both reads, so a
/// change committed between them by another node is in neither or both,
/// and no broadcast is applied twice); SQLite's read is one snapshot anyway.
pub async fn snapshot(db: &Db, venue: &str) -> Result<Snapshot, sea_orm::DbErr> {
    let txn = db.begin_consistent_read().await?;
    let seq = outbox::last_seq(&txn, &RoomKey::Venue(venue.to_owned())).await?;
    let devices = list_devices(&txn, venue).await.map_err(|e| match e {
        DomainError::Db(e) => e,
        other => sea_orm::DbErr::Custom(other.to_string()),
    })?;
    txn.commit().await?;
    Ok(Snapshot { seq, devices })
}

async fn ensure_venue(txn: &DatabaseTransaction, venue: &str, now: i64) -> Result<(), DomainError> {
    venues::Entity::insert(venues::ActiveModel {
        id: Set(venue.to_owned()),
        created_at: Set(now),
    })
    .on_conflict_do_nothing_on([venues::Column::Id])
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

fn in_use(row: &devices::Model, order_count: usize) -> bool {
    row.is_running || row.elapsed_seconds > 0 || order_count > 0
}

/// A terminal's (or REST's) change to a venue; answers the device it left
/// behind (`None` when deleted).
pub struct Apply {
    pub venue: String,
    pub change: Change,
    /// The sending terminal's `clientId` (carried by the broadcast).
    pub client_id: Option<String>,
    /// The sending connection, which does not get the broadcast back.
    pub conn: Option<ConnId>,
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
            let (touched, ev) = match self.change {
                Change::DeviceUpdate { device_id, data } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    let mut d = row.into_active_model();
                    if let Some(v) = &data.name {
                        d.name = Set(v.clone());
                    }
                    if let Some(v) = data.is_running {
                        d.is_running = Set(v);
                    }
                    if let Some(v) = data.elapsed_seconds {
                        d.elapsed_seconds = Set(v);
                    }
                    if let Some(v) = &data.mode {
                        d.mode = Set(v.clone());
                    }
                    if let Some(v) = data.customer_count {
                        d.customer_count = Set(v);
                    }
                    if let Some(v) = &data.notes {
                        d.notes = Set(v.clone());
                    }
                    d.updated_at = Set(now);
                    d.update(txn).await?;
                    let ev = event(
                        types::DEVICE_UPDATED,
                        json!({"deviceId": device_id, "data": data.to_json()}),
                    );
                    (Some(device_id), ev)
                }
                Change::OrderPlaced { device_id, orders } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    let start = device_orders(txn, venue, &device_id).await?.len() as i32;
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
                    touch(txn, row, now).await?;
                    let ev = event(
                        types::ORDER_ADDED,
                        json!({"deviceId": device_id, "orders": orders}),
                    );
                    (Some(device_id), ev)
                }
                Change::OrderUpdated {
                    device_id,
                    order_index,
                    data,
                } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    let orders = device_orders(txn, venue, &device_id).await?;
                    let order = orders
                        .into_iter()
                        .find(|o| o.position as i64 == order_index)
                        .ok_or_else(|| order_missing(&device_id, order_index))?;
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
                    touch(txn, row, now).await?;
                    let ev = event(
                        types::ORDER_MODIFIED,
                        json!({"deviceId": device_id, "orderIndex": order_index, "data": data.to_json()}),
                    );
                    (Some(device_id), ev)
                }
                Change::OrderDeleted {
                    device_id,
                    order_index,
                } => {
                    let row = find_device(txn, venue, &device_id).await?;
                    let orders = device_orders(txn, venue, &device_id).await?;
                    let order = orders
                        .into_iter()
                        .find(|o| o.position as i64 == order_index)
                        .ok_or_else(|| order_missing(&device_id, order_index))?;
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
                    touch(txn, row, now).await?;
                    let ev = event(
                        types::ORDER_REMOVED,
                        json!({"deviceId": device_id, "orderIndex": order_index}),
                    );
                    (Some(device_id), ev)
                }
                Change::DeviceTransfer { from, to } => {
                    let source = find_device(txn, venue, &from).await?;
                    let target = find_device(txn, venue, &to).await?;
                    let target_orders = device_orders(txn, venue, &to).await?.len();
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
                    t.mode = Set(source.mode.clone());
                    t.customer_count = Set(source.customer_count);
                    t.notes = Set(source.notes.clone());
                    t.updated_at = Set(now);
                    t.update(txn).await?;
                    let mut s = source.into_active_model();
                    s.is_running = Set(false);
                    s.elapsed_seconds = Set(0);
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
                    (Some(to), ev)
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
                    d.updated_at = Set(now);
                    d.update(txn).await?;
                    let ev = event(types::DEVICE_CLEARED, json!({"deviceId": device_id}));
                    (Some(device_id), ev)
                }
            };
            let device = match touched {
                Some(id) => Some(get_device(txn, venue, &id).await?),
                None => None,
            };
            Ok((device, vec![ev]))
        })
    }
}

fn order_missing(device_id: &str, index: i64) -> DomainError {
    refused(
        codes::ORDER_NOT_FOUND,
        format!("Order {index} does not exist on device {device_id}"),
    )
}

async fn touch(
    txn: &DatabaseTransaction,
    row: devices::Model,
    now: i64,
) -> Result<(), DomainError> {
    let mut d = row.into_active_model();
    d.updated_at = Set(now);
    d.update(txn).await?;
    Ok(())
}

/// Adds a device (`device_created` to every terminal).
pub struct CreateDevice {
    pub venue: String,
    pub device_id: String,
    pub name: Option<String>,
    pub fields: DeviceFields,
}

impl Command for CreateDevice {
    type Output = Device;

    fn room(&self) -> RoomKey {
        RoomKey::Venue(self.venue.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Device> {
        Box::pin(async move {
            ensure_venue(txn, &self.venue, now).await?;
            if find_device(txn, &self.venue, &self.device_id).await.is_ok() {
                return Err(refused(
                    codes::DEVICE_EXISTS,
                    format!("Device {} already exists", self.device_id),
                ));
            }
            let f = self.fields;
            let row = devices::ActiveModel {
                venue_id: Set(self.venue.clone()),
                id: Set(self.device_id.clone()),
                name: Set(self.name.unwrap_or_else(|| self.device_id.clone())),
                is_running: Set(f.is_running.unwrap_or(false)),
                elapsed_seconds: Set(f.elapsed_seconds.unwrap_or(0)),
                mode: Set(f.mode.unwrap_or_else(|| "single".into())),
                customer_count: Set(f.customer_count.unwrap_or(1)),
                notes: Set(f.notes.unwrap_or_default()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(txn)
            .await?;
            let device = to_device(&row, Vec::new());
            let data = json!({
                "name": device.name,
                "isRunning": device.is_running,
                "elapsedSeconds": device.elapsed_seconds,
                "mode": device.mode,
                "customerCount": device.customer_count,
                "notes": device.notes,
                "orders": [],
            });
            let ev = NewEvent::new(
                types::DEVICE_CREATED,
                &json!({"deviceId": device.device_id, "data": data}),
                None,
            );
            Ok((device, vec![ev]))
        })
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Category {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Product {
    pub id: String,
    pub name: String,
    /// Any JSON number from 0, kept as written (`1000`, `1000.0`, `12.5`).
    #[schema(value_type = f64, minimum = 0)]
    pub price: Number,
    #[serde(default)]
    pub category_id: Option<String>,
    #[serde(default = "yes")]
    pub available: bool,
}

fn yes() -> bool {
    true
}

pub async fn categories<C: ConnectionTrait>(
    db: &C,
    venue: &str,
) -> Result<Vec<Category>, DomainError> {
    Ok(categories::Entity::find()
        .filter(categories::Column::VenueId.eq(venue))
        .order_by_asc(categories::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|c| Category {
            id: c.id,
            name: c.name,
        })
        .collect())
}

pub async fn products<C: ConnectionTrait>(
    db: &C,
    venue: &str,
) -> Result<Vec<Product>, DomainError> {
    Ok(products::Entity::find()
        .filter(products::Column::VenueId.eq(venue))
        .order_by_asc(products::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|p| Product {
            id: p.id,
            name: p.name,
            price: stored_price(&p.price_json, p.price),
            category_id: p.category_id,
            available: p.available,
        })
        .collect())
}

/// Replaces the venue's categories (`categories_updated`).
pub struct SetCategories {
    pub venue: String,
    pub categories: Vec<Category>,
}

impl Command for SetCategories {
    type Output = Vec<Category>;

    fn room(&self) -> RoomKey {
        RoomKey::Venue(self.venue.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Vec<Category>> {
        Box::pin(async move {
            ensure_venue(txn, &self.venue, now).await?;
            categories::Entity::delete_many()
                .filter(categories::Column::VenueId.eq(self.venue.as_str()))
                .exec(txn)
                .await?;
            for (i, c) in self.categories.iter().enumerate() {
                categories::ActiveModel {
                    venue_id: Set(self.venue.clone()),
                    id: Set(c.id.clone()),
                    name: Set(c.name.clone()),
                    position: Set(i as i32),
                }
                .insert(txn)
                .await?;
            }
            let ev = NewEvent::new(
                types::CATEGORIES_UPDATED,
                &json!({"categories": self.categories}),
                None,
            );
            Ok((self.categories, vec![ev]))
        })
    }
}

/// Replaces the venue's products and prices (`prices_updated`).
pub struct SetProducts {
    pub venue: String,
    pub products: Vec<Product>,
}

impl Command for SetProducts {
    type Output = Vec<Product>;

    fn room(&self) -> RoomKey {
        RoomKey::Venue(self.venue.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Vec<Product>> {
        Box::pin(async move {
            ensure_venue(txn, &self.venue, now).await?;
            products::Entity::delete_many()
                .filter(products::Column::VenueId.eq(self.venue.as_str()))
                .exec(txn)
                .await?;
            for (i, p) in self.products.iter().enumerate() {
                products::ActiveModel {
                    venue_id: Set(self.venue.clone()),
                    id: Set(p.id.clone()),
                    name: Set(p.name.clone()),
                    price: Set(whole_units(&p.price)),
                    price_json: Set(p.price.to_string()),
                    category_id: Set(p.category_id.clone()),
                    available: Set(p.available),
                    position: Set(i as i32),
                }
                .insert(txn)
                .await?;
            }
            let ev = NewEvent::new(
                types::PRICES_UPDATED,
                &json!({"products": self.products}),
                None,
            );
            Ok((self.products, vec![ev]))
        })
    }
}
