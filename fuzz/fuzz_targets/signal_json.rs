//! Signaling JSON, as the server reads clients and clients read the server.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncy::protocol::signal;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = signal::decode_client(text, signal::DEFAULT_MAX_MESSAGE);
        let _ = signal::decode_server(text, signal::DEFAULT_MAX_MESSAGE);
    }
});
