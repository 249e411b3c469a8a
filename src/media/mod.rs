//! ffmpeg at the edge: probing the host's file, demuxing and decoding over the chunk store,
//! and generating the sample clip.

pub mod audio_queue;
pub mod avio;
pub mod decode;
pub mod encode;
pub mod probe;
pub mod sample;
pub mod store_source;
pub mod transcode;

use std::sync::Once;

/// Initialises ffmpeg once and keeps its logging quiet (it would write onto the terminal).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    });
}

#[cfg(test)]
mod decode_tests;
