//! Built-in sound: decoded audio (resampled to the device's rate, stereo f32) waits in an
//! [`AudioQueue`]; the output callback plays whatever belongs at the room clock's position
//! ([`AudioClock`]), skipping or padding with silence when it is off by more than a few
//! milliseconds. With no output device, there is a log line and the picture only.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::core::api::SoundStats;
pub use crate::media::audio_queue::{AudioChunk, AudioQueue, CHANNELS};

/// Drift tolerated before the output jumps to the clock.
const RESYNC_US: i64 = 40_000;
/// The playback clock as the output callback sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockPoint {
    /// Sound plays (the room plays and the picture is not stalled).
    pub playing: bool,
    /// Media position at `at`.
    pub position_us: i64,
    /// When.
    pub at: Instant,
    /// Rate.
    pub rate: f64,
}

impl ClockPoint {
    /// Position at `t`.
    pub fn position_at(&self, t: Instant) -> i64 {
        if !self.playing {
            return self.position_us;
        }
        let dt = t.saturating_duration_since(self.at).as_secs_f64() * 1e6;
        self.position_us + (dt * self.rate) as i64
    }
}

/// Shared clock the engine updates every tick.
pub struct AudioClock(Mutex<ClockPoint>);

impl AudioClock {
    /// Paused at 0.
    pub fn new() -> Arc<AudioClock> {
        Arc::new(AudioClock(Mutex::new(ClockPoint { playing: false, position_us: 0, at: Instant::now(), rate: 1.0 })))
    }

