//! Reading what a terminal (or a cashier REST call) sends: every field
//! checked, and a refusal that names the field and what to fix. Numbers
//! are taken as a Dart client writes them (`1000.0` is a whole 1000).

use serde_json::{Map, Number, Value};

use super::{codes, Change, ClientMessage, DeviceFields, Order, OrderPatch};
use crate::core::wire::{self, format_ms, now_ms};

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
                if wire::parse_time_ms(&t).is_some()
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
        notes: f.opt_string("notes", usize::MAX)?,
    })
}

/// A new order; `now` fills missing times.
pub fn new_order(f: &Fields, now: &str) -> Result<Order, Refusal> {
    let name = f.string("name", usize::MAX)?;
    if name.trim().is_empty() {
        return Err(invalid("`name` must not be empty"));
    }
    let first = f.opt_time("firstOrderTime")?;
    let last = f.opt_time("lastOrderTime")?;
    Ok(Order {
        name,
        price: f.price("price")?,
        quantity: f.count("quantity", MAX_QUANTITY)?,
        notes: f.opt_string("notes", usize::MAX)?.unwrap_or_default(),
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
    let name = f.opt_string("name", usize::MAX)?;
    if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(invalid("`name` must not be empty"));
    }
    let patch = OrderPatch {
        name,
        price: f.opt_price("price")?,
        quantity: f.opt_count("quantity", MAX_QUANTITY)?,
        notes: f.opt_string("notes", usize::MAX)?,
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
    use crate::core::wire::cashier::{codes, event_frame, Change, ClientMessage};
    use serde_json::value::RawValue;

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
