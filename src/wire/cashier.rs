//! The `/ws` cashier-terminal protocol, byte-compatible with the cashier
//! team's spec: flat messages with a lowercase `type`. Broadcasts carry the
//! spec's fields plus `timestamp`, `seq` and the sender's `clientId`.

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

/// A refused message: the contract's code and a message saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal {
        code: codes::VALIDATION_FAILED,
        message: message.into(),
    }
}

/// Field readers that name the field in their errors.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    pub fn string(&self, key: &str, max: usize) -> Result<String, Refusal> {
        self.opt_string(key, max)?
            .ok_or_else(|| invalid(format!("missing `{key}`")))
    }

    pub fn opt_string(&self, key: &str, max: usize) -> Result<Option<String>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
            Some(Value::String(_)) => {
                Err(invalid(format!("`{key}` is longer than {max} characters")))
            }
            Some(_) => Err(invalid(format!("`{key}` must be a string"))),
        }
    }

    pub fn id(&self, key: &str) -> Result<String, Refusal> {
        let s = self.string(key, 64)?;
        if s.trim().is_empty() {
            return Err(invalid(format!("`{key}` must not be empty")));
        }
        Ok(s)
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(format!("`{key}` must be true or false"))),
        }
    }

    /// A whole number from 0 to `max`; `3.0` (a Dart `double`) counts as 3.
    pub fn opt_count(&self, key: &str, max: i64) -> Result<Option<i64>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => whole_number(n, max)
                .map(Some)
                .map_err(|why| invalid(format!("`{key}` {why}"))),
            Some(_) => Err(invalid(format!("`{key}` must be a whole number"))),
        }
    }

    /// A price: any JSON number from 0 to [`MAX_PRICE`], kept as written.
    pub fn opt_price(&self, key: &str) -> Result<Option<Number>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => check_price(n)
                .map(|()| Some(n.clone()))
                .map_err(|why| invalid(format!("`{key}` {why}"))),
            Some(_) => Err(invalid(format!("`{key}` must be a number"))),
        }
    }

    pub fn price(&self, key: &str) -> Result<Number, Refusal> {
        self.opt_price(key)?
            .ok_or_else(|| invalid(format!("missing `{key}`")))
    }

    pub fn count(&self, key: &str, max: i64) -> Result<i64, Refusal> {
        self.opt_count(key, max)?
            .ok_or_else(|| invalid(format!("missing `{key}`")))
    }

    pub fn opt_time(&self, key: &str) -> Result<Option<String>, Refusal> {
        match self.opt_string(key, 64)? {
            None => Ok(None),
            Some(t)
                if super::parse_time_ms(&t).is_some()
                    && !t.trim().chars().all(|c| c.is_ascii_digit()) =>
            {
                Ok(Some(t))
            }
            Some(_) => Err(invalid(format!(
                "`{key}` must be an ISO 8601 time such as 2026-02-03T02:25:33+03:00"
            ))),
        }
    }

    pub fn object(&self, key: &str) -> Result<Fields<'_>, Refusal> {
        match self.0.get(key) {
            Some(Value::Object(m)) => Ok(Fields(m)),
            None | Some(Value::Null) => Err(invalid(format!("missing `{key}`"))),
            Some(_) => Err(invalid(format!("`{key}` must be an object"))),
        }
    }
}

pub const MAX_PRICE: i64 = 1_000_000_000_000;

/// Why `n` is not a whole number from 0 to `max` (`3.0` is 3).
pub fn whole_number(n: &Number, max: i64) -> Result<i64, String> {
    let value = match (n.as_i64(), n.as_f64()) {
        (Some(v), _) => v as f64,
        (None, Some(f)) => f,
        (None, None) => return Err("must be a whole number".into()),
    };
    if value < 0.0 {
        return Err("must not be negative".into());
    }
    if value.fract() != 0.0 {
        return Err("must be a whole number".into());
    }
    if value > max as f64 {
        return Err(format!("must be at most {max}"));
    }
    Ok(n.as_i64().unwrap_or(value as i64))
}

/// Why `n` is not a price from 0 to [`MAX_PRICE`].
pub fn check_price(n: &Number) -> Result<(), String> {
    match n.as_f64() {
        Some(f) if f.is_finite() && f >= 0.0 && f <= MAX_PRICE as f64 => Ok(()),
        Some(f) if f < 0.0 => Err("must not be negative".into()),
        _ => Err(format!("must be a number from 0 to {MAX_PRICE}")),
    }
}
pub const MAX_QUANTITY: i64 = 1_000_000;
pub const MAX_ORDERS: usize = 200;

