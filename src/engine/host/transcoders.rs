//! The host's transcoders: one thread per rendition the host core starts,
//! writing fragmented MP4 into a private temporary directory. The host serves the bytes as
//! they land; a transcoder pauses while it is far enough ahead of its viewers and its file
//! goes when it stops.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::reads::ChunkFile;

use crate::media::transcode::{Progress, Rendition, transcode};
use crate::protocol::stream::Space;

use crate::core::host::RenditionProgress as JobProgress;

struct Running {
    stop: Arc<AtomicBool>,
    until_us: Arc<AtomicU64>,
    progress: Arc<Mutex<JobProgress>>,
    file: Arc<RenditionFile>,
    path: PathBuf,
}

/// A rendition's bytes as chunks are read from them, on the host's reader threads (which
/// open it: opening is disk work too).
pub struct RenditionFile {
    path: PathBuf,
    file: OnceLock<File>,
    /// Its transcoder's stop: once set, the file may be gone.
    stop: Arc<AtomicBool>,
}

impl ChunkFile for RenditionFile {
    fn read_chunk(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let file = match self.file.get() {
            Some(f) => f,
            // Two readers may both open it; one handle is kept.
            None => {
                let f = File::open(&self.path)?;
                self.file.get_or_init(|| f)
            }
        };
        file.read_exact_at(buf, offset)
    }

