//! The `/ws/realtime` protocol: one envelope for every server message, and
//! the few messages a dashboard may send.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::format_ms;

/// Server-to-client messages that are not events of the stream.
pub const CONNECTED: &str = "CONNECTED";
pub const REPLAY_COMPLETE: &str = "REPLAY_COMPLETE";
pub const PONG: &str = "PONG";
pub const ERROR: &str = "ERROR";
pub const TOKEN_REFRESHED: &str = "TOKEN_REFRESHED";

/// Types a publisher may not use: they would be mistaken for control messages.
pub const RESERVED_TYPES: [&str; 5] = [CONNECTED, REPLAY_COMPLETE, PONG, ERROR, TOKEN_REFRESHED];

/// An event type is transient (live only, `seq: null`) when it ends in `_PROGRESS`.
pub fn is_transient(event_type: &str) -> bool {
    event_type.ends_with("_PROGRESS")
}

#[derive(Serialize)]
struct Envelope<'a, P: Serialize + ?Sized> {
    #[serde(rename = "type")]
    kind: &'a str,
    seq: Option<u64>,
    payload: &'a P,
    timestamp: String,
    #[serde(rename = "originDeviceId")]
    origin_device_id: Option<&'a str>,
    /// The `Idempotency-Key` of the write that caused the event.
    #[serde(rename = "mutationId", skip_serializing_if = "Option::is_none")]
    mutation_id: Option<&'a str>,
}

fn frame<P: Serialize + ?Sized>(
    kind: &str,
    seq: Option<u64>,
    payload: &P,
    at_ms: i64,
    origin: Option<&str>,
    mutation_id: Option<&str>,
) -> ByteString {
    let envelope = Envelope {
        kind,
        seq,
        payload,
        timestamp: format_ms(at_ms),
        origin_device_id: origin,
        mutation_id,
    };
    serde_json::to_string(&envelope)
        .expect("an envelope of JSON values always serializes")
        .into()
}

/// The wire bytes of one stream event (built once, shared by every recipient).
pub fn event_frame(
    kind: &str,
    seq: Option<u64>,
    payload: &RawValue,
    at_ms: i64,
    origin: Option<&str>,
    mutation_id: Option<&str>,
) -> ByteString {
    frame(kind, seq, payload, at_ms, origin, mutation_id)
}

/// A control message (`CONNECTED`, `PONG`, ...): `seq` and origin are null.
pub fn control_frame<P: Serialize + ?Sized>(kind: &str, payload: &P) -> ByteString {
    frame(kind, None, payload, super::now_ms(), None, None)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connected<'a> {
    pub user_id: &'a str,
    pub connection_id: &'a str,
    pub epoch: &'a str,
    pub last_seq: u64,
    pub heartbeat_sec: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<&'a str>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplayComplete {
    pub replayed: u64,
    pub recovered: bool,
    pub last_seq: u64,
}

#[derive(Serialize)]
pub struct ErrorPayload<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

pub fn error_frame(code: &str, message: &str) -> ByteString {
    control_frame(ERROR, &ErrorPayload { code, message })
}

/// What a dashboard may send.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage {
    Ping,
    RefreshToken(String),
}

/// Why a client message was refused: a code for the `ERROR` payload and a
/// message that says what to send instead.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientError {
    pub code: &'static str,
    pub message: String,
}

impl ClientError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        ClientError {
            code,
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    token: Option<serde_json::Value>,
}

pub fn parse_client_message(text: &str) -> Result<ClientMessage, ClientError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ClientError::new("INVALID_JSON", format!("not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ClientError::new(
            "VALIDATION_FAILED",
            "a message must be a JSON object with a `type`",
        ));
    }
    let typed: Typed = serde_json::from_str(text)
        .map_err(|_| ClientError::new("VALIDATION_FAILED", "`type` must be a string"))?;
    match typed.kind.as_deref() {
        None => Err(ClientError::new("VALIDATION_FAILED", "missing `type`")),
        Some("PING") => Ok(ClientMessage::Ping),
        Some("REFRESH_TOKEN") => match typed.token {
            Some(serde_json::Value::String(t)) if !t.is_empty() => {
                Ok(ClientMessage::RefreshToken(t))
            }
            _ => Err(ClientError::new(
                "VALIDATION_FAILED",
                "REFRESH_TOKEN needs a non-empty string `token`",
            )),
        },
        Some(other) => Err(ClientError::new(
            "UNKNOWN_TYPE",
            format!("unknown message type `{other}`; send PING or REFRESH_TOKEN"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let payload = RawValue::from_string(r#"{"a":"كولا"}"#.into()).unwrap();
        let f = event_frame("X_CREATED", Some(3), &payload, 0, Some("tab-1"), None);
        assert_eq!(
            &*f,
            r#"{"type":"X_CREATED","seq":3,"payload":{"a":"كولا"},"timestamp":"1970-01-01T00:00:00.000Z","originDeviceId":"tab-1"}"#
        );
    }

    #[test]
    fn client_messages() {
        assert_eq!(
            parse_client_message(r#"{"type":"PING"}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse_client_message(r#"{"type":"REFRESH_TOKEN","token":"x"}"#),
            Ok(ClientMessage::RefreshToken("x".into()))
        );
        assert_eq!(parse_client_message("{").unwrap_err().code, "INVALID_JSON");
        assert_eq!(
            parse_client_message("[]").unwrap_err().code,
            "VALIDATION_FAILED"
        );
        assert_eq!(
            parse_client_message(r#"{"type":5}"#).unwrap_err().code,
            "VALIDATION_FAILED"
        );
        assert_eq!(
            parse_client_message(r#"{}"#).unwrap_err().code,
            "VALIDATION_FAILED"
        );
        assert_eq!(
            parse_client_message(r#"{"type":"REFRESH_TOKEN"}"#)
                .unwrap_err()
                .code,
            "VALIDATION_FAILED"
        );
        assert_eq!(
            parse_client_message(r#"{"type":"NOPE"}"#).unwrap_err().code,
            "UNKNOWN_TYPE"
        );
    }

    #[test]
    fn transient_types() {
        assert!(is_transient("JOB_PROGRESS"));
        assert!(!is_transient("JOB_STARTED"));
    }
}