pub fn device_fields(f: &Fields) -> Result<DeviceFields, Refusal> {
    let mode = f.opt_string("mode", 16)?;
    if let Some(m) = &mode {
        if m != "single" && m != "multi" {
            return Err(invalid(format!(
                "`mode` must be \"single\" or \"multi\" (got \"{m}\")"
            )));
        }
    }
    Ok(DeviceFields {
        name: None,
        is_running: f.opt_bool("isRunning")?,
        elapsed_seconds: f.opt_count("elapsedSeconds", 10_000_000_000)?,
        mode,
        customer_count: f.opt_count("customerCount", 10_000)?,
        notes: f.opt_string("notes", 2000)?,
    })
}

/// A new order; `now` fills missing times.
pub fn new_order(f: &Fields, now: &str) -> Result<Order, Refusal> {
    let name = f.string("name", 200)?;
    if name.trim().is_empty() {
        return Err(invalid("`name` must not be empty"));
    }
    let first = f.opt_time("firstOrderTime")?;
    let last = f.opt_time("lastOrderTime")?;
    Ok(Order {
        name,
        price: f.price("price")?,
        quantity: f.count("quantity", MAX_QUANTITY)?,
        notes: f.opt_string("notes", 2000)?.unwrap_or_default(),
        first_order_time: first.clone().unwrap_or_else(|| now.to_owned()),
        last_order_time: last.or(first).unwrap_or_else(|| now.to_owned()),
    })
}

