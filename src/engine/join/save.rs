//! `--save PATH`: the copy on disk, and what lets a participant killed mid-way resume it.
//!
//! Next to the copy, `PATH.syncy-progress` records which chunks are on disk for sure: the
//! copy is synced to disk before the record names a chunk, so a crash can only make the record
//! lag (those chunks are fetched again), never claim a chunk that is not there. A run that
//! finds a record for the same file (name, size, chunk size) keeps the copy and fetches only
//! the rest; the record goes once the copy is whole.
//!
//! The path is opened without following a symbolic link, and a file already there that is not
//! a copy in progress (no record beside it) is overwritten only with `--force`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::protocol::stream::Manifest;

/// The progress record.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Progress {
    name: String,
    size: u64,
    chunk_size: u32,
    chunks: u32,
    /// One bit per chunk, base64.
    have: String,
}

/// The copy being written and its progress record.
pub struct SaveFile {
    file: Arc<File>,
    record: PathBuf,
    manifest: Manifest,
    have: Vec<u8>,
    /// Chunks written since the last checkpoint.
    dirty: bool,
}

impl SaveFile {
    /// Opens `path` for `manifest`: resumes a copy an earlier run left (returning the chunks
    /// it holds), or starts a new one. A file there that no run of ours left is refused unless
    /// `force`; so is a disk without room for the file.
    pub fn open(path: &Path, manifest: &Manifest, force: bool) -> Result<(SaveFile, Vec<u32>), SaveError> {
        let record = progress_path(path);
        let bits = (manifest.chunks as usize).div_ceil(8);
        let existing = std::fs::symlink_metadata(path).ok();
        if existing.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
            return Err(SaveError::Symlink);
        }
        // Ours: a progress record beside it that reads as one (of this file or another).
        let ours = read_progress(&record, bits.max(1 << 20)).is_some();
        if existing.as_ref().is_some_and(|m| m.len() > 0) && !ours && !force {
            return Err(SaveError::Exists);
        }
        let kept = read_record(&record, manifest, bits).filter(|_| existing.as_ref().is_some_and(|m| m.len() == manifest.size));
        if kept.is_none() {
            // The file replaced frees its own blocks.
            let replaced = existing.as_ref().map_or(0, |m| m.len());
            enough_room(path, manifest.size.saturating_sub(replaced))?;
        }
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(kept.is_none()).custom_flags(libc::O_NOFOLLOW).open(path).map_err(SaveError::Io)?;
        file.set_len(manifest.size).map_err(SaveError::Io)?;
        let have = kept.unwrap_or_else(|| vec![0; bits]);
        let held: Vec<u32> = (0..manifest.chunks).filter(|&ix| have[ix as usize / 8] & (1 << (ix % 8)) != 0).collect();
        if !held.is_empty() {
            tracing::info!("resuming {}: {} of {} chunks already saved", path.display(), held.len(), manifest.chunks);
        }
        Ok((SaveFile { file: Arc::new(file), record, manifest: manifest.clone(), have, dirty: false }, held))
    }

    /// The file, for reading chunks back.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Writes chunk `index`.
    pub fn write(&mut self, index: u32, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, index as u64 * self.manifest.chunk_size as u64)?;
        if let Some(b) = self.have.get_mut(index as usize / 8) {
            *b |= 1 << (index % 8);
            self.dirty = true;
        }
        Ok(())
    }

    /// Makes what was written durable, then records it (call now and then, and at exit).
    pub fn checkpoint(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.sync_data()?;
        let p = Progress {
            name: self.manifest.name.clone(),
            size: self.manifest.size,
            chunk_size: self.manifest.chunk_size,
            chunks: self.manifest.chunks,
            have: STANDARD.encode(&self.have),
        };
        let tmp = self.record.with_extension("syncy-progress.tmp");
        // A link or a file left at the temporary name is removed, not followed.
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).open(&tmp)?;
        io::Write::write_all(&mut f, &serde_json::to_vec(&p).map_err(io::Error::other)?)?;
        drop(f);
        std::fs::rename(&tmp, &self.record)?;
        self.dirty = false;
        Ok(())
    }

    /// The copy is whole (and its hash checked): the record is not needed any more.
    pub fn finish(&mut self) {
        self.dirty = false;
        let _ = std::fs::remove_file(&self.record);
    }
}

/// A progress record, if `record` is one (read without following a link; at most about what
/// `bits` bytes of bitmap take in base64).
fn read_progress(record: &Path, bits: usize) -> Option<Progress> {
    let mut f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(record).ok()?;
    let mut text = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(&mut f, (bits as u64) * 2 + 4096), &mut text).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Why `--save` cannot write its copy.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The path is a symbolic link.
    #[error("it is a symbolic link: give the path of the file itself")]
    Symlink,
    /// A file is there that no run of ours left.
    #[error("a file is there already (a finished copy, or something else): pass --force to overwrite it, or give another path")]
    Exists,
    /// Not enough room on the disk.
    #[error("the disk has {free} MiB free and the file is {size} MiB")]
    NoRoom {
        /// MiB free.
        free: u64,
        /// MiB needed.
        size: u64,
    },
    /// Opening or sizing it failed.
    #[error(transparent)]
    Io(io::Error),
}

