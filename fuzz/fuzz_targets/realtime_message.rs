//! Any text a dashboard may send to /ws/realtime: parsing never panics, and
//! an error frame built from its refusal is valid JSON.
#![no_main]

use herald::core::wire::realtime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match realtime::parse_client_message(text) {
        Ok(_) => {}
        Err(err) => {
            let frame = realtime::error_frame(err.code, &err.message);
            serde_json::from_str::<serde_json::Value>(&frame).expect("error frames are JSON");
        }
    }
});
