//! The decoder thread: demuxes a byte source through [`SourceInput`], decodes the video stream
//! and hands frames (scaled to RGB for the renderer, or bare timestamps for `--render none`)
//! to a bounded [`FrameQueue`]. Seeks use the demuxer's own seek, so only what the new
//! position needs is read.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{Packet, codec, frame, media};

use super::avio::{ByteSource, SourceInput};
use crate::media::audio_queue::{AudioChunk, AudioQueue, CHANNELS};

/// One decoded picture.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// Presentation time from the start of the media, µs.
    pub pts_us: i64,
    /// Width of `rgb` in pixels (0 when not scaled).
    pub width: u32,
    /// Height of `rgb` in pixels.
    pub height: u32,
    /// Packed RGB24, `width * height * 3` bytes (empty when not scaled).
    pub rgb: Vec<u8>,
}

/// What the decoder learnt about the video when it opened it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    /// Coded width.
    pub width: u32,
    /// Coded height.
    pub height: u32,
    /// Duration of one frame, µs.
    pub frame_us: i64,
}

#[derive(Default)]
struct QueueState {
    frames: VecDeque<VideoFrame>,
    /// Bumped by every seek: frames of an older generation are stale.
    generation: u64,
    pending_seek: Option<i64>,
    target: Option<(u32, u32)>,
    /// A view will draw: until it says its size, frames are scaled to fit `PROVISIONAL`
    /// (a frame shown while paused is not decoded again when the size comes).
    provisional: bool,
    eof: bool,
    closed: bool,
    error: Option<String>,
    info: Option<VideoInfo>,
}

/// Frames between the decoder thread and the presenter, plus the controls going back.
pub struct FrameQueue {
    state: Mutex<QueueState>,
    changed: Condvar,
    capacity: usize,
    /// Where decoded sound goes, if anything plays it.
    audio: Option<Arc<AudioQueue>>,
    /// A rendition's first video frame is at this room position (µs). `None`: the original,
    /// counted from its video stream's start.
    shift: Option<i64>,
    /// Told when the presenter has news: a frame, the end, an error, the stream's facts.
    waker: std::sync::OnceLock<Arc<dyn Fn() + Send + Sync>>,
}

impl FrameQueue {
    /// `wake` is called whenever the presenter has something new to look at (once per queue).
    pub fn set_waker(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        let _ = self.waker.set(wake);
    }

    fn wake(&self) {
        if let Some(w) = self.waker.get() {
            w();
        }
    }

    /// A queue of at most `capacity` frames; `target` is the RGB size to scale to.
    pub fn new(capacity: usize, target: Option<(u32, u32)>) -> Arc<FrameQueue> {
        FrameQueue::with_audio(capacity, target, None)
    }

    /// Like `new`, also decoding sound into `audio`.
    pub fn with_audio(capacity: usize, target: Option<(u32, u32)>, audio: Option<Arc<AudioQueue>>) -> Arc<FrameQueue> {
        FrameQueue::with_shift(capacity, target, audio, None)
    }

    /// Like `with_audio`, for a rendition whose first video frame is at room position `shift`
    /// (µs).
    pub fn with_shift(capacity: usize, target: Option<(u32, u32)>, audio: Option<Arc<AudioQueue>>, shift: Option<i64>) -> Arc<FrameQueue> {
        Arc::new(FrameQueue {
            state: Mutex::new(QueueState { target, ..QueueState::default() }),
            changed: Condvar::new(),
            capacity: capacity.max(1),
            audio,
            shift,
            waker: std::sync::OnceLock::new(),
        })
    }

    /// Where decoded sound goes.
    pub fn audio(&self) -> Option<Arc<AudioQueue>> {
        self.audio.clone()
    }

