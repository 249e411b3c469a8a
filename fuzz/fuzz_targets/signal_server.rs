//! The signaling server as four strangers see it: any frames, in any order, from several
//! connections into one set of rooms, through the code a socket's frames go through
//! (`syncy::server::fuzzing`). Never a panic; no outbox holds more than its budget; no room
//! outlives the connections.
//!
//! `SYNCY_FUZZ_SEEDS=DIR` writes the seed inputs (real messages, a signed `Create` among them)
//! into DIR first: `SYNCY_FUZZ_SEEDS=corpus/signal_server cargo fuzz run signal_server -O -- -runs=0`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncy::server::fuzzing::{Harness, seeds};

/// Writes the seeds where `SYNCY_FUZZ_SEEDS` says, if it says.
fn write_seeds() {
    let Some(dir) = std::env::var_os("SYNCY_FUZZ_SEEDS") else { return };
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).expect("the seed directory");
    for (i, seed) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed).expect("a seed file");
    }
}

fuzz_target!(init: write_seeds(), |data: &[u8]| {
    Harness::run(data);
});
