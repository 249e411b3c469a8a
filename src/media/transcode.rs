//! A lower-quality rendition of the host's file: decode, scale, re-encode to H.264 + AAC in
//! fragmented MP4, from a start position on. [`Progress::first_us`] says which instant of the
//! original the rendition's first video frame is, so a participant maps rendition time to room
//! time exactly (no B-frames, so decode and presentation order agree).
//! Fragmented so a participant can play what exists while the rest is still being made; written
//! to a file so memory stays bounded.

use std::path::Path;

use ffmpeg_next::format::Pixel;
use ffmpeg_next::format::sample::{Sample, Type as SampleType};
use ffmpeg_next::software::{resampling, scaling};
use ffmpeg_next::{ChannelLayout, Dictionary, Rational, Rescale, codec, encoder, format, frame, media};

use super::encode::{AUDIO_RATE, EncodeError, VideoSettings, add_aac, add_h264, drain, finish};

/// What to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    /// Picture height (never above the source's); the width keeps the aspect ratio.
    pub height: u32,
    /// Video bit rate, bits per second.
    pub video_bps: usize,
    /// Audio bit rate, bits per second.
    pub audio_bps: usize,
}

impl Rendition {
    /// Video and audio together, bits per second.
    pub fn bps(&self) -> u64 {
        (self.video_bps + self.audio_bps) as u64
    }
}

/// The levels below `high` (the original bytes) as the host makes them, best first.
pub fn levels() -> [(&'static str, Rendition); 2] {
    [
        ("medium", Rendition { height: 720, video_bps: 2_500_000, audio_bps: 128_000 }),
        ("low", Rendition { height: 480, video_bps: 1_000_000, audio_bps: 96_000 }),
    ]
}

/// The rendition of a level name.
pub fn level(name: &str) -> Option<Rendition> {
    levels().into_iter().find(|(n, _)| *n == name).map(|(_, r)| r)
}

/// Whether `input` can be transcoded here: a video stream this FFmpeg decodes, and the H.264
/// and AAC encoders. The error says why not (the file then stays at `high`).
pub fn check_transcodable(input: &Path) -> Result<(), TranscodeError> {
    super::init();
    let ictx = format::input(&input)?;
    let vstream = ictx.streams().best(media::Type::Video).ok_or(TranscodeError::NoVideo)?;
    let vctx = codec::context::Context::from_parameters(vstream.parameters())?;
    let codec_name = format!("{:?}", vctx.id());
    vctx.decoder().video().map_err(|_| TranscodeError::NoDecoder(codec_name))?;
    if encoder::find(codec::Id::H264).is_none() {
        return Err(TranscodeError::NoEncoder("H.264"));
    }
    if encoder::find(codec::Id::AAC).is_none() {
        return Err(TranscodeError::NoEncoder("AAC"));
    }
    Ok(())
}

/// What a transcode did.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcoded {
    /// Output picture size.
    pub size: (u32, u32),
    /// Video frames encoded.
    pub frames: u64,
    /// Media time covered, from the start position, µs.
    pub media_us: i64,
    /// With an audio track.
    pub audio: bool,
    /// The first video frame written, on the player's timeline (the original's, from its
    /// video stream's start), µs; meaningless when `frames` is 0. A player maps the rendition's video stream start here (its
    /// muxer's own zero may sit before it, by the sound's priming).
    pub first_us: i64,
}

/// How far a transcode has got, on the player's timeline (µs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The first video frame encoded (where the rendition's video starts).
    pub first_us: i64,
    /// The newest video frame encoded.
    pub at_us: i64,
}

/// Why a transcode failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// FFmpeg said no.
    #[error("ffmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    /// The file has no video stream.
    #[error("the file has no video stream")]
    NoVideo,
    /// No decoder for the file's video (it cannot be transcoded; it stays at `high`).
    #[error("this FFmpeg cannot decode the video ({0}): it stays at the original quality")]
    NoDecoder(String),
    /// No encoder for the rendition.
    #[error("this FFmpeg build has no {0} encoder")]
    NoEncoder(&'static str),
}

impl From<EncodeError> for TranscodeError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::Ffmpeg(e) => TranscodeError::Ffmpeg(e),
            EncodeError::NoEncoder(what) => TranscodeError::NoEncoder(what),
        }
    }
}

/// Microseconds, as a time base.
const MICROS: Rational = Rational(1, 1_000_000);