/// Whether the disk that holds `path` has room for `size` bytes.
fn enough_room(path: &Path, size: u64) -> Result<(), SaveError> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return Ok(()) };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a struct of ours to fill.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Ok(()); // Unknown: the writes will say.
    }
    let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    if free < size {
        return Err(SaveError::NoRoom { free: free >> 20, size: size >> 20 });
    }
    Ok(())
}

/// `PATH.syncy-progress`.
pub fn progress_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".syncy-progress");
    PathBuf::from(s)
}

/// The bitmap of a record that matches `manifest`; `None` for none, another file, or garbage.
fn read_record(record: &Path, manifest: &Manifest, bits: usize) -> Option<Vec<u8>> {
    let p = read_progress(record, bits)?;
    let same = (p.name.as_str(), p.size, p.chunk_size, p.chunks) == manifest.identity();
    let have = STANDARD.decode(&p.have).ok()?;
    if !same || have.len() != bits {
        tracing::info!("{} is for another file; starting the copy afresh", record.display());
        return None;
    }
    Some(have)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, size: u64) -> Manifest {
        let chunk_size = 4;
        Manifest {
            name: name.into(),
            size,
            chunk_size,
            chunks: size.div_ceil(chunk_size as u64) as u32,
            duration_ms: None,
            container: String::new(),
            codecs: vec![],
            levels: vec!["high".into()],
            stream: [0; 16],
        }
    }

    #[test]
    fn a_checkpointed_copy_resumes_and_anything_else_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        let m = manifest("a.mp4", 10);
        let (mut s, held) = SaveFile::open(&path, &m, false).unwrap();
        assert!(held.is_empty());
        s.write(0, b"abcd").unwrap();
        s.write(2, b"ij").unwrap();
        s.checkpoint().unwrap();
        // Written after the last checkpoint: not claimed (it may not be on disk).
        s.write(1, b"efgh").unwrap();
        drop(s);

        let (s, held) = SaveFile::open(&path, &m, false).unwrap();
        assert_eq!(held, vec![0, 2]);
        let mut buf = [0u8; 4];
        s.file().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abcd");
        drop(s);

        // Another file of the same name: afresh, and the copy is cleared.
        let (s, held) = SaveFile::open(&path, &manifest("a.mp4", 11), false).unwrap();
        assert!(held.is_empty());
        s.file().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0; 4]);
        drop(s);

        // A garbled record is no record of ours: the copy is not overwritten without --force.
        std::fs::write(progress_path(&path), b"{not json").unwrap();
        assert!(matches!(SaveFile::open(&path, &manifest("a.mp4", 11), false), Err(SaveError::Exists)));
        assert!(SaveFile::open(&path, &manifest("a.mp4", 11), true).unwrap().1.is_empty());

        // Finished: the record goes (the garbled one is still there: --force again).
        let (mut s, _) = SaveFile::open(&path, &m, true).unwrap();
        s.write(0, b"abcd").unwrap();
        s.checkpoint().unwrap();
        assert!(progress_path(&path).exists());
        s.finish();
        assert!(!progress_path(&path).exists());
    }

    #[test]
    fn a_link_or_a_file_of_someone_elses_is_not_written_through_or_over() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest("a.mp4", 10);
        let precious = dir.path().join("precious");
        std::fs::write(&precious, b"keep me").unwrap();
        // A link at the path: refused, whatever it points at.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&precious, &link).unwrap();
        assert!(matches!(SaveFile::open(&link, &m, true), Err(SaveError::Symlink)));
        // A file that is not a copy in progress: only with --force.
        assert!(matches!(SaveFile::open(&precious, &m, false), Err(SaveError::Exists)));
        assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
        let (s, _) = SaveFile::open(&precious, &m, true).unwrap();
        drop(s);
        // A link planted at the record's temporary name is replaced, not written through.
        let copy = dir.path().join("copy");
        let (mut s, _) = SaveFile::open(&copy, &m, false).unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"untouched").unwrap();
        std::os::unix::fs::symlink(&target, progress_path(&copy).with_extension("syncy-progress.tmp")).unwrap();
        s.write(0, b"abcd").unwrap();
        s.checkpoint().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
        assert!(std::fs::symlink_metadata(progress_path(&copy)).unwrap().is_file());
    }

    #[test]
    fn a_disk_without_room_is_said_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let huge = Manifest { size: 1 << 60, chunk_size: 1 << 20, chunks: 1 << 20, ..manifest("a.mp4", 10) };
        assert!(matches!(SaveFile::open(&dir.path().join("copy"), &huge, false), Err(SaveError::NoRoom { .. })));
        assert!(!dir.path().join("copy").exists());
    }
}
