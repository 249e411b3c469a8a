//! ffmpeg demuxing over any random-access byte source, through a custom AVIO context (read and
//! seek callbacks). The participant's source is its chunk store, whose reads block until the
//! host delivers the chunk; the demuxer never knows the bytes come over the network.

use std::ffi::{c_int, c_void};
use std::io;
use std::ptr;

use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;

/// Random-access bytes of known size.
pub trait ByteSource: Send {
    /// Total size in bytes.
    fn size(&self) -> u64;
    /// Reads at `pos` into `buf`; returns how many bytes (0 only at the end). May block.
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Still growing (a rendition being made): `size` is what exists so far, reads past it
    /// wait, and the demuxer is told the size is unknown.
    fn growing(&self) -> bool {
        false
    }
}

/// A file as a byte source (tests, the host's own probing).
impl ByteSource for std::fs::File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, pos)
    }
}

/// Why opening failed.
#[derive(Debug, thiserror::Error)]
pub enum AvioError {
    /// ffmpeg could not allocate.
    #[error("out of memory setting up the demuxer")]
    Alloc,
    /// ffmpeg could not open or probe the input.
    #[error("cannot read the media: {0}")]
    Open(ffmpeg_next::Error),
}

struct Opaque {
    source: Box<dyn ByteSource>,
    pos: u64,
}

unsafe extern "C" fn read_cb(opaque: *mut c_void, buf: *mut u8, len: c_int) -> c_int {
    // SAFETY: ffmpeg hands back the pointer we gave it, and a buffer of `len` bytes.
    let op = unsafe { &mut *(opaque as *mut Opaque) };
    let out = unsafe { std::slice::from_raw_parts_mut(buf, usize::try_from(len).unwrap_or(0)) };
    // A panic must not cross into C (it would abort): the input ends instead.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(op, out))).unwrap_or(ffi::AVERROR_EXIT)
}

fn read(op: &mut Opaque, out: &mut [u8]) -> c_int {
    if op.pos >= op.source.size() && !op.source.growing() {
        return ffi::AVERROR_EOF;
    }
    match op.source.read_at(op.pos, out) {
        Ok(0) => ffi::AVERROR_EOF,
        Ok(n) => {
            op.pos = op.pos.saturating_add(n as u64);
            c_int::try_from(n).unwrap_or(ffi::AVERROR_EXIT)
        }
        // Interrupted: the player is shutting down; ffmpeg gives up on this input.
        Err(_) => ffi::AVERROR_EXIT,
    }
}

unsafe extern "C" fn seek_cb(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in `read_cb`.
    let op = unsafe { &mut *(opaque as *mut Opaque) };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| seek(op, offset, whence))).unwrap_or(-1)
}

/// Where a seek lands. The offsets come from the demuxer, which reads them from the file (the
/// host's bytes): checked arithmetic, and -1 for anything out of range.
fn seek(op: &mut Opaque, offset: i64, whence: c_int) -> i64 {
    let Ok(size) = i64::try_from(op.source.size()) else { return -1 };
    let whence = whence & !ffi::AVSEEK_FORCE;
    if op.source.growing() && (whence == ffi::AVSEEK_SIZE || whence == 2) {
        // Not known yet.
        return -1;
    }
    let target = match whence {
        ffi::AVSEEK_SIZE => return size,
        0 => Some(offset),                                                   // SEEK_SET
        1 => i64::try_from(op.pos).ok().and_then(|p| p.checked_add(offset)), // SEEK_CUR
        2 => size.checked_add(offset),                                       // SEEK_END
        _ => None,
    };
    match target.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => {
            op.pos = t;
            t as i64
        }
        None => -1,
    }
}

/// The containers a participant opens: what hosts share, and none of the demuxers that open
/// other URLs or files (HLS, DASH, concat, image sequences) — the bytes are the host's.
const FORMATS: &std::ffi::CStr = c"mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mpegts,avi,flv,ogg,asf,mpeg,mpegps,nut,wav,mp3,aac,flac";

/// No protocol is named this: a demuxer that tries to open anything is refused.
const NO_PROTOCOL: &std::ffi::CStr = c"none";

/// Every nested open a demuxer asks for is refused: the input is our bytes and nothing else.
unsafe extern "C" fn refuse_open(
    _: *mut ffi::AVFormatContext,
    _: *mut *mut ffi::AVIOContext,
    _: *const std::ffi::c_char,
    _: c_int,
    _: *mut *mut ffi::AVDictionary,
) -> c_int {
    ffi::AVERROR(libc::EPERM)
}

const IO_BUFFER: usize = 32 * 1024;

/// An open demuxer over a byte source. Dereferences to ffmpeg-next's `Input`.
pub struct SourceInput {
    // Declared first: the format context must close before the AVIO context it uses is freed.
    input: Option<Input>,
    avio: *mut ffi::AVIOContext,
    opaque: *mut Opaque,
}

// SAFETY: the raw pointers are owned exclusively by this value; ffmpeg contexts may move
// between threads as long as one thread uses them at a time (`&mut self`).
unsafe impl Send for SourceInput {}