/// Transcodes `input` into `out` from `start_us` (player timeline) on. `progress` hears of
/// each encoded frame and returns false to stop there (a rendition runs ahead of its slowest
/// viewer, not to the end regardless); it may also block to pause the transcode.
pub fn transcode(input: &Path, out: &Path, spec: &Rendition, start_us: i64, mut progress: impl FnMut(Progress) -> bool) -> Result<Transcoded, TranscodeError> {
    super::init();
    let mut ictx = format::input(&input)?;
    let vstream = ictx.streams().best(media::Type::Video).ok_or(TranscodeError::NoVideo)?;
    let (vindex, vtb_in) = (vstream.index(), vstream.time_base());
    // The player counts time from the video stream's start; so does everything here.
    let vstart_us = if vstream.start_time() == ffmpeg_next::ffi::AV_NOPTS_VALUE { 0 } else { vstream.start_time().rescale(vtb_in, MICROS) };
    let start_us = start_us.saturating_add(vstart_us);
    let mut vdec = video_decoder(&vstream)?;
    let rate = vstream.avg_frame_rate();
    let fps = if rate.numerator() > 0 && rate.denominator() > 0 { rate } else { Rational(25, 1) };
    let audio_in = ictx.streams().best(media::Type::Audio).map(|s| (s.index(), s.time_base(), s.parameters()));
    let mut adec = match &audio_in {
        Some((_, _, params)) => codec::context::Context::from_parameters(params.clone())?.decoder().audio().ok(),
        None => None,
    };
    let (ow, oh) = picture_size((vdec.width(), vdec.height()), spec.height);

    let mut o = open_output(out, spec, (ow, oh), vtb_in, fps, adec.is_some())?;

    // Seek to the keyframe at or before the start; frames before the start are dropped.
    if start_us > 0 {
        ictx.seek(start_us, ..start_us)?;
    }
    let start_in_vtb = start_us.rescale(MICROS, vtb_in);

    let mut scaler: Option<scaling::Context> = None;
    let mut decoded = frame::Video::empty();
    let mut scaled = frame::Video::new(Pixel::YUV420P, ow, oh);
    let mut frames = 0u64;
    let mut last_us = start_us;
    let mut first_video_us = i64::MAX;
    let mut stop = false;
    let mut packets = ictx.packets();
    loop {
        let next = if stop { None } else { packets.next() };
        let eof = next.is_none();
        match next {
            Some((stream, packet)) if stream.index() == vindex => vdec.send_packet(&packet)?,
            Some((stream, packet)) => {
                if let (Some(dec), Some((aindex, atb_in, _))) = (adec.as_mut(), audio_in.as_ref())
                    && stream.index() == *aindex
                    && dec.send_packet(&packet).is_ok()
                {
                    o.audio_from(dec, *atb_in, start_us)?;
                }
                continue;
            }
            None => vdec.send_eof()?,
        }
        while vdec.receive_frame(&mut decoded).is_ok() {
            let Some(pts) = decoded.timestamp().or(decoded.pts()) else { continue };
            if pts < start_in_vtb {
                continue;
            }
            scale(&mut scaler, &decoded, &mut scaled)?;
            scaled.set_pts(Some(pts));
            scaled.set_kind(ffmpeg_next::picture::Type::None);
            o.video(&scaled, vtb_in)?;
            frames += 1;
            last_us = pts.rescale(vtb_in, MICROS);
            first_video_us = first_video_us.min(last_us);
            o.line_up_audio(first_video_us)?;
            if !progress(Progress { first_us: first_video_us - vstart_us, at_us: last_us - vstart_us }) {
                stop = true;
                break;
            }
        }
        if eof {
            break;
        }
    }
    o.close(vtb_in)?;
    Ok(Transcoded { size: (ow, oh), frames, media_us: last_us - start_us, audio: o.audio.is_some(), first_us: first_video_us.saturating_sub(vstart_us) })
}

/// A decoder for the source's video stream (its codec named when this FFmpeg has none).
fn video_decoder(stream: &format::stream::Stream) -> Result<ffmpeg_next::decoder::Video, TranscodeError> {
    let ctx = codec::context::Context::from_parameters(stream.parameters())?;
    let name = format!("{:?}", ctx.id());
    ctx.decoder().video().map_err(|_| TranscodeError::NoDecoder(name))
}

/// The rendition's picture size: the requested height (not above the source's), even sides,
/// the source's shape.
fn picture_size((sw, sh): (u32, u32), height: u32) -> (u32, u32) {
    let (sw, sh) = (sw.max(2), sh.max(2));
    let oh = height.min(sh) & !1;
    (((sw as u64 * oh as u64 / sh as u64) as u32 & !1).max(2), oh)
}

