//! Generates a sample clip: H.264 video of a moving test pattern and an AAC tone, so the demo,
//! the tests and new users need no video of their own.
//!
//! The pattern includes a band of pseudo-random noise so the encoder has to spend its bit rate
//! and the file has a predictable size.

use std::path::Path;

use ffmpeg_next::{
    ChannelLayout, Dictionary, Rational, format,
    format::Pixel,
    format::sample::{Sample, Type as SampleType},
    frame,
};

use super::encode::{AUDIO_RATE, EncodeError, VideoSettings, add_aac, add_h264, drain, finish};

/// Options for the generated clip.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Seconds.
    pub duration: f64,
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: i32,
    /// Video bit rate, bits per second.
    pub video_bitrate: usize,
    /// Sound bit rate, bits per second.
    pub audio_bitrate: usize,
    /// Where an MP4 keeps its index (ignored for other containers).
    pub mp4_layout: Mp4Layout,
}

/// MP4 index placement: players must cope with all three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mp4Layout {
    /// `moov` after the media data (ffmpeg's default): the index is at the tail.
    #[default]
    MoovAtEnd,
    /// `moov` moved to the front (`-movflags +faststart`).
    Faststart,
    /// Fragmented MP4 (`frag_keyframe+empty_moov`): an index per fragment.
    Fragmented,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec { duration: 10.0, width: 640, height: 360, fps: 25, video_bitrate: 2_000_000, audio_bitrate: 128_000, mp4_layout: Mp4Layout::MoovAtEnd }
    }
}

/// Sample generation failures.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// ffmpeg failed.
    #[error("ffmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    /// This ffmpeg has no encoder for a codec we need.
    #[error("this FFmpeg build has no {0} encoder (Debian's libavcodec has libx264 and aac)")]
    NoEncoder(&'static str),
    /// Bad spec.
    #[error("invalid sample spec: {0}")]
    Spec(&'static str),
}

impl From<EncodeError> for SampleError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::Ffmpeg(e) => SampleError::Ffmpeg(e),
            EncodeError::NoEncoder(what) => SampleError::NoEncoder(what),
        }
    }
}

/// Writes a clip to `out` (container from the extension: .mp4, .mkv, …).
pub fn write_sample(out: &Path, spec: &SampleSpec) -> Result<(), SampleError> {
    super::init();
    if spec.width < 16 || spec.height < 16 || spec.width % 2 == 1 || spec.height % 2 == 1 {
        return Err(SampleError::Spec("size must be even and at least 16x16"));
    }
    if !(spec.duration > 0.0 && spec.duration <= 24.0 * 3600.0) {
        return Err(SampleError::Spec("duration must be positive"));
    }
    let mut octx = format::output(&out)?;
    let mut opts = Dictionary::new();
    opts.set("preset", "ultrafast");
    let video = VideoSettings {
        size: (spec.width, spec.height),
        time_base: Rational(1, spec.fps),
        frame_rate: Rational(spec.fps, 1),
        bit_rate: spec.video_bitrate,
        max_bit_rate: None,
        gop: spec.fps as u32 * 2,
        options: opts,
    };
    let (mut venc, vidx) = add_h264(&mut octx, video)?;
    let (mut aenc, aidx, frame_size) = add_aac(&mut octx, spec.audio_bitrate)?;

    let mut mux_opts = Dictionary::new();
    match spec.mp4_layout {
        Mp4Layout::MoovAtEnd => {}
        Mp4Layout::Faststart => mux_opts.set("movflags", "+faststart"),
        Mp4Layout::Fragmented => mux_opts.set("movflags", "frag_keyframe+empty_moov"),
    }
    let is_mp4 = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("mp4") || e.eq_ignore_ascii_case("mov"));
    if is_mp4 {
        octx.write_header_with(mux_opts)?;
    } else {
        octx.write_header()?;
    }
    let vtb = octx.stream(vidx).expect("added").time_base();
    let atb = octx.stream(aidx).expect("added").time_base();

    let frames = (spec.duration * spec.fps as f64).round() as i64;
    let total_samples = (spec.duration * AUDIO_RATE as f64).round() as i64;
    let mut vframe = frame::Video::new(Pixel::YUV420P, spec.width, spec.height);
    let mut aframe = frame::Audio::new(Sample::F32(SampleType::Planar), frame_size, ChannelLayout::STEREO);
    aframe.set_rate(AUDIO_RATE as u32);
    let mut sample_pos: i64 = 0;
    let mut noise = 0x2545F491u32;

    for i in 0..frames {
        draw_pattern(&mut vframe, i, spec.fps, &mut noise);
        vframe.set_pts(Some(i));
        venc.send_frame(&vframe)?;
        drain(&mut venc, vidx, Rational(1, spec.fps), vtb, &mut octx)?;
        // Audio up to the end of this video frame, so the muxer interleaves evenly.
        let until = ((i + 1) * AUDIO_RATE as i64 / spec.fps as i64).min(total_samples);
        while sample_pos + frame_size as i64 <= until.max(frame_size as i64) && sample_pos < total_samples {
            fill_tone(&mut aframe, sample_pos);
            aframe.set_pts(Some(sample_pos));
            aenc.send_frame(&aframe)?;
            drain(&mut aenc, aidx, Rational(1, AUDIO_RATE), atb, &mut octx)?;
            sample_pos += frame_size as i64;
        }
    }
    venc.send_eof()?;
    drain(&mut venc, vidx, Rational(1, spec.fps), vtb, &mut octx)?;
    aenc.send_eof()?;
    drain(&mut aenc, aidx, Rational(1, AUDIO_RATE), atb, &mut octx)?;
    finish(&mut octx)?;
    Ok(())
}

