//! Cashier venues: stations (devices), their orders, and the catalog.
//! Every change is applied in one transaction with its broadcast event.
//!
//! This module reads a venue and adds devices; [`apply`] is a terminal's
//! change to a device and its orders, [`catalog`] the categories and
//! products.

mod apply;
mod catalog;

use entity::{device_orders, devices, venues};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{json, Number};

use super::command::{Command, DomainError, Outcome};
use crate::{
    core::{
        events::RoomKey,
        wire::{
            self,
            cashier::{codes, types, Device, DeviceFields, Order},
            format_ms,
        },
    },
    store::{
        db::Db,
        event_log::{self, NewEvent},
    },
};

pub use apply::Apply;
pub use catalog::{categories, products, Category, Product, SetCategories, SetProducts};

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

/// A station's time as of `now_ms`: what was stored, plus, while it runs,
/// the whole seconds since it was stored (the contract's "running timers").
fn elapsed_now(row: &devices::Model, now_ms: i64) -> i64 {
    if !row.is_running || row.elapsed_at <= 0 {
        return row.elapsed_seconds;
    }
    row.elapsed_seconds + (now_ms - row.elapsed_at).max(0) / 1000
}

/// The device as a snapshot gives it: a running station's time as of now.
fn to_device(row: &devices::Model, orders: Vec<Order>) -> Device {
    Device {
        device_id: row.id.clone(),
        name: row.name.clone(),
        is_running: row.is_running,
        elapsed_seconds: elapsed_now(row, wire::now_ms()),
        mode: row.mode.clone(),
        customer_count: row.customer_count,
        notes: row.notes.clone(),
        orders,
        updated_at: format_ms(row.updated_at),
    }
}

/// A device's orders, by position.
async fn orders_of<C: ConnectionTrait>(
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
    let orders = orders_of(db, venue, device_id).await?;
    Ok(to_device(&row, orders.iter().map(to_order).collect()))
}

/// The venue's devices and seq, read in one transaction so they agree: on
/// PostgreSQL a `REPEATABLE READ` one (one snapshot for both reads, so a
/// change committed between them by another node is in neither or both,
/// and no broadcast is applied twice); SQLite's read is one snapshot anyway.
pub async fn snapshot(db: &Db, venue: &str) -> Result<Snapshot, sea_orm::DbErr> {
    let txn = db.begin_consistent_read().await?;
    let seq = event_log::last_seq(&txn, &RoomKey::Venue(venue.to_owned())).await?;
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
                elapsed_at: Set(now),
                mode: Set(f.mode.unwrap_or_else(|| "single".into())),
                customer_count: Set(f.customer_count.unwrap_or(1)),
                notes: Set(f.notes.unwrap_or_default()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(txn)
            .await?;
            let device = to_device(&row, Vec::new());
            // As given: the broadcast carries what was sent.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn device(running: bool, elapsed: i64, at: i64) -> devices::Model {
        devices::Model {
            venue_id: "v".into(),
            id: "pc1".into(),
            name: "pc1".into(),
            is_running: running,
            elapsed_seconds: elapsed,
            elapsed_at: at,
            mode: "single".into(),
            customer_count: 1,
            notes: String::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_running_station_counts_on_from_its_stored_time() {
        assert_eq!(elapsed_now(&device(true, 60, 1_000), 4_999), 63);
        assert_eq!(elapsed_now(&device(false, 60, 1_000), 99_000), 60);
        // A clock that went back never takes time away.
        assert_eq!(elapsed_now(&device(true, 60, 5_000), 1_000), 60);
    }
}
