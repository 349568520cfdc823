//! The `/ws` cashier-terminal protocol, byte-compatible with the cashier
//! team's spec: flat messages with a lowercase `type`. Broadcasts carry the
//! spec's fields plus `timestamp`, `seq` and the sender's `clientId`.
//! What terminals send is read and checked in `parse.rs`.

mod parse;

pub use parse::{
    check_price, device_fields, new_order, new_orders, order_patch, parse, whole_number, Fields,
    Refusal, MAX_ORDERS, MAX_PRICE, MAX_QUANTITY,
};

use bytestring::ByteString;
use serde::Serialize;
use serde_json::{json, value::RawValue, Map, Number, Value};

use super::{format_ms, now_ms};

/// A venue broadcast: `type`, the payload's fields, then `timestamp`, `seq`
/// and the sender's `clientId`, flat as the spec's messages are.
pub fn event_frame(
    kind: &str,
    seq: Option<u64>,
    payload: &RawValue,
    at_ms: i64,
    client_id: Option<&str>,
) -> ByteString {
    let mut out = String::with_capacity(payload.get().len() + 96);
    out.push_str("{\"type\":");
    out.push_str(&serde_json::to_string(kind).expect("strings serialize"));
    let body = payload.get().trim();
    if let Some(inner) = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')) {
        if !inner.trim().is_empty() {
            out.push(',');
            out.push_str(inner);
        }
    }
    out.push_str(",\"timestamp\":\"");
    out.push_str(&format_ms(at_ms));
    out.push_str("\",\"seq\":");
    match seq {
        Some(seq) => out.push_str(&seq.to_string()),
        None => out.push_str("null"),
    }
    if let Some(id) = client_id {
        out.push_str(",\"clientId\":");
        out.push_str(&serde_json::to_string(id).expect("strings serialize"));
    }
    out.push('}');
    out.into()
}

/// Broadcast types (server to terminals).
pub mod types {
    pub const DEVICE_UPDATED: &str = "device_updated";
    pub const ORDER_ADDED: &str = "order_added";
    pub const ORDER_MODIFIED: &str = "order_modified";
    pub const ORDER_REMOVED: &str = "order_removed";
    pub const DEVICE_TRANSFERRED: &str = "device_transferred";
    pub const DEVICE_REMOVED: &str = "device_removed";
    pub const DEVICE_CLEARED: &str = "device_cleared";
    pub const DEVICE_CREATED: &str = "device_created";
    pub const CATEGORIES_UPDATED: &str = "categories_updated";
    pub const PRICES_UPDATED: &str = "prices_updated";
}

/// Error codes of the contract.
pub mod codes {
    pub const INVALID_JSON: &str = "INVALID_JSON";
    pub const UNKNOWN_TYPE: &str = "UNKNOWN_TYPE";
    pub const VALIDATION_FAILED: &str = "VALIDATION_FAILED";
    pub const DEVICE_NOT_FOUND: &str = "DEVICE_NOT_FOUND";
    pub const ORDER_NOT_FOUND: &str = "ORDER_NOT_FOUND";
    pub const DEVICE_EXISTS: &str = "DEVICE_EXISTS";
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
}

fn control(value: Value) -> ByteString {
    value.to_string().into()
}

pub fn error_frame(code: &str, message: &str) -> ByteString {
    control(
        json!({"type": "error", "code": code, "message": message, "timestamp": format_ms(now_ms())}),
    )
}

/// The answer to `refresh_token`: the new token's `exp` (seconds).
pub fn token_refreshed_frame(exp: u64) -> ByteString {
    control(json!({"type": "token_refreshed", "exp": exp, "timestamp": format_ms(now_ms())}))
}

pub fn pong_frame() -> ByteString {
    control(json!({"type": "pong", "timestamp": format_ms(now_ms())}))
}

/// `connected`: the venue's `seq`, and either every device (`devices`) or,
/// on a filled resume, nothing more (the missed broadcasts follow).
/// `recovered` is present when the terminal asked to resume.
pub fn connected_frame(
    seq: u64,
    epoch: &str,
    devices: Option<&[Device]>,
    recovered: Option<bool>,
) -> ByteString {
    let mut v = json!({
        "type": "connected",
        "success": true,
        "message": "Connected to server",
        "timestamp": format_ms(now_ms()),
        "seq": seq,
        "epoch": epoch,
    });
    if let Some(devices) = devices {
        v["devices"] = serde_json::to_value(devices).expect("devices serialize");
    }
    if let Some(recovered) = recovered {
        v["recovered"] = json!(recovered);
    }
    control(v)
}