/// The rendition's file and encoders.
struct Output {
    octx: format::context::Output,
    venc: encoder::Video,
    vidx: usize,
    audio: Option<AudioOut>,
    vtb_out: Rational,
    atb_out: Option<Rational>,
}

impl Output {
    /// A scaled picture into the encoder, and what it has encoded into the file.
    fn video(&mut self, scaled: &frame::Video, vtb_in: Rational) -> Result<(), TranscodeError> {
        self.venc.send_frame(scaled)?;
        drain(&mut self.venc, self.vidx, vtb_in, self.vtb_out, &mut self.octx)?;
        Ok(())
    }

    /// What the audio decoder has (the packet was sent to it) into the encoder.
    fn audio_from(&mut self, dec: &mut ffmpeg_next::decoder::Audio, atb_in: Rational, start_us: i64) -> Result<(), TranscodeError> {
        if let (Some(a), Some(atb)) = (self.audio.as_mut(), self.atb_out) {
            a.drain_decoder(dec, atb_in, start_us, &mut self.octx, atb)?;
        }
        Ok(())
    }

    /// Once the first video frame is out: the sound lines up with it.
    fn line_up_audio(&mut self, first_video_us: i64) -> Result<(), TranscodeError> {
        if let (Some(a), Some(atb)) = (self.audio.as_mut(), self.atb_out)
            && a.next_pts.is_none()
        {
            a.line_up(first_video_us);
            a.encode_ready(&mut self.octx, atb, false)?;
        }
        Ok(())
    }

    /// Flushes the encoders and finishes the file.
    fn close(&mut self, vtb_in: Rational) -> Result<(), TranscodeError> {
        self.venc.send_eof()?;
        drain(&mut self.venc, self.vidx, vtb_in, self.vtb_out, &mut self.octx)?;
        if let (Some(a), Some(atb)) = (self.audio.as_mut(), self.atb_out) {
            a.finish(&mut self.octx, atb)?;
        }
        finish(&mut self.octx)?;
        Ok(())
    }
}

/// Scales `decoded` into `scaled` (the scaler made on the first frame).
fn scale(scaler: &mut Option<scaling::Context>, decoded: &frame::Video, scaled: &mut frame::Video) -> Result<(), TranscodeError> {
    let sc = match scaler {
        Some(s) => s,
        None => scaler.insert(scaling::Context::get(
            decoded.format(),
            decoded.width(),
            decoded.height(),
            Pixel::YUV420P,
            scaled.width(),
            scaled.height(),
            scaling::Flags::BILINEAR,
        )?),
    };
    sc.run(decoded, scaled)?;
    Ok(())
}

/// Opens `out` as fragmented MP4 with an H.264 encoder of `size` (and AAC when `with_audio`)
/// and writes its header.
fn open_output(out: &Path, spec: &Rendition, size: (u32, u32), vtb_in: Rational, fps: Rational, with_audio: bool) -> Result<Output, TranscodeError> {
    let (ow, oh) = size;
    let mut octx = format::output_as(&out, "mp4")?;
    let mut opts = Dictionary::new();
    opts.set("preset", "veryfast");
    // No B-frames: the first frame's decode and presentation times agree, so the muxer's
    // shift of the timeline to zero moves every stream by exactly the first timestamp.
    opts.set("bf", "0");
    let video = VideoSettings {
        size: (ow, oh),
        // The source's time base, so the original timestamps carry over unchanged.
        time_base: vtb_in,
        frame_rate: fps,
        bit_rate: spec.video_bps,
        max_bit_rate: Some(spec.video_bps * 3 / 2),
        // A keyframe every two seconds: each starts a fragment a participant can begin at.
        gop: (2 * fps.numerator() / fps.denominator().max(1)).max(1) as u32,
        options: opts,
    };
    let (venc, vidx) = add_h264(&mut octx, video)?;
    let audio = match with_audio {
        true => {
            let (enc, idx, frame_size) = add_aac(&mut octx, spec.audio_bps)?;
            // SAFETY: reading a plain field of the opened encoder's context.
            let padding = unsafe { (*enc.as_ptr()).initial_padding }.max(0) as i64;
            Some(AudioOut { idx, enc, frame_size, resampler: None, fifo: [Vec::new(), Vec::new()], next_pts: None, first_us: i64::MAX, padding })
        }
        false => None,
    };

    let mut mux_opts = Dictionary::new();
    mux_opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
    // Each fragment reaches the file as soon as it is complete, not when a buffer fills:
    // participants fetch what the file holds.
    mux_opts.set("flush_packets", "1");
    octx.write_header_with(mux_opts)?;
    let vtb_out = octx.stream(vidx).expect("added").time_base();
    let atb_out = audio.as_ref().map(|a| octx.stream(a.idx).expect("added").time_base());

    Ok(Output { octx, venc, vidx, audio, vtb_out, atb_out })
}

