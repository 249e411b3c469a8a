//! `--save PATH`: the copy on disk, and what lets a participant killed mid-way resume it.
//!
//! Next to the copy, `PATH.syncy-progress` records which chunks are on disk for sure: the
//! copy is synced to disk before the record names a chunk, so a crash can only make the record
//! lag (those chunks are fetched again), never claim a chunk that is not there. A run that
//! finds a record for the same file (name, size, chunk size) keeps the copy and fetches only
//! the rest; the record goes once the copy is whole. The copy's sha256 is checked at the end
//! as always, so nothing wrong can pass unnoticed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
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
    /// it holds), or starts a new one.
    pub fn open(path: &Path, manifest: &Manifest) -> io::Result<(SaveFile, Vec<u32>)> {
        let record = progress_path(path);
        let bits = (manifest.chunks as usize).div_ceil(8);
        let kept = read_record(&record, manifest, bits).filter(|_| std::fs::metadata(path).is_ok_and(|m| m.len() == manifest.size));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(kept.is_none()).open(path)?;
        file.set_len(manifest.size)?;
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
        std::fs::write(&tmp, serde_json::to_vec(&p).map_err(io::Error::other)?)?;
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

/// `PATH.syncy-progress`.
pub fn progress_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".syncy-progress");
    PathBuf::from(s)
}

/// The bitmap of a record that matches `manifest`; `None` for none, another file, or garbage.
fn read_record(record: &Path, manifest: &Manifest, bits: usize) -> Option<Vec<u8>> {
    let text = std::fs::read(record).ok()?;
    let p: Progress = serde_json::from_slice(&text).ok()?;
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
        }
    }

    #[test]
    fn a_checkpointed_copy_resumes_and_anything_else_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        let m = manifest("a.mp4", 10);
        let (mut s, held) = SaveFile::open(&path, &m).unwrap();
        assert!(held.is_empty());
        s.write(0, b"abcd").unwrap();
        s.write(2, b"ij").unwrap();
        s.checkpoint().unwrap();
        // Written after the last checkpoint: not claimed (it may not be on disk).
        s.write(1, b"efgh").unwrap();
        drop(s);

        let (s, held) = SaveFile::open(&path, &m).unwrap();
        assert_eq!(held, vec![0, 2]);
        let mut buf = [0u8; 4];
        s.file().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abcd");
        drop(s);

        // Another file of the same name: afresh, and the copy is cleared.
        let (s, held) = SaveFile::open(&path, &manifest("a.mp4", 11)).unwrap();
        assert!(held.is_empty());
        s.file().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0; 4]);
        drop(s);

        // A garbled record: afresh.
        std::fs::write(progress_path(&path), b"{not json").unwrap();
        assert!(SaveFile::open(&path, &manifest("a.mp4", 11)).unwrap().1.is_empty());

        // Finished: the record goes.
        let (mut s, _) = SaveFile::open(&path, &m).unwrap();
        s.write(0, b"abcd").unwrap();
        s.checkpoint().unwrap();
        assert!(progress_path(&path).exists());
        s.finish();
        assert!(!progress_path(&path).exists());
    }
}
