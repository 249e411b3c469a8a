//! Every data-channel message a peer can send, decoded as the host, a participant and a relay neighbour would:
//! never a panic, never an allocation beyond the message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncy::protocol::stream::{self, Manifest, Role};

fuzz_target!(|data: &[u8]| {
    let m = Manifest {
        name: "clip.mp4".into(),
        size: 10 * 65536 + 100,
        chunk_size: 65536,
        chunks: 11,
        duration_ms: Some(5000),
        container: "mov,mp4".into(),
        codecs: vec!["h264".into()],
        levels: vec!["high".into(), "low".into()],
        stream: [0; 16],
    };
    let _ = stream::decode_from(data, Role::Host, Some(&m));
    let _ = stream::decode_from(data, Role::Participant, Some(&m));
    let _ = stream::decode_from(data, Role::Host, None);
    let _ = stream::decode_from(data, Role::Relay, Some(&m));
    if let Ok(msg) = stream::decode_from(data, Role::Participant, Some(&m)) {
        // What decodes, encodes back to a message that decodes the same.
        let again = stream::encode(&msg);
        assert_eq!(stream::decode_from(&again, Role::Participant, Some(&m)).ok(), Some(msg));
    }
});