/// The audio half: decoded frames resampled to 48 kHz stereo planar float, cut into the
/// encoder's frame size, timestamped on the original timeline.
struct AudioOut {
    idx: usize,
    enc: encoder::Audio,
    frame_size: usize,
    resampler: Option<resampling::Context>,
    fifo: [Vec<f32>; 2],
    /// Sample count (at 48 kHz) of the next frame to encode; set once the sound is lined up
    /// with the first video frame.
    next_pts: Option<i64>,
    /// Timestamp of the first sample in the FIFO before it is lined up, µs.
    first_us: i64,
    /// The encoder's priming samples: its first packet is stamped this much before the first
    /// sample it was given.
    padding: i64,
}

impl AudioOut {
    fn drain_decoder(
        &mut self,
        dec: &mut ffmpeg_next::decoder::Audio,
        tb: Rational,
        start_us: i64,
        octx: &mut format::context::Output,
        tb_out: Rational,
    ) -> Result<(), ffmpeg_next::Error> {
        let mut decoded = frame::Audio::empty();
        while dec.receive_frame(&mut decoded).is_ok() {
            let Some(ts) = decoded.timestamp().or(decoded.pts()) else { continue };
            let us = ts.rescale(tb, MICROS);
            if us < start_us {
                continue;
            }
            if decoded.channel_layout().is_empty() {
                decoded.set_channel_layout(ChannelLayout::default(decoded.channels() as i32));
            }
            let rs = match &mut self.resampler {
                Some(r) => r,
                None => self.resampler.insert(resampling::Context::get(
                    decoded.format(),
                    decoded.channel_layout(),
                    decoded.rate(),
                    Sample::F32(SampleType::Planar),
                    ChannelLayout::STEREO,
                    AUDIO_RATE as u32,
                )?),
            };
            let mut out = frame::Audio::empty();
            rs.run(&decoded, &mut out)?;
            let first = self.first_us == i64::MAX;
            if first {
                self.first_us = us;
            }
            // Planar: one plane per channel (only the first plane's line size is set, so the
            // planes are read by sample count, not with `data`).
            for (ch, fifo) in self.fifo.iter_mut().enumerate() {
                fifo.extend_from_slice(&out.plane::<f32>(ch)[..out.samples()]);
            }
            // The video's first frame came before any sound: line this sound up now.
            if first && let Some(start) = self.next_pts {
                self.align(start);
            }
            self.encode_ready(octx, tb_out, false)?;
        }
        Ok(())
    }

    /// Lines the sound up with the first video frame (`video_us`) so that its first packet —
    /// stamped the encoder's priming earlier than its first sample — starts exactly with the
    /// video: samples before are cut, a gap is filled with silence. The muxer moves the
    /// timeline so the earliest packet is at zero and pins the first video frame there; with
    /// the sound's first packet earlier than the video, every video frame but the first came
    /// out late by the difference. Lined up, the rendition's zero is `video_us` exactly (the
    /// cost: the priming's 21 ms of sound at the rendition's very start).
    fn line_up(&mut self, video_us: i64) {
        if self.next_pts.is_some() {
            return;
        }
        let start = video_us * AUDIO_RATE as i64 / 1_000_000 + self.padding;
        self.next_pts = Some(start);
        if self.first_us != i64::MAX {
            self.align(start);
        }
    }

    /// Makes the FIFO, whose first sample is at `first_us`, start at sample `start`: cuts what
    /// is before it, or puts silence in front.
    fn align(&mut self, start: i64) {
        let offset = start - self.first_us * AUDIO_RATE as i64 / 1_000_000;
        for fifo in &mut self.fifo {
            if offset >= 0 {
                fifo.drain(..(offset as usize).min(fifo.len()));
            } else {
                fifo.splice(0..0, std::iter::repeat_n(0.0, (-offset) as usize));
            }
        }
    }