    /// Sets the clock.
    pub fn set(&self, p: ClockPoint) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// Reads it.
    pub fn get(&self) -> ClockPoint {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the output has played, in device frames.
#[derive(Debug)]
pub struct SoundMeter {
    /// Frames filled with decoded sound.
    pub sound_frames: AtomicU64,
    /// Frames of silence (paused, stalled, gaps).
    pub silent_frames: AtomicU64,
    /// Device rate.
    pub rate: AtomicU64,
    /// Media time (µs) just after the last sound played, -1 while paused.
    pub cursor_us: AtomicI64,
}

impl Default for SoundMeter {
    fn default() -> Self {
        SoundMeter { sound_frames: AtomicU64::new(0), silent_frames: AtomicU64::new(0), rate: AtomicU64::new(0), cursor_us: AtomicI64::new(-1) }
    }
}

impl SoundMeter {
    /// The totals so far.
    pub fn stats(&self) -> SoundStats {
        let rate = self.rate.load(Ordering::Relaxed).max(1);
        SoundStats {
            sound_ms: self.sound_frames.load(Ordering::Relaxed) * 1000 / rate,
            silent_ms: self.silent_frames.load(Ordering::Relaxed) * 1000 / rate,
            position_ms: u64::try_from(self.cursor_us.load(Ordering::Relaxed)).ok().map(|us| us / 1000),
        }
    }
}

/// The output side's cursor: the media time of the next sample it will play.
#[derive(Debug, Default)]
pub struct Cursor {
    next_us: Option<i64>,
}

/// Fills `out` (interleaved, `channels` per frame) with the audio belonging at `target_us`
/// onwards; silence where there is none or the clock is paused. Returns the frames of sound.
pub fn fill(queue: &AudioQueue, cursor: &mut Cursor, playing: bool, target_us: i64, out: &mut [f32], channels: usize) -> usize {
    out.fill(0.0);
    let channels = channels.max(1);
    if !playing {
        cursor.next_us = None;
        return 0;
    }
    let mut sound = 0;
    let frame_us = 1_000_000.0 / queue.rate as f64;
    // Off by more than the tolerance: jump to the clock.
    let mut next = match cursor.next_us {
        Some(n) if (n - target_us).abs() <= RESYNC_US => n,
        _ => target_us,
    };
    let frames = out.len() / channels;
    let mut q = queue.lock();
    // Sound the clock has left behind is gone for good; what is at or after it stays until
    // the clock passes (a device that asks twice for the same moment gets the same sound).
    while let Some(front) = q.front() {
        if front.pts_us + queue.duration_us(front) > target_us - RESYNC_US {
            break;
        }
        q.pop_front();
    }
    let mut written = 0;
    let mut i = 0;
    while written < frames && i < q.len() {
        let chunk = &q[i];
        let dur = queue.duration_us(chunk);
        if chunk.pts_us + dur <= next {
            i += 1;
            continue;
        }
        if chunk.pts_us > next {
            // A gap (or audio ahead of the clock): silence until it starts.
            let gap = ((chunk.pts_us - next) as f64 / frame_us).ceil() as usize;
            let n = gap.min(frames - written);
            written += n;
            next += (n as f64 * frame_us) as i64;
            continue;
        }
        let len = chunk.samples.len() / CHANNELS;
        let offset = (((next - chunk.pts_us) as f64 / frame_us) as usize).min(len);
        let n = (len - offset).min(frames - written);
        for k in 0..n {
            let src = &chunk.samples[(offset + k) * CHANNELS..(offset + k + 1) * CHANNELS];
            let dst = &mut out[(written + k) * channels..(written + k + 1) * channels];
            for (c, d) in dst.iter_mut().enumerate() {
                *d = src[c.min(CHANNELS - 1)];
            }
        }
        written += n;
        sound += n;
        next += (n as f64 * frame_us).round() as i64;
        if n == len - offset {
            i += 1;
        }
    }
    cursor.next_us = Some(next);
    sound
}

/// A running output stream.
pub struct AudioOut {
    _stream: cpal::Stream,
}

/// Opens the default output device, or says why not (no device is normal on servers).
pub fn open(queue_rate: impl FnOnce(u32) -> Arc<AudioQueue>, clock: Arc<AudioClock>, meter: Arc<SoundMeter>) -> Result<(AudioOut, Arc<AudioQueue>), String> {
    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    let host = cpal::default_host();
    let device = host.default_output_device().ok_or("no audio output device")?;
    let config = device.default_output_config().map_err(|e| format!("audio device: {e}"))?;
    if config.sample_format() != cpal::SampleFormat::F32 {
        return Err(format!("audio device wants {:?} samples; only f32 output is supported", config.sample_format()));
    }
    let rate = config.sample_rate();
    let channels = config.channels() as usize;
    let queue = queue_rate(rate);
    let q = queue.clone();
    let mut cursor = Cursor::default();
    meter.rate.store(rate as u64, Ordering::Relaxed);
    // Sound leaves the speaker a little after the callback: aim at that moment.
    let latency = Duration::from_millis(20);
    let stream = device
        .build_output_stream(
            config.into(),
            move |out: &mut [f32], _| {
                let c = clock.get();
                let target = c.position_at(Instant::now() + latency);
                let sound = fill(&q, &mut cursor, c.playing, target, out, channels);
                let frames = out.len() / channels.max(1);
                meter.sound_frames.fetch_add(sound as u64, Ordering::Relaxed);
                meter.silent_frames.fetch_add((frames - sound) as u64, Ordering::Relaxed);
                if !c.playing {
                    meter.cursor_us.store(-1, Ordering::Relaxed);
                } else if sound > 0 {
                    meter.cursor_us.store(cursor.next_us.unwrap_or(-1), Ordering::Relaxed);
                }
            },
            |e| tracing::warn!("audio output: {e}"),
            None,
        )
        .map_err(|e| format!("audio output: {e}"))?;
    stream.play().map_err(|e| format!("audio output: {e}"))?;
    Ok((AudioOut { _stream: stream }, queue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::audio_queue::MAX_QUEUED_US;

    /// A queue at 1000 Hz whose sample values are their own time in ms.
    fn ramp(from_ms: i64, to_ms: i64) -> Arc<AudioQueue> {
        let q = AudioQueue::new(1000);
        for start in (from_ms..to_ms).step_by(100) {
            let samples = (start..start + 100).flat_map(|t| [t as f32, t as f32]).collect();
            q.push(AudioChunk { pts_us: start * 1000, samples });
        }
        q
    }

    #[test]
    fn plays_the_samples_at_the_clock_position() {
        let q = ramp(0, 2000);
        let mut c = Cursor::default();
        let mut out = vec![0.0; 2 * 50];
        fill(&q, &mut c, true, 500_000, &mut out, 2);
        assert_eq!(out[0], 500.0);
        assert_eq!(out[98], 549.0);
        // Continues seamlessly while the clock agrees (within the tolerance).
        fill(&q, &mut c, true, 560_000, &mut out, 2);
        assert_eq!(out[0], 550.0);
    }

    #[test]
    fn resyncs_when_the_clock_jumps_and_is_silent_when_paused() {
        let q = ramp(0, 2000);
        let mut c = Cursor::default();
        let mut out = vec![0.0; 2 * 10];
        fill(&q, &mut c, true, 100_000, &mut out, 2);
        fill(&q, &mut c, true, 1_200_000, &mut out, 2);
        assert_eq!(out[0], 1200.0, "jumped to the clock");
        fill(&q, &mut c, false, 1_300_000, &mut out, 2);
        assert!(out.iter().all(|s| *s == 0.0));
    }

    #[test]
    fn silence_before_audio_starts_and_mono_devices_get_the_left_channel() {
        let q = ramp(1000, 1200);
        let mut c = Cursor::default();
        let mut out = vec![9.0; 20];
        fill(&q, &mut c, true, 990_000, &mut out, 1);
        assert!(out[..10].iter().all(|s| *s == 0.0), "{out:?}");
        assert_eq!(out[10], 1000.0);
    }

    #[test]
    fn the_queue_is_bounded() {
        let q = AudioQueue::new(1000);
        for s in 0..100 {
            q.push(AudioChunk { pts_us: s * 100_000, samples: vec![0.0; 200] });
        }
        let held = q.lock();
        assert!(held.back().unwrap().pts_us - held.front().unwrap().pts_us <= MAX_QUEUED_US);
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    #[test]
    fn asking_twice_for_the_same_moment_gets_the_same_sound() {
        let q = AudioQueue::new(1000);
        q.push(AudioChunk { pts_us: 0, samples: (0..2000).map(|i| (i / 2) as f32).collect() });
        let mut c = Cursor::default();
        let mut a = vec![0.0; 20];
        let mut b = vec![0.0; 20];
        fill(&q, &mut c, true, 300_000, &mut a, 2);
        let mut c2 = Cursor::default();
        fill(&q, &mut c2, true, 300_000, &mut b, 2);
        assert_eq!(a, b);
        assert_eq!(a[0], 300.0);
    }
}
