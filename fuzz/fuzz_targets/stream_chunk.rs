//! The zero-copy chunk path a participant runs on every chunk-channel message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncy::protocol::stream;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(parts)) = stream::decode_chunk(bytes::BytesMut::from(data), 65536) {
        assert!(parts.data.len() <= 65536);
        let _ = parts.check_len(Some(65536));
        let _ = parts.check_len(None);
    }
});
