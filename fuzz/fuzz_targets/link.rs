//! Room links as a user pastes them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncy::protocol::link::Link;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(link) = Link::parse(text)
    {
        // A link that parses prints back to one that parses the same.
        assert_eq!(Link::parse(&link.to_string()).ok(), Some(link));
    }
});
