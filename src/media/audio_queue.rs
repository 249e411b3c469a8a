//! Decoded audio on its way from the decoder to the sound output: stereo f32 at the device's
//! rate, bounded (audio never holds up video). The decoder fills it (media/decode.rs); the
//! output callback plays it (player/audio.rs).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Output channels the queue holds (interleaved).
pub const CHANNELS: usize = 2;
/// Most audio held ahead (beyond it, the oldest is dropped: audio never holds up video).
pub(crate) const MAX_QUEUED_US: i64 = 3_000_000;

/// Decoded samples from `pts_us` on.
#[derive(Debug, Clone)]
pub struct AudioChunk {
    /// Time of the first sample.
    pub pts_us: i64,
    /// Interleaved stereo.
    pub samples: Vec<f32>,
}

/// Audio between the decoder and the output callback.
pub struct AudioQueue {
    inner: Mutex<VecDeque<AudioChunk>>,
    /// Frames (stereo samples) per second.
    pub rate: u32,
}

impl AudioQueue {
    /// An empty queue at `rate` Hz.
    pub fn new(rate: u32) -> Arc<AudioQueue> {
        Arc::new(AudioQueue { inner: Mutex::new(VecDeque::new()), rate: rate.max(1) })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<AudioChunk>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn duration_us(&self, c: &AudioChunk) -> i64 {
        (c.samples.len() / CHANNELS) as i64 * 1_000_000 / self.rate as i64
    }

    /// Adds decoded audio; drops the oldest beyond the bound (never blocks the decoder).
    pub fn push(&self, chunk: AudioChunk) {
        let mut q = self.lock();
        q.push_back(chunk);
        while q.len() > 1 {
            let (first, last) = (q.front().expect("non-empty").pts_us, q.back().expect("non-empty").pts_us);
            if last - first <= MAX_QUEUED_US {
                break;
            }
            q.pop_front();
        }
    }

    /// Drops everything (a seek).
    pub fn clear(&self) {
        self.lock().clear();
    }
}