    /// The size frames are scaled to.
    pub fn target(&self) -> Option<(u32, u32)> {
        self.lock().target
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the decoder to reposition; drops every queued frame.
    pub fn seek(&self, to_us: i64) {
        let mut s = self.lock();
        s.frames.clear();
        s.generation += 1;
        s.pending_seek = Some(to_us.max(0));
        s.eof = false;
        if let Some(a) = &self.audio {
            a.clear();
        }
        self.changed.notify_all();
    }

    /// Like `seek`, for a decoder that has not started yet: the sound queue (shared with a
    /// decoder still playing) is left alone.
    pub fn start_at(&self, to_us: i64) {
        let mut s = self.lock();
        s.generation += 1;
        s.pending_seek = Some(to_us.max(0));
        self.changed.notify_all();
    }

    /// A view will draw these frames: until it sets a target, they are scaled to fit
    /// `PROVISIONAL` rather than left without pixels.
    pub fn want_pictures(&self) {
        self.lock().provisional = true;
    }

    /// Whether `want_pictures` was called.
    pub fn wants_pictures(&self) -> bool {
        self.lock().provisional
    }

    /// Changes the size frames are scaled to (from now on).
    pub fn set_target(&self, target: Option<(u32, u32)>) {
        self.lock().target = target;
    }

    /// The oldest frame, if its time is at or before `until_us`.
    pub fn pop_until(&self, until_us: i64) -> Option<VideoFrame> {
        let mut s = self.lock();
        if s.frames.front().is_some_and(|f| f.pts_us <= until_us) {
            let f = s.frames.pop_front();
            self.changed.notify_all();
            return f;
        }
        None
    }

    /// What the queue holds, for the presenter.
    pub fn view(&self) -> crate::core::participant::QueueView {
        let s = self.lock();
        crate::core::participant::QueueView {
            queued: s.frames.iter().map(|f| f.pts_us).collect(),
            eof: s.eof && s.pending_seek.is_none(),
            seek_pending: s.pending_seek.is_some(),
            error: s.error.clone(),
        }
    }

    /// Takes `n` frames off the front; returns the last of them.
    pub fn pop_n(&self, n: usize) -> Option<VideoFrame> {
        let mut s = self.lock();
        let n = n.min(s.frames.len());
        let last = s.frames.drain(..n).next_back();
        self.changed.notify_all();
        last
    }

    /// The time of the oldest waiting frame.
    pub fn front_pts(&self) -> Option<i64> {
        self.lock().frames.front().map(|f| f.pts_us)
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the decoder reached the end (and no seek is pending).
    pub fn eof(&self) -> bool {
        let s = self.lock();
        s.eof && s.pending_seek.is_none()
    }

    /// A seek is asked for and not yet started by the decoder.
    pub fn seek_pending(&self) -> bool {
        self.lock().pending_seek.is_some()
    }

    /// The decoder's fatal error, if it stopped.
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// Stream facts, once the decoder opened the input.
    pub fn info(&self) -> Option<VideoInfo> {
        self.lock().info
    }

    /// Stops the decoder thread.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Decoder side: waits for room; returns false if the frame is stale (seek) or closing.
    fn push(&self, frame: VideoFrame, generation: u64) -> bool {
        let mut s = self.lock();
        loop {
            if s.closed || s.generation != generation || s.pending_seek.is_some() {
                return false;
            }
            if s.frames.len() < self.capacity {
                s.frames.push_back(frame);
                drop(s);
                self.wake();
                return true;
            }
            s = self.changed.wait_timeout(s, Duration::from_millis(200)).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// Why decoding stopped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The input could not be opened.
    #[error(transparent)]
    Open(#[from] super::avio::AvioError),
    /// No video stream.
    #[error("the file has no video stream")]
    NoVideo,
    /// ffmpeg failed.
    #[error("decoding failed: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
}

/// A scaler with the frame size it was made for and its output (format, width, height).
type Scaler = (scaling::Context, (u32, u32), (Pixel, u32, u32));

/// Starts the decoder thread for `source`, feeding `queue` until it is closed.
pub fn spawn(source: Box<dyn ByteSource>, queue: Arc<FrameQueue>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("syncy-decode".into())
        .spawn(move || {
            if let Err(e) = decode_loop(source, &queue) {
                let closing = queue.lock().closed;
                if !closing {
                    tracing::error!("decoder stopped: {e}");
                    queue.lock().error = Some(e.to_string());
                }
            }
            queue.changed.notify_all();
            queue.wake();
        })
        .expect("spawning a thread")
}

fn decode_loop(source: Box<dyn ByteSource>, queue: &FrameQueue) -> Result<(), DecodeError> {
    let mut input = SourceInput::open(source)?;
    let (v, mut decoder) = Video::open(&input, queue.shift)?;
    queue.lock().info = Some(VideoInfo { width: decoder.width(), height: decoder.height(), frame_us: v.frame_us });
    queue.wake();
    let mut sound = match &queue.audio {
        Some(q) => Sound::open(&input, q.clone(), queue.shift.map(|s| s - v.video_start_us)),
        None => None,
    };
    let mut scaler: Option<Scaler> = None;
    let mut generation = queue.lock().generation;
    let mut skip_before: Option<i64> = None;
    // When the latest seek began, until its first frame is out (for the debug log).
    let mut seek_started: Option<std::time::Instant> = None;
    let mut decoded = frame::Video::empty();
    loop {
        // Controls: close, seek.
        let (seek, target, provisional) = {
            let mut s = queue.lock();
            if s.closed {
                return Ok(());
            }
            let seek = s.pending_seek.take();
            if seek.is_some() {
                generation = s.generation;
            }
            (seek, s.target, s.provisional)
        };
        if let Some(t) = seek {
            seek_started = Some(std::time::Instant::now());
            skip_before = Some(seek_to(&mut input, &mut decoder, sound.as_mut(), &v, t));
        }
        // A fresh packet each time: av_read_frame does not release what a reused packet still
        // holds, so reusing one leaked every packet's buffer (~100 KB/s for a 0.5 Mb/s clip;
        // found by the soak benchmark, memory growing linearly while playing).
        let mut packet = Packet::empty();
        let at_end = match packet.read(&mut input) {
            Ok(()) => false,
            Err(ffmpeg_next::Error::Eof) => true,
            Err(ffmpeg_next::Error::Exit) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !at_end
            && let Some(s) = sound.as_mut()
            && packet.stream() == s.index
        {
            s.decode(&packet);
            continue;
        }
        if at_end {
            decoder.send_eof()?;
        } else if packet.stream() == v.index {
            // A corrupt packet is skipped, as players do.
            if let Err(e) = decoder.send_packet(&packet) {
                tracing::debug!("skipping a packet: {e}");
                continue;
            }
        } else {
            continue;
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            let Some(ts) = decoded.timestamp().or(decoded.pts()) else { continue };
            let pts_us = v.micros(ts);
            if skip_before.is_some_and(|s| pts_us < s) {
                continue;
            }
            skip_before = None;
            if let Some(t) = seek_started.take() {
                tracing::debug!("decoder: first frame after the seek at {} ms, {:?} after it", pts_us / 1000, t.elapsed());
            }
            let size = target.or_else(|| provisional.then(|| fit_box((decoded.width(), decoded.height()), PROVISIONAL)));
            let out = picture(&decoded, pts_us, size, &mut scaler)?;
            if !queue.push(out, generation) {
                break;
            }
        }
        if at_end {
            wait_at_end(queue);
        }
    }
}

/// The video stream a decoder shows.
#[derive(Clone, Copy)]
struct Video {
    index: usize,
    tb: ffmpeg_next::Rational,
    /// Its first timestamp.
    start: i64,
    /// Room position of its first frame (a rendition), 0 for the original.
    shift: i64,
    video_start_us: i64,
    frame_us: i64,
}

impl Video {
    /// The best video stream of `input` and a decoder for it. The original counts from its
    /// video's first timestamp; a rendition's first video frame is at room position `shift`
    /// (its muxer may have moved its timeline by the sound's priming, so its own zero means
    /// nothing).
    fn open(input: &SourceInput, shift: Option<i64>) -> Result<(Video, ffmpeg_next::decoder::Video), DecodeError> {
        let stream = input.streams().best(media::Type::Video).ok_or(DecodeError::NoVideo)?;
        let tb = stream.time_base();
        let start = if stream.start_time() == ffmpeg_next::ffi::AV_NOPTS_VALUE { 0 } else { stream.start_time() };
        let rate = stream.avg_frame_rate();
        let frame_us = if rate.numerator() > 0 && rate.denominator() > 0 { 1_000_000 * rate.denominator() as i64 / rate.numerator() as i64 } else { 40_000 };
        let decoder = codec::context::Context::from_parameters(stream.parameters())?.decoder().video()?;
        let v = Video { index: stream.index(), tb, start, shift: shift.unwrap_or(0), video_start_us: to_micros(start, tb), frame_us };
        Ok((v, decoder))
    }

    /// A timestamp of this stream as a room position, µs.
    fn micros(&self, ts: i64) -> i64 {
        to_micros(ts - self.start, self.tb) + self.shift
    }
}

/// Moves the input to the keyframe at or before `t` and flushes the decoders; returns the time
/// before which decoded frames are dropped. A failed seek is not fatal: decoding goes on from
/// where it is and drops frames until the target (a rendition without an index reads forward
/// to it).
fn seek_to(input: &mut SourceInput, decoder: &mut ffmpeg_next::decoder::Video, sound: Option<&mut Sound>, v: &Video, t: i64) -> i64 {
    let raw = t - v.shift + v.video_start_us;
    if let Err(e) = input.seek(raw, ..raw + 1) {
        tracing::debug!("decoder: seek to {} ms failed ({e}); reading on to it", t / 1000);
    }
    decoder.flush();
    if let Some(s) = sound {
        s.decoder.flush();
        s.skip_before = Some(t);
    }
    t - v.frame_us / 2
}

/// The box frames fit before a view sets its size (`want_pictures`).
pub const PROVISIONAL: (u32, u32) = (960, 540);

/// A decoded frame as the view wants it: scaled to `target` in RGB (none: no picture).
fn picture(decoded: &frame::Video, pts_us: i64, target: Option<(u32, u32)>, scaler: &mut Option<Scaler>) -> Result<VideoFrame, DecodeError> {
    let Some((w, h)) = target.filter(|&(w, h)| w > 0 && h > 0) else {
        return Ok(VideoFrame { pts_us, width: 0, height: 0, rgb: Vec::new() });
    };
    let src = (decoded.format(), decoded.width(), decoded.height());
    let ctx = match scaler {
        Some((ctx, t, s)) if *t == (w, h) && *s == src => ctx,
        _ => &mut scaler.insert((scaling::Context::get(src.0, src.1, src.2, Pixel::RGB24, w, h, scaling::Flags::FAST_BILINEAR)?, (w, h), src)).0,
    };
    let mut rgb = frame::Video::empty();
    ctx.run(decoded, &mut rgb)?;
    Ok(VideoFrame { pts_us, width: w, height: h, rgb: packed_rgb(&rgb, w, h) })
}

/// `size` scaled to fit `bounds`, keeping its aspect ratio, in even numbers (the scaler's
/// liking), never larger than it was.
fn fit_box((w, h): (u32, u32), (bw, bh): (u32, u32)) -> (u32, u32) {
    if w == 0 || h == 0 {
        return (0, 0);
    }
    let scale = (bw as f64 / w as f64).min(bh as f64 / h as f64).min(1.0);
    let even = |x: f64| ((x as u32) & !1).max(2);
    (even(w as f64 * scale), even(h as f64 * scale))
}

/// At the end of the input: says so, and waits for a seek (or close).
fn wait_at_end(queue: &FrameQueue) {
    let mut s = queue.lock();
    s.eof = true;
    queue.changed.notify_all();
    queue.wake();
    while !s.closed && s.pending_seek.is_none() {
        s = queue.changed.wait_timeout(s, Duration::from_millis(200)).unwrap_or_else(|e| e.into_inner()).0;
    }
}

/// A timestamp in time base `tb`, in µs (wide arithmetic: no overflow for any stream).
fn to_micros(ts: i64, tb: ffmpeg_next::Rational) -> i64 {
    (ts as i128 * 1_000_000 * tb.numerator() as i128 / tb.denominator().max(1) as i128) as i64
}

/// Copies an RGB24 frame without its row padding.
fn packed_rgb(f: &frame::Video, w: u32, h: u32) -> Vec<u8> {
    let stride = f.stride(0);
    let row = w as usize * 3;
    let data = f.data(0);
    let mut out = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    out
}

/// The audio half of the decoder: decode, resample to stereo f32 at the device rate, queue.
struct Sound {
    index: usize,
    decoder: ffmpeg_next::decoder::Audio,
    resampler: Option<ffmpeg_next::software::resampling::Context>,
    queue: Arc<AudioQueue>,
    tb: ffmpeg_next::Rational,
    /// Added to a timestamp in µs to get the player's position.
    offset_us: i64,
    skip_before: Option<i64>,
}

impl Sound {
    /// `offset_us`: what to add to the sound's timestamps (µs) for the player's position;
    /// `None` counts from the sound's own first timestamp, as the original does.
    fn open(input: &SourceInput, queue: Arc<AudioQueue>, offset_us: Option<i64>) -> Option<Sound> {
        let stream = input.streams().best(media::Type::Audio)?;
        let ctx = codec::context::Context::from_parameters(stream.parameters()).ok()?;
        let decoder = ctx.decoder().audio().ok()?;
        let tb = stream.time_base();
        let offset_us = offset_us.unwrap_or_else(|| {
            let start = if stream.start_time() == ffmpeg_next::ffi::AV_NOPTS_VALUE { 0 } else { stream.start_time() };
            -to_micros(start, tb)
        });
        Some(Sound { index: stream.index(), decoder, resampler: None, queue, tb, offset_us, skip_before: None })
    }

    /// Decodes one packet; sound problems are logged, never fatal (the picture goes on).
    fn decode(&mut self, packet: &Packet) {
        if self.decoder.send_packet(packet).is_err() {
            return;
        }
        let mut frame = frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            let Some(ts) = frame.timestamp().or(frame.pts()) else { continue };
            let pts_us = to_micros(ts, self.tb) + self.offset_us;
            if self.skip_before.is_some_and(|s| pts_us + 100_000 < s) {
                continue;
            }
            self.skip_before = None;
            if frame.channel_layout().is_empty() {
                frame.set_channel_layout(ffmpeg_next::ChannelLayout::default(frame.channels() as i32));
            }
            if self.resampler.is_none() {
                use ffmpeg_next::format::sample::{Sample, Type};
                match ffmpeg_next::software::resampling::Context::get(
                    frame.format(),
                    frame.channel_layout(),
                    frame.rate(),
                    Sample::F32(Type::Packed),
                    ffmpeg_next::ChannelLayout::STEREO,
                    self.queue.rate,
                ) {
                    Ok(r) => self.resampler = Some(r),
                    Err(e) => {
                        tracing::warn!("no sound: cannot resample ({e})");
                        return;
                    }
                }
            }
            let mut out = frame::Audio::empty();
            if self.resampler.as_mut().expect("just set").run(&frame, &mut out).is_err() {
                continue;
            }
            let n = out.samples() * CHANNELS;
            let bytes = &out.data(0)[..n * 4];
            let samples: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
            self.queue.push(AudioChunk { pts_us, samples });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provisional_size_keeps_the_aspect_ratio_and_never_enlarges() {
        assert_eq!(fit_box((1920, 1080), PROVISIONAL), (960, 540));
        assert_eq!(fit_box((1080, 1920), PROVISIONAL), (302, 540));
        assert_eq!(fit_box((320, 180), PROVISIONAL), (320, 180));
        assert_eq!(fit_box((0, 10), PROVISIONAL), (0, 0));
    }
}
