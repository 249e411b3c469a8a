//! Encoding the way the sample generator and the transcoder both do it: an H.264 and an AAC
//! stream on an output, packets drained into the muxer, and the trailer FFmpeg 5.1 reports
//! oddly for fragmented MP4.

use ffmpeg_next::format::Pixel;
use ffmpeg_next::format::sample::{Sample, Type as SampleType};
use ffmpeg_next::{ChannelLayout, Dictionary, Packet, Rational, codec, encoder, format};

/// Audio is always encoded at this rate, stereo, planar float.
pub const AUDIO_RATE: i32 = 48_000;

/// Why an encoder could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// FFmpeg said no.
    #[error("ffmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    /// This FFmpeg build lacks the encoder.
    #[error("this FFmpeg build has no {0} encoder")]
    NoEncoder(&'static str),
}

/// How to encode the video.
pub struct VideoSettings<'a> {
    /// Picture size (even sides).
    pub size: (u32, u32),
    /// Time base of the frames' timestamps.
    pub time_base: Rational,
    /// Frame rate.
    pub frame_rate: Rational,
    /// Bit rate, bits per second.
    pub bit_rate: usize,
    /// Peak bit rate, if capped.
    pub max_bit_rate: Option<usize>,
    /// Frames between keyframes.
    pub gop: u32,
    /// Encoder options (`preset`, `bf`, …).
    pub options: Dictionary<'a>,
}

/// Adds an H.264 stream to `octx`; returns the open encoder and the stream's index.
pub fn add_h264(octx: &mut format::context::Output, s: VideoSettings) -> Result<(encoder::Video, usize), EncodeError> {
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let h264 = encoder::find(codec::Id::H264).ok_or(EncodeError::NoEncoder("H.264"))?;
    let mut ost = octx.add_stream(h264)?;
    let index = ost.index();
    let mut enc = codec::context::Context::new_with_codec(h264).encoder().video()?;
    enc.set_width(s.size.0);
    enc.set_height(s.size.1);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(s.time_base);
    enc.set_frame_rate(Some(s.frame_rate));
    enc.set_bit_rate(s.bit_rate);
    if let Some(max) = s.max_bit_rate {
        enc.set_max_bit_rate(max);
    }
    enc.set_gop(s.gop);
    if global_header {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let enc = enc.open_as_with(h264, s.options)?;
    ost.set_parameters(&enc);
    Ok((enc, index))
}

/// Adds an AAC stream (48 kHz stereo) to `octx`; returns the open encoder, the stream's index
/// and the encoder's frame size in samples.
pub fn add_aac(octx: &mut format::context::Output, bit_rate: usize) -> Result<(encoder::Audio, usize, usize), EncodeError> {
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let aac = encoder::find(codec::Id::AAC).ok_or(EncodeError::NoEncoder("AAC"))?;
    let mut ost = octx.add_stream(aac)?;
    let index = ost.index();
    let mut enc = codec::context::Context::new_with_codec(aac).encoder().audio()?;
    enc.set_rate(AUDIO_RATE);
    enc.set_channel_layout(ChannelLayout::STEREO);
    enc.set_channels(2);
    enc.set_format(Sample::F32(SampleType::Planar));
    enc.set_bit_rate(bit_rate);
    enc.set_time_base(Rational(1, AUDIO_RATE));
    if global_header {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let enc = enc.open_as(aac)?;
    ost.set_parameters(&enc);
    let frame_size = (enc.frame_size() as usize).max(1024);
    Ok((enc, index, frame_size))
}

/// Writes every packet the encoder has ready to stream `index`, timestamps from `from` to `to`.
pub fn drain(enc: &mut encoder::Encoder, index: usize, from: Rational, to: Rational, octx: &mut format::context::Output) -> Result<(), ffmpeg_next::Error> {
    let mut pkt = Packet::empty();
    while enc.receive_packet(&mut pkt).is_ok() {
        pkt.set_stream(index);
        pkt.rescale_ts(from, to);
        pkt.write_interleaved(octx)?;
    }
    Ok(())
}

/// Finishes the file. Not `write_trailer()`: with fragmented MP4, FFmpeg 5.1's trailer returns
/// a positive byte count, which ffmpeg-next takes for an error.
pub fn finish(octx: &mut format::context::Output) -> Result<(), ffmpeg_next::Error> {
    // SAFETY: the context is open and its header written.
    let r = unsafe { ffmpeg_next::ffi::av_write_trailer(octx.as_mut_ptr()) };
    if r < 0 {
        return Err(ffmpeg_next::Error::from(r));
    }
    Ok(())
}