    fn withdrawn(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Every rendition being made.
pub struct Transcoders {
    input: PathBuf,
    dir: tempfile::TempDir,
    jobs: HashMap<Space, Running>,
    /// Transcoder threads alive, stopped ones included until they have ended.
    live: Arc<std::sync::atomic::AtomicUsize>,
}

/// Most transcoder threads at once, counting stopped ones still winding down: a participant
/// that asks for levels faster than threads end cannot pile them up.
pub const MAX_THREADS: usize = 6;

impl Transcoders {
    /// Transcoders of `input`, writing under a fresh temporary directory.
    pub fn new(input: &Path) -> std::io::Result<Transcoders> {
        Ok(Transcoders {
            input: input.to_path_buf(),
            dir: tempfile::Builder::new().prefix("syncy-renditions").tempdir()?,
            jobs: HashMap::new(),
            live: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        })
    }

    /// Transcoder threads alive.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Starts making `spec` from `from_us` into `space`, running until `until_us` at first.
    pub fn start(&mut self, space: Space, spec: Rendition, from_us: u64, until_us: u64) {
        let path = self.dir.path().join(format!("{space}.mp4"));
        let stop = Arc::new(AtomicBool::new(false));
        let until = Arc::new(AtomicU64::new(until_us));
        let progress = Arc::new(Mutex::new(JobProgress::default()));
        let (input, out) = (self.input.clone(), path.clone());
        let (stop_t, until_t, progress_t) = (stop.clone(), until.clone(), progress.clone());
        let live = self.live.clone();
        live.fetch_add(1, Ordering::Relaxed);
        let live_t = live.clone();
        let spawned = std::thread::Builder::new().name(format!("syncy-transcode-{space}")).spawn(move || {
            // Counted out however the thread ends.
            struct Alive(Arc<std::sync::atomic::AtomicUsize>);
            impl Drop for Alive {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let _alive = Alive(live_t);
            let lock = || progress_t.lock().unwrap_or_else(|e| e.into_inner());
            let result = transcode(&input, &out, &spec, from_us as i64, |p: Progress| {
                let produced = std::fs::metadata(&out).map_or(0, |m| m.len());
                {
                    let mut g = lock();
                    g.first_us = g.first_us.or(Some(p.first_us.max(0) as u64));
                    g.at_us = p.at_us.max(0) as u64;
                    g.produced = produced;
                }
                // Far enough ahead of every viewer: wait for them (or for the stop).
                while !stop_t.load(Ordering::Relaxed) && p.at_us.max(0) as u64 > until_t.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                !stop_t.load(Ordering::Relaxed)
            });
            let produced = std::fs::metadata(&out).map_or(0, |m| m.len());
            let mut g = lock();
            g.produced = produced;
            match result {
                Ok(t) if t.frames == 0 && !stop_t.load(Ordering::Relaxed) => {
                    g.error = Some("there is no picture to make it from there (past the end?)".into());
                }
                Ok(t) => {
                    g.done = true;
                    tracing::info!("rendition {space} done: {} frames, {produced} bytes", t.frames);
                }
                Err(e) => {
                    tracing::warn!("rendition {space} failed: {e}");
                    g.error = Some(e.to_string());
                }
            }
            if stop_t.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&out);
            }
        });
        if let Err(e) = spawned {
            live.fetch_sub(1, Ordering::Relaxed);
            progress.lock().unwrap_or_else(|e| e.into_inner()).error = Some(format!("cannot start a transcoder: {e}"));
        }
        let file = Arc::new(RenditionFile { path: path.clone(), file: OnceLock::new(), stop: stop.clone() });
        self.jobs.insert(space, Running { stop, until_us: until, progress, file, path });
    }

    /// Lets the transcoder of `space` run until `until_us` (room µs).
    pub fn set_until(&self, space: Space, until_us: u64) {
        if let Some(j) = self.jobs.get(&space) {
            j.until_us.store(until_us, Ordering::Relaxed);
        }
    }

    /// Progress of `space`.
    pub fn progress(&self, space: Space) -> Option<JobProgress> {
        self.jobs.get(&space).map(|j| j.progress.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Stops the transcoder of `space`; its file goes.
    pub fn stop(&mut self, space: Space) {
        if let Some(j) = self.jobs.remove(&space) {
            j.stop.store(true, Ordering::Relaxed);
            // Ended already (done or failed): the thread is gone and will not remove it.
            let p = j.progress.lock().unwrap_or_else(|e| e.into_inner());
            if p.done || p.error.is_some() {
                let _ = std::fs::remove_file(&j.path);
            }
        }
    }

    /// The bytes of the rendition in `space`, to read chunks from.
    pub fn file(&self, space: Space) -> Option<Arc<RenditionFile>> {
        self.jobs.get(&space).map(|j| j.file.clone())
    }
}

impl Drop for Transcoders {
    fn drop(&mut self) {
        for j in self.jobs.values() {
            j.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// The host's transcoders as its engine drives them: made with the first rendition the core
/// starts.
pub struct Renditions {
    input: PathBuf,
    transcoders: Option<Transcoders>,
}

impl Renditions {
    /// Renditions of `input` (nothing runs until the first `start`).
    pub fn new(input: &Path) -> Renditions {
        Renditions { input: input.to_path_buf(), transcoders: None }
    }

    /// Starts making `level` from `from_us` into `space`; why not, when it cannot.
    pub fn start(&mut self, space: Space, level: &str, from_us: u64, until_us: u64) -> Result<(), String> {
        let spec = crate::media::transcode::level(level).ok_or_else(|| format!("the host has no level {level}"))?;
        let t = match &mut self.transcoders {
            Some(t) => t,
            None => self.transcoders.insert(Transcoders::new(&self.input).map_err(|e| format!("the host cannot make renditions: {e}"))?),
        };
        if t.live() >= MAX_THREADS {
            return Err("the host is busy making renditions; try again in a moment".into());
        }
        tracing::info!("starting the {level} rendition {space} at {} ms", from_us / 1000);
        t.start(space, spec, from_us, until_us);
        Ok(())
    }

    /// Stops the transcoder of `space`; its file goes.
    pub fn stop(&mut self, space: Space) {
        if let Some(t) = &mut self.transcoders {
            t.stop(space);
        }
    }

    /// Lets the transcoder of `space` run until `until_us` (when given) and says how far it
    /// has got.
    pub fn check(&self, space: Space, until_us: Option<u64>) -> Option<JobProgress> {
        let t = self.transcoders.as_ref()?;
        if let Some(until) = until_us {
            t.set_until(space, until);
        }
        t.progress(space)
    }

    /// The bytes of the rendition in `space`, to read chunks from.
    pub fn file(&self, space: Space) -> Option<Arc<RenditionFile>> {
        self.transcoders.as_ref()?.file(space)
    }
}