    /// Encodes every whole frame in the FIFO (and the rest, padded, when `flush`), once lined
    /// up with the video.
    fn encode_ready(&mut self, octx: &mut format::context::Output, tb_out: Rational, flush: bool) -> Result<(), ffmpeg_next::Error> {
        if self.next_pts.is_none() {
            return Ok(());
        }
        while self.fifo[0].len() >= self.frame_size || (flush && !self.fifo[0].is_empty()) {
            let mut f = frame::Audio::new(Sample::F32(SampleType::Planar), self.frame_size, ChannelLayout::STEREO);
            f.set_rate(AUDIO_RATE as u32);
            for ch in 0..2 {
                let take = self.fifo[ch].len().min(self.frame_size);
                let plane: &mut [f32] = f.plane_mut(ch);
                plane[..take].copy_from_slice(&self.fifo[ch][..take]);
                plane[take..].fill(0.0);
                self.fifo[ch].drain(..take);
            }
            let pts = self.next_pts.unwrap_or(0);
            f.set_pts(Some(pts));
            self.next_pts = Some(pts + self.frame_size as i64);
            self.enc.send_frame(&f)?;
            drain(&mut self.enc, self.idx, Rational(1, AUDIO_RATE), tb_out, octx)?;
        }
        Ok(())
    }

    fn finish(&mut self, octx: &mut format::context::Output, tb_out: Rational) -> Result<(), ffmpeg_next::Error> {
        // No video frame came: the sound starts where it starts.
        if self.next_pts.is_none() && self.first_us != i64::MAX {
            self.line_up(self.first_us);
        }
        self.encode_ready(octx, tb_out, true)?;
        self.enc.send_eof()?;
        drain(&mut self.enc, self.idx, Rational(1, AUDIO_RATE), tb_out, octx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::sample::{SampleSpec, write_sample};

    #[test]
    fn a_480p_rendition_from_mid_file_keeps_the_timeline_and_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.mp4");
        write_sample(&src, &SampleSpec { duration: 8.0, width: 1280, height: 720, video_bitrate: 3_000_000, ..Default::default() }).unwrap();
        let out = dir.path().join("low.mp4");
        let spec = Rendition { height: 480, video_bps: 1_000_000, audio_bps: 96_000 };
        let t = transcode(&src, &out, &spec, 4_000_000, |_| true).unwrap();
        assert_eq!(t.size, (852, 480));
        assert!(t.audio);
        assert!((95..=105).contains(&t.frames), "about 4 s at 25 fps: {}", t.frames);

        // The rendition opens, is 480p H.264 + AAC, and its frames sit at 4 s and later.
        let q = crate::media::decode::FrameQueue::new(8, None);
        let th = crate::media::decode::spawn(Box::new(std::fs::File::open(&out).unwrap()), q.clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let first = loop {
            if let Some(f) = q.pop_until(i64::MAX) {
                break f;
            }
            assert!(q.error().is_none(), "{:?}", q.error());
            assert!(std::time::Instant::now() < deadline, "no frame from the rendition");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let info = q.info().unwrap();
        assert_eq!((info.width, info.height), (852, 480));
        q.close();
        th.join().unwrap();
        // The rendition's first frame is `first_us` in the original: at 4 s. (The room
        // timeline mapping is exact: decode_tests' growing-rendition test checks it per frame.)
        assert!(t.first_us >= 4_000_000 && t.first_us < 4_050_000, "{t:?}");
        assert_eq!(first.pts_us, 0, "the player counts from the video's first frame");
        let ictx = format::input(&out).unwrap();
        assert!(ictx.streams().best(media::Type::Audio).is_some(), "AAC track");
        let _ = first;

        assert!(check_transcodable(&src).is_ok());

        // Stopping early: the progress callback bounds how far it runs.
        let t = transcode(&src, &dir.path().join("short.mp4"), &spec, 0, |p| p.at_us < 2_000_000).unwrap();
        assert!(t.frames <= 52 && t.media_us < 2_100_000, "{t:?}");
    }

    #[test]
    fn a_video_no_decoder_reads_cannot_be_transcoded_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("odd.avi");
        crate::media::sample::write_undecodable(&odd, 2).unwrap();
        // It is media ffmpeg reads (the host serves it as it is)…
        let info = crate::media::probe::probe(&odd).unwrap();
        assert!(info.duration_ms.is_some_and(|d| d >= 1900), "{info:?}");
        // …but not one it can make renditions of.
        let e = check_transcodable(&odd).unwrap_err();
        assert!(matches!(e, TranscodeError::NoDecoder(_)), "{e:?}");
        assert!(e.to_string().contains("stays at the original quality"), "{e}");
        let e = transcode(&odd, &dir.path().join("x.mp4"), &level("low").unwrap(), 0, |_| true).unwrap_err();
        assert!(matches!(e, TranscodeError::NoDecoder(_)), "{e:?}");
    }
}