pub fn new_orders(value: Option<&Value>, now: &str) -> Result<Vec<Order>, Refusal> {
    let list = match value {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => return Err(invalid("missing `orders`")),
        Some(_) => return Err(invalid("`orders` must be an array")),
    };
    if list.is_empty() || list.len() > MAX_ORDERS {
        return Err(invalid(format!(
            "`orders` must hold 1 to {MAX_ORDERS} orders"
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(m) => new_order(&Fields(m), now)
                .map_err(|r| invalid(format!("orders[{i}]: {}", r.message))),
            _ => Err(invalid(format!("orders[{i}] must be an object"))),
        })
        .collect()
}

pub fn order_patch(f: &Fields) -> Result<OrderPatch, Refusal> {
    let name = f.opt_string("name", 200)?;
    if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(invalid("`name` must not be empty"));
    }
    let patch = OrderPatch {
        name,
        price: f.opt_price("price")?,
        quantity: f.opt_count("quantity", MAX_QUANTITY)?,
        notes: f.opt_string("notes", 2000)?,
        first_order_time: f.opt_time("firstOrderTime")?,
        last_order_time: f.opt_time("lastOrderTime")?,
    };
    if patch.is_empty() {
        return Err(invalid(
            "`data` changes nothing: give name, price, quantity, notes or a time",
        ));
    }
    Ok(patch)
}

/// Parses one terminal message.
pub fn parse(text: &str) -> Result<ClientMessage, Refusal> {
    let value: Value = serde_json::from_str(text).map_err(|e| Refusal {
        code: codes::INVALID_JSON,
        message: format!("not valid JSON: {e}"),
    })?;
    let Value::Object(map) = &value else {
        return Err(invalid("a message must be a JSON object with a `type`"));
    };
    let f = Fields(map);
    let kind = match map.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(invalid("`type` must be a string")),
        None => return Err(invalid("missing `type`")),
    };
    let now = format_ms(now_ms());
    let change = match kind {
        "connect" => {
            let client_id = f.string("clientId", 128)?;
            if client_id.trim().is_empty() {
                return Err(invalid("`clientId` must not be empty"));
            }
            let last_seq = match map.get("lastSeq") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or_else(|| invalid("`lastSeq` must be a whole number"))?,
                ),
            };
            return Ok(ClientMessage::Connect {
                client_id,
                last_seq,
                token: f.opt_string("token", 8192)?,
                epoch: f.opt_string("epoch", 64)?,
            });
        }
        "ping" => return Ok(ClientMessage::Ping),
        "refresh_token" => {
            let token = f.string("token", 8192)?;
            if token.trim().is_empty() {
                return Err(invalid("`token` must not be empty"));
            }
            return Ok(ClientMessage::RefreshToken(token));
        }
        "device_update" => {
            let data = device_fields(&f.object("data")?)?;
            if data.is_empty() {
                return Err(invalid(
                    "`data` changes nothing: give isRunning, elapsedSeconds, mode, customerCount or notes",
                ));
            }
            Change::DeviceUpdate {
                device_id: f.id("deviceId")?,
                data,
            }
        }
        "order_placed" => Change::OrderPlaced {
            device_id: f.id("deviceId")?,
            orders: new_orders(map.get("orders"), &now)?,
        },
        "order_updated" => Change::OrderUpdated {
            device_id: f.id("deviceId")?,
            order_index: f.count("orderIndex", i64::MAX)?,
            data: order_patch(&f.object("data")?)?,
        },
        "order_deleted" => Change::OrderDeleted {
            device_id: f.id("deviceId")?,
            order_index: f.count("orderIndex", i64::MAX)?,
        },
        "device_transfer" => {
            let (from, to) = (f.id("fromDeviceId")?, f.id("toDeviceId")?);
            if from == to {
                return Err(invalid(
                    "`fromDeviceId` and `toDeviceId` are the same device",
                ));
            }
            Change::DeviceTransfer { from, to }
        }
        "device_deleted" => Change::DeviceDeleted {
            device_id: f.id("deviceId")?,
        },
        "device_reset" => Change::DeviceReset {
            device_id: f.id("deviceId")?,
        },
        other => {
            return Err(Refusal {
                code: codes::UNKNOWN_TYPE,
                message: format!("unknown message type `{other}`"),
            })
        }
    };
    Ok(ClientMessage::Change(change))
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

    /// Inputs the fuzzer (scripts/fuzz) found; kept as regressions.
    #[test]
    fn fuzz_findings() {
        // A number beyond f64, and a `type` that is an object.
        let cases = [
            ("\n{\"\":1e1111}", codes::INVALID_JSON),
            (
                "{\t\t  \"type\":\t\t\t\n\n{}\n\n\n\t\t}",
                codes::VALIDATION_FAILED,
            ),
        ];
        for (input, code) in cases {
            let refusal = parse(input).unwrap_err();
            assert_eq!(refusal.code, code, "{input:?}");
            let raw: Box<RawValue> = serde_json::from_str(input).unwrap();
            let frame = event_frame("device_updated", Some(1), &raw, 0, Some("c"));
            serde_json::from_str::<Box<RawValue>>(&frame).expect("valid JSON");
        }
    }

    #[test]
    fn spec_messages_parse() {
        let m = parse(r#"{"type":"order_placed","deviceId":"pc1","orders":[{"name":"كولا","price":1000,"quantity":2,"notes":"بارد","firstOrderTime":"2026-02-03T02:25:33+03:00","lastOrderTime":"2026-02-03T02:25:33+03:00"}],"timestamp":"2026-02-03T02:25:33+03:00"}"#).unwrap();
        let ClientMessage::Change(Change::OrderPlaced { orders, .. }) = m else {
            panic!()
        };
        assert_eq!(orders[0].first_order_time, "2026-02-03T02:25:33+03:00");
        assert_eq!(orders[0].price, Number::from(1000));
    }

    #[test]
    fn dart_numbers() {
        let m = parse(r#"{"type":"order_placed","deviceId":"pc1","orders":[{"name":"x","price":1000.0,"quantity":3.0},{"name":"y","price":12.5,"quantity":1}]}"#).unwrap();
        let ClientMessage::Change(Change::OrderPlaced { orders, .. }) = m else {
            panic!()
        };
        assert_eq!(orders[0].quantity, 3);
        assert_eq!(serde_json::to_string(&orders[0].price).unwrap(), "1000.0");
        assert_eq!(serde_json::to_string(&orders[1].price).unwrap(), "12.5");
    }

    #[test]
    fn refusals() {
        let code = |t: &str| parse(t).unwrap_err().code;
        assert_eq!(code("{"), codes::INVALID_JSON);
        assert_eq!(code(r#"{"type":"dance"}"#), codes::UNKNOWN_TYPE);
        assert_eq!(
            code(r#"{"type":"device_update","deviceId":"pc1"}"#),
            codes::VALIDATION_FAILED
        );
        assert_eq!(
            code(
                r#"{"type":"order_placed","deviceId":"pc1","orders":[{"name":"x","price":-1,"quantity":1}]}"#
            ),
            codes::VALIDATION_FAILED
        );
        assert_eq!(
            code(
                r#"{"type":"order_placed","deviceId":"pc1","orders":[{"name":"x","price":1.5,"quantity":1.5}]}"#
            ),
            codes::VALIDATION_FAILED
        );
        assert_eq!(
            code(r#"{"type":"order_deleted","deviceId":"pc1","orderIndex":-1}"#),
            codes::VALIDATION_FAILED
        );
        assert_eq!(
            code(r#"{"type":"device_update","deviceId":"pc1","data":{"mode":"duo"}}"#),
            codes::VALIDATION_FAILED
        );
    }
}