/// Colour bars that scroll, a bouncing white box, and a noise band. Rows are built once per
/// frame and copied: tests generate their clips with the debug build, where a loop per pixel
/// made a 720p minute take 20 s.
fn draw_pattern(f: &mut frame::Video, i: i64, fps: i32, noise: &mut u32) {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let shift = (i * 4) as usize;
    let stride = f.stride(0);
    let box_size = h / 6;
    let period = (fps as i64 * 4) as f64;
    let phase = (i as f64 / period) * std::f64::consts::TAU;
    let bx = ((phase.sin() * 0.5 + 0.5) * (w - box_size) as f64) as usize;
    let by = ((phase.cos() * 0.5 + 0.5) * (h - box_size) as f64) as usize;
    let bars: Vec<u8> = (0..w).map(|col| ((((col + shift) * 8 / w) % 8) as u8) * 28 + 16).collect();
    let y = f.data_mut(0);
    for row in 0..h {
        let line = &mut y[row * stride..row * stride + w];
        if row >= h * 3 / 4 && row < h * 7 / 8 {
            for px in line.iter_mut() {
                *noise ^= *noise << 13;
                *noise ^= *noise >> 17;
                *noise ^= *noise << 5;
                *px = (*noise >> 24) as u8;
            }
            continue;
        }
        line.copy_from_slice(&bars);
        if row >= by && row < by + box_size {
            line[bx..(bx + box_size).min(w)].fill(235);
        }
    }
    for plane in 1..3 {
        let stride = f.stride(plane);
        let line: Vec<u8> = (0..w / 2)
            .map(|col| {
                let bar = (((col * 2 + shift) * 8 / w) % 8) as u8;
                if plane == 1 { bar.wrapping_mul(37) } else { 255 - bar.wrapping_mul(29) }
            })
            .collect();
        let data = f.data_mut(plane);
        for row in 0..h / 2 {
            data[row * stride..row * stride + w / 2].copy_from_slice(&line);
        }
    }
}

/// A 440 Hz tone, left and right in phase.
fn fill_tone(f: &mut frame::Audio, start: i64) {
    for ch in 0..2 {
        let plane = f.plane_mut::<f32>(ch);
        for (k, s) in plane.iter_mut().enumerate() {
            let t = (start + k as i64) as f64 / AUDIO_RATE as f64;
            *s = (t * 440.0 * std::f64::consts::TAU).sin() as f32 * 0.2;
        }
    }
}

/// Writes an AVI whose video is in a codec no FFmpeg decodes (FourCC `SYNX`, opaque bytes):
/// it probes as a video stream, so a host can serve it, but cannot be transcoded. For tests of
/// that path.
pub fn write_undecodable(out: &Path, seconds: u32) -> Result<(), SampleError> {
    super::init();
    let mut octx = format::output_as(&out, "avi")?;
    {
        let mut st = octx.add_stream(ffmpeg_next::encoder::find(ffmpeg_next::codec::Id::None))?;
        st.set_time_base(Rational(1, 25));
        // SAFETY: filling the plain fields of the stream's own codec parameters before the
        // header is written.
        unsafe {
            let par = (*st.as_mut_ptr()).codecpar;
            (*par).codec_type = ffmpeg_next::ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
            (*par).codec_id = ffmpeg_next::ffi::AVCodecID::AV_CODEC_ID_NONE;
            (*par).codec_tag = u32::from_le_bytes(*b"SYNX");
            (*par).width = 320;
            (*par).height = 180;
        }
    }
    octx.write_header()?;
    let tb = octx.stream(0).expect("added").time_base();
    for i in 0..(seconds as i64 * 25) {
        let mut pkt = ffmpeg_next::Packet::copy(&[(i % 251) as u8; 2000]);
        pkt.set_stream(0);
        pkt.set_pts(Some(i));
        pkt.set_dts(Some(i));
        pkt.set_duration(1);
        pkt.rescale_ts(Rational(1, 25), tb);
        if i % 25 == 0 {
            pkt.set_flags(ffmpeg_next::packet::Flags::KEY);
        }
        pkt.write_interleaved(&mut octx)?;
    }
    octx.write_trailer()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_probeable_clip() {
        let dir = tempfile::tempdir().unwrap();
        for ext in ["mp4", "mkv"] {
            let p = dir.path().join(format!("s.{ext}"));
            write_sample(&p, &SampleSpec { duration: 2.0, width: 160, height: 96, ..Default::default() }).unwrap();
            let info = super::super::probe::probe(&p).unwrap();
            assert_eq!(info.codecs, vec!["h264".to_string(), "aac".to_string()], "{ext}");
            let d = info.duration_ms.unwrap();
            assert!((1900..=2200).contains(&d), "{ext}: {d} ms");
        }
    }

    #[test]
    fn rejects_bad_specs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.mp4");
        assert!(write_sample(&p, &SampleSpec { width: 15, ..Default::default() }).is_err());
        assert!(write_sample(&p, &SampleSpec { duration: 0.0, ..Default::default() }).is_err());
    }
}
