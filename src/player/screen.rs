//! What the participant engine publishes for its view: the latest frame and a status snapshot.
//! The view only reads it; it never reaches into the engine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::core::api::Event;
use crate::core::api::JoinSnapshot;
use crate::media::decode::{FrameQueue, VideoFrame};

/// What the participant's view shows: the latest snapshot, and what only a view keeps (the
/// file's facts, the download history, the room's roster, the log).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// The participant now (the same snapshot its headless `stats` print).
    pub now: JoinSnapshot,
    /// Participant's name.
    pub name: String,
    /// File name.
    pub file: String,
    /// Media duration.
    pub duration_ms: Option<u64>,
    /// Levels the room offers.
    pub levels: Vec<String>,
    /// Latest notice or error for the user.
    pub message: Option<String>,
    /// The join link (the `y` key copies it).
    pub link: String,
    /// How the link reaches the host ("direct", "relayed (TURN)").
    pub path: Option<String>,
    /// Download rate once a second, oldest first (at most [`HISTORY`]).
    pub down_history: Vec<u64>,
    /// The room as the host last described it: name and what they are doing.
    pub peers: Vec<(String, String)>,
    /// Notices, joins and errors for the log pane, oldest first (at most [`LOG_LINES`]).
    pub log: Vec<String>,
}

/// Seconds of download history kept.
pub const HISTORY: usize = 60;
/// Slices in the buffer map.
pub const PIECE_BINS: usize = 256;
/// Log lines kept.
pub const LOG_LINES: usize = 200;

impl Status {
    /// Folds an engine event into the log pane and the message line.
    pub fn log_event(&mut self, ev: &Event) {
        match ev {
            Event::Error { message } => {
                self.message = Some(message.clone());
                self.note(ev.to_string());
            }
            Event::Path(p) => {
                self.path = Some(p.kind.words().to_string());
                self.note(ev.to_string());
            }
            Event::Fallback { .. } | Event::Reconnecting { .. } | Event::Reconnected { .. } => {
                self.message = Some(ev.to_string());
                self.note(ev.to_string());
            }
            Event::Warning { .. } | Event::State { .. } | Event::Manifest { .. } | Event::Resumed { .. } | Event::Complete { .. } => self.note(ev.to_string()),
            _ => {}
        }
    }

    /// Adds a log line, dropping the oldest beyond [`LOG_LINES`].
    pub fn note(&mut self, line: String) {
        self.log.push(line);
        if self.log.len() > LOG_LINES {
            self.log.remove(0);
        }
    }

    /// Records a download-rate sample, dropping the oldest beyond [`HISTORY`].
    pub fn sample_down(&mut self, bps: u64) {
        self.down_history.push(bps);
        if self.down_history.len() > HISTORY {
            self.down_history.remove(0);
        }
    }
}

/// Shared between the engine (writer) and the view (reader).
#[derive(Default)]
pub struct Screen {
    frame: Mutex<(u64, Option<Arc<VideoFrame>>)>,
    /// Bumped on every status update, so a view copies the status only when it changed.
    version: AtomicU64,
    status: Mutex<Status>,
    queue: Mutex<Option<Arc<FrameQueue>>>,
    closed: AtomicBool,
}

impl Screen {
    /// An empty screen.
    pub fn new() -> Arc<Screen> {
        Arc::new(Screen::default())
    }

    /// A new frame to show (replaces one not yet drawn: the view drops what it cannot draw).
    pub fn set_frame(&self, frame: Arc<VideoFrame>) {
        let mut f = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        f.0 += 1;
        f.1 = Some(frame);
    }

    /// The latest frame and its number.
    pub fn frame(&self) -> (u64, Option<Arc<VideoFrame>>) {
        self.frame.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Updates the status.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Changes with every status update.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The number of the latest frame (0 before the first).
    pub fn frame_number(&self) -> u64 {
        self.frame.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// A copy of the status.
    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Lets the view tell the decoder what size to scale to.
    pub fn attach_queue(&self, q: Arc<FrameQueue>) {
        *self.queue.lock().unwrap_or_else(|e| e.into_inner()) = Some(q);
    }

    /// Asks the decoder for frames of this pixel size.
    pub fn set_target(&self, target: (u32, u32)) {
        if let Some(q) = self.queue.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            q.set_target(Some(target));
        }
    }

    /// The engine stopped: the view should go.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether the engine stopped.
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The video's size, once known.
    pub fn video_size(&self) -> Option<(u32, u32)> {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.as_ref().and_then(|q| q.info()).map(|i| (i.width, i.height))
    }
}