impl SourceInput {
    /// Probes and opens `source` (reads the header; with MP4's index at the tail, seeks there).
    pub fn open(source: Box<dyn ByteSource>) -> Result<SourceInput, AvioError> {
        super::init();
        let growing = source.growing();
        let opaque = Box::into_raw(Box::new(Opaque { source, pos: 0 }));
        // SAFETY: plain ffmpeg allocation calls; every failure path frees what it allocated.
        unsafe {
            let buf = ffi::av_malloc(IO_BUFFER) as *mut u8;
            if buf.is_null() {
                drop(Box::from_raw(opaque));
                return Err(AvioError::Alloc);
            }
            let avio = ffi::avio_alloc_context(buf, IO_BUFFER as c_int, 0, opaque as *mut c_void, Some(read_cb), None, Some(seek_cb));
            if avio.is_null() {
                ffi::av_free(buf as *mut c_void);
                drop(Box::from_raw(opaque));
                return Err(AvioError::Alloc);
            }
            if growing {
                // A seekable MP4 input makes the demuxer read every fragment's header up to the
                // end before it returns (to index them): a rendition still being made would
                // not open until it is finished. Read as a stream instead; seeks then decode
                // forward to their target.
                (*avio).seekable = 0;
            }
            let mut this = SourceInput { input: None, avio, opaque };
            let mut fmt = ffi::avformat_alloc_context();
            if fmt.is_null() {
                return Err(AvioError::Alloc);
            }
            (*fmt).pb = avio;
            (*fmt).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
            (*fmt).format_whitelist = ffi::av_strdup(FORMATS.as_ptr());
            (*fmt).protocol_whitelist = ffi::av_strdup(NO_PROTOCOL.as_ptr());
            (*fmt).io_open = Some(refuse_open);
            // On failure avformat_open_input frees `fmt` itself (not our AVIO context).
            let r = ffi::avformat_open_input(&mut fmt, ptr::null(), ptr::null_mut(), ptr::null_mut());
            if r < 0 {
                return Err(AvioError::Open(ffmpeg_next::Error::from(r)));
            }
            this.input = Some(Input::wrap(fmt));
            let r = ffi::avformat_find_stream_info(fmt, ptr::null_mut());
            if r < 0 {
                return Err(AvioError::Open(ffmpeg_next::Error::from(r)));
            }
            Ok(this)
        }
    }
}

impl std::ops::Deref for SourceInput {
    type Target = Input;
    fn deref(&self) -> &Input {
        self.input.as_ref().expect("open until dropped")
    }
}

impl std::ops::DerefMut for SourceInput {
    fn deref_mut(&mut self) -> &mut Input {
        self.input.as_mut().expect("open until dropped")
    }
}

impl Drop for SourceInput {
    fn drop(&mut self) {
        // Close the demuxer first; it may still touch the AVIO context while closing.
        self.input.take();
        // SAFETY: we own both; ffmpeg may have replaced the buffer, so free the current one.
        unsafe {
            if !self.avio.is_null() {
                ffi::av_freep(&mut (*self.avio).buffer as *mut *mut u8 as *mut c_void);
                ffi::avio_context_free(&mut self.avio);
            }
            drop(Box::from_raw(self.opaque));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `bytes` as a participant opens what a host sends.
    fn open(bytes: &[u8]) -> Result<SourceInput, AvioError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("from-the-host");
        std::fs::write(&path, bytes).unwrap();
        SourceInput::open(Box::new(std::fs::File::open(&path).unwrap()))
    }

    /// Opens `bytes` on a thread of its own, given 10 s: an input FFmpeg takes for a network
    /// stream would wait on the network.
    fn open_within(bytes: Vec<u8>) -> Result<(), String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(open(&bytes).map(drop).map_err(|e| e.to_string()));
        });
        rx.recv_timeout(std::time::Duration::from_secs(10)).map_err(|_| "still opening after 10 s: waiting on the network".to_string())?
    }

    #[test]
    fn a_session_description_from_the_host_opens_no_socket() {
        // FFmpeg's SDP demuxer knows this by its content alone; it would open RTP sockets to
        // the address named and wait for packets there.
        let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 40000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        let err = open_within(sdp.as_bytes().to_vec()).unwrap_err();
        assert!(err.contains("Invalid argument"), "refused as a format not on the list, not {err:?}");
    }

    #[test]
    fn a_playlist_or_a_concat_script_from_the_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.mp4");
        std::fs::write(&secret, b"not for the host").unwrap();
        for text in [
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nhttp://127.0.0.1:9/segment.ts\n#EXT-X-ENDLIST\n".to_string(),
            format!("ffconcat version 1.0\nfile '{}'\n", secret.display()),
        ] {
            let err = open_within(text.into_bytes()).unwrap_err();
            assert!(err.contains("Invalid argument"), "refused as a format not on the list, not {err:?}");
        }
    }

    #[test]
    fn a_seek_the_file_asks_for_out_of_range_is_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let mut op = Opaque { source: Box::new(std::fs::File::open(&path).unwrap()), pos: 50 };
        assert_eq!(seek(&mut op, i64::MAX, 1), -1, "SEEK_CUR past i64");
        assert_eq!(seek(&mut op, i64::MAX, 2), -1, "SEEK_END past i64");
        assert_eq!(seek(&mut op, -51, 1), -1, "before the start");
        assert_eq!(op.pos, 50, "a refused seek moves nothing");
        assert_eq!(seek(&mut op, 10, 1), 60);
        assert_eq!(seek(&mut op, 0, ffi::AVSEEK_SIZE), 100);
    }
}