/// One order at a station.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub name: String,
    /// The JSON number as the terminal wrote it (`1000`, `1000.0`, `12.5`).
    #[schema(value_type = f64, minimum = 0)]
    pub price: Number,
    pub quantity: i64,
    pub notes: String,
    pub first_order_time: String,
    pub last_order_time: String,
}

/// A station with its orders (snapshot, REST, `device_created`).
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub device_id: String,
    pub name: String,
    pub is_running: bool,
    pub elapsed_seconds: i64,
    pub mode: String,
    pub customer_count: i64,
    pub notes: String,
    pub orders: Vec<Order>,
    pub updated_at: String,
}

/// Device fields a terminal (or REST) may set; absent ones stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFields {
    pub name: Option<String>,
    pub is_running: Option<bool>,
    pub elapsed_seconds: Option<i64>,
    pub mode: Option<String>,
    pub customer_count: Option<i64>,
    pub notes: Option<String>,
}

impl DeviceFields {
    pub fn is_empty(&self) -> bool {
        *self == DeviceFields::default()
    }

    /// The fields given, as the broadcast's `data`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(v) = &self.name {
            m.insert("name".into(), json!(v));
        }
        if let Some(v) = self.is_running {
            m.insert("isRunning".into(), json!(v));
        }
        if let Some(v) = self.elapsed_seconds {
            m.insert("elapsedSeconds".into(), json!(v));
        }
        if let Some(v) = &self.mode {
            m.insert("mode".into(), json!(v));
        }
        if let Some(v) = self.customer_count {
            m.insert("customerCount".into(), json!(v));
        }
        if let Some(v) = &self.notes {
            m.insert("notes".into(), json!(v));
        }
        Value::Object(m)
    }
}

/// Order fields to change; absent ones stay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderPatch {
    pub name: Option<String>,
    pub price: Option<Number>,
    pub quantity: Option<i64>,
    pub notes: Option<String>,
    pub first_order_time: Option<String>,
    pub last_order_time: Option<String>,
}

impl OrderPatch {
    pub fn is_empty(&self) -> bool {
        *self == OrderPatch::default()
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(v) = &self.name {
            m.insert("name".into(), json!(v));
        }
        if let Some(v) = &self.price {
            m.insert("price".into(), Value::Number(v.clone()));
        }
        if let Some(v) = self.quantity {
            m.insert("quantity".into(), json!(v));
        }
        if let Some(v) = &self.notes {
            m.insert("notes".into(), json!(v));
        }
        if let Some(v) = &self.first_order_time {
            m.insert("firstOrderTime".into(), json!(v));
        }
        if let Some(v) = &self.last_order_time {
            m.insert("lastOrderTime".into(), json!(v));
        }
        Value::Object(m)
    }
}

/// A change to a venue, from a terminal or from REST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    DeviceUpdate {
        device_id: String,
        data: DeviceFields,
    },
    OrderPlaced {
        device_id: String,
        orders: Vec<Order>,
    },
    OrderUpdated {
        device_id: String,
        order_index: i64,
        data: OrderPatch,
    },
    OrderDeleted {
        device_id: String,
        order_index: i64,
    },
    DeviceTransfer {
        from: String,
        to: String,
    },
    DeviceDeleted {
        device_id: String,
    },
    DeviceReset {
        device_id: String,
    },
}

/// What a terminal sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Connect {
        client_id: String,
        last_seq: Option<u64>,
        token: Option<String>,
        /// The `epoch` from an earlier `connected` (optional, herald's addition).
        epoch: Option<String>,
    },
    Ping,
    /// `refresh_token`: a later token for the same terminal.
    RefreshToken(String),
    Change(Change),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_frame() {
        let payload =
            RawValue::from_string(r#"{"deviceId":"pc1","data":{"notes":"بارد"}}"#.into()).unwrap();
        let f = event_frame("device_updated", Some(7), &payload, 0, Some("c-1"));
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["type"], "device_updated");
        assert_eq!(v["deviceId"], "pc1");
        assert_eq!(v["data"]["notes"], "بارد");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["clientId"], "c-1");
        let empty = RawValue::from_string("{}".into()).unwrap();
        let f = event_frame("prices_updated", Some(1), &empty, 0, None);
        assert!(serde_json::from_str::<Value>(&f).is_ok());
    }
}
