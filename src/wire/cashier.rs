//! The `/ws` cashier-terminal protocol (byte-compatible with the cashier
//! team's spec: flat messages with a lowercase `type`).

use bytestring::ByteString;
use serde_json::value::RawValue;

use super::format_ms;

/// A venue broadcast: the payload's fields, then `type`, `timestamp`, `seq`
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_frame() {
        let payload =
            RawValue::from_string(r#"{"deviceId":"pc1","data":{"notes":"بارد"}}"#.into()).unwrap();
        let f = event_frame("device_updated", Some(7), &payload, 0, Some("c-1"));
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["type"], "device_updated");
        assert_eq!(v["deviceId"], "pc1");
        assert_eq!(v["data"]["notes"], "بارد");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["clientId"], "c-1");
        let empty = RawValue::from_string("{}".into()).unwrap();
        let f = event_frame("prices_updated", Some(1), &empty, 0, None);
        assert!(serde_json::from_str::<serde_json::Value>(&f).is_ok());
    }
}
