//! Any text a cashier terminal may send to /ws: parsing never panics; a
//! refusal makes a JSON error frame; and any JSON object, used as a broadcast
//! payload, makes a flat broadcast frame that is still valid JSON.
#![no_main]

use herald::core::wire::cashier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match cashier::parse(text) {
        Ok(cashier::ClientMessage::Change(cashier::Change::DeviceUpdate { data, .. })) => {
            let _ = data.to_json();
        }
        Ok(cashier::ClientMessage::Change(cashier::Change::OrderUpdated { data, .. })) => {
            let _ = data.to_json();
        }
        Ok(_) => {}
        Err(refusal) => {
            let frame = cashier::error_frame(refusal.code, &refusal.message);
            serde_json::from_str::<serde_json::Value>(&frame).expect("error frames are JSON");
        }
    }
    if let Ok(raw) = serde_json::from_str::<Box<serde_json::value::RawValue>>(text) {
        if raw.get().trim_start().starts_with('{') {
            let frame = cashier::event_frame("device_updated", Some(1), &raw, 0, Some("fuzz"));
            // Valid JSON syntax (RawValue, not Value: serde_json's Value
            // refuses numbers beyond f64, such as 1e1111, which JSON allows).
            serde_json::from_str::<Box<serde_json::value::RawValue>>(&frame)
                .expect("broadcast frames are JSON");
            assert!(frame.starts_with(r#"{"type":"device_updated""#));
        }
    }
});
