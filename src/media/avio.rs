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
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len.max(0) as usize) };
    if op.pos >= op.source.size() && !op.source.growing() {
        return ffi::AVERROR_EOF;
    }
    match op.source.read_at(op.pos, out) {
        Ok(0) => ffi::AVERROR_EOF,
        Ok(n) => {
            op.pos += n as u64;
            n as c_int
        }
        // Interrupted: the player is shutting down; ffmpeg gives up on this input.
        Err(_) => ffi::AVERROR_EXIT,
    }
}

unsafe extern "C" fn seek_cb(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in `read_cb`.
    let op = unsafe { &mut *(opaque as *mut Opaque) };
    let size = op.source.size() as i64;
    let whence = whence & !ffi::AVSEEK_FORCE;
    if op.source.growing() && (whence == ffi::AVSEEK_SIZE || whence == 2) {
        // Not known yet.
        return -1;
    }
    let target = match whence {
        ffi::AVSEEK_SIZE => return size,
        0 => offset,                 // SEEK_SET
        1 => op.pos as i64 + offset, // SEEK_CUR
        2 => size + offset,          // SEEK_END
        _ => return -1,
    };
    if target < 0 {
        return -1;
    }
    op.pos = target as u64;
    target
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
