//! The participant engine: gets into the room (`connect`), then lives through it (`session`):
//! chunks into the sans-IO chunk stores (and, with `--save`, a file), the demuxer reading them
//! through playback, the levels switching, an in-order hash for `complete`, and reconnection
//! with everything held kept when the link drops.

mod connect;
mod disk;
mod relays;
pub mod save;
mod session;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use color_eyre::eyre::Result;
use tokio::sync::mpsc;

use self::connect::{Reconnected, Setup, close_link, first_connection};
pub use self::session::JoinError;
use self::session::{Session, outcome};
use crate::engine::{Command, Event};
use crate::net::peer::NatOptions;
use crate::player::screen::Screen;
use crate::protocol::guest::GuestSecret;
use crate::protocol::link::Link;

/// How a participant runs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The room link.
    pub link: Link,
    /// Display name.
    pub name: String,
    /// The participant's secret: its key in a room (what a host bans) is derived from it.
    pub guest: GuestSecret,
    /// Keep a full copy here.
    pub save: Option<PathBuf>,
    /// `--force`: `--save` may overwrite a file that is not a copy in progress.
    pub force: bool,
    /// Memory bound for chunks.
    pub buffer: u64,
    /// Override for the ICE bind address.
    pub ice_addr: Option<String>,
    /// STUN/TURN servers and the ICE policy.
    pub nat: NatOptions,
    /// Extra trusted certificates for a `syncys://` link's server.
    pub tls_ca: Option<PathBuf>,
    /// How to show the picture.
    pub render: Render,
    /// Play in mpv (with these extra mpv arguments) instead of, or beside, the built-in view.
    pub mpv: Option<Vec<String>>,
    /// Decode and follow the room clock. Off: only fetch the file in order and verify it
    /// (the throughput benchmark), never holding the room.
    pub playback: bool,
    /// Play sound on the default output device (when there is one).
    pub sound: bool,
    /// Download limit, bytes per second (0: none).
    pub download_limit: u64,
    /// `auto` or a level (`high`, `medium`, `low`).
    pub quality: String,
    /// Relay chunks to others in the room, with this upload limit (bytes per second, 0: none);
    /// `None`: relay nothing (`--no-relay`).
    pub relay: Option<u64>,
}

/// `--buffer`'s default: 256 MiB of chunks in memory.
pub const DEFAULT_BUFFER: u64 = 256 << 20;

impl JoinOptions {
    /// `syncy join LINK` with every default (the command line's defaults are these too: see
    /// the test in `cli`).
    pub fn new(link: Link) -> JoinOptions {
        // A new person each time, unless the caller keeps one (`syncy join` does).
        let guest = GuestSecret::random();
        JoinOptions {
            name: default_name(&guest, &link.room),
            link,
            guest,
            save: None,
            force: false,
            buffer: DEFAULT_BUFFER,
            ice_addr: None,
            nat: NatOptions::default(),
            tls_ca: None,
            render: Render::None,
            mpv: None,
            playback: true,
            sound: true,
            download_limit: DEFAULT_DOWNLOAD_LIMIT,
            quality: "auto".into(),
            relay: Some(0),
        }
    }
}

/// A participant's name unless given: `guest-` and the start of its key's fingerprint in the
/// room, so the host can tell guests apart without learning anyone's login name.
pub fn default_name(guest: &GuestSecret, room: &str) -> String {
    format!("guest-{}", &guest.key_for(room).public().fingerprint()[..4])
}

/// Where the picture goes.
#[derive(Clone)]
pub enum Render {
    /// Decode and keep time, draw nothing.
    None,
    /// Publish frames and status on this screen (a view draws it).
    Screen(Arc<Screen>),
}

impl std::fmt::Debug for Render {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Render::None => "None",
            Render::Screen(_) => "Screen",
        })
    }
}

impl Render {
    fn screen(&self) -> Option<&Arc<Screen>> {
        match self {
            Render::None => None,
            Render::Screen(s) => Some(s),
        }
    }
}

/// Why the engine stopped without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinEnd {
    /// The user quit.
    Quit,
    /// The host ended the stream.
    StreamEnd(String),
}

/// Joins a room and streams until quit, end of stream, or failure.
pub async fn run(opts: JoinOptions, events: mpsc::UnboundedSender<Event>, mut commands: mpsc::UnboundedReceiver<Command>) -> Result<JoinEnd> {
    let mut conn = match first_connection(&opts, &events).await {
        Ok(c) => c,
        Err(Setup::Retry(e) | Setup::Stalled(e) | Setup::Final(e)) => return Err(e),
        Err(Setup::Ended(end)) => return Ok(end),
    };
    let manifest = conn.manifest.clone();
    let path = conn.announce(&events).await;
    let _ = events.send(Event::Manifest {
        name: manifest.name.clone(),
        size: manifest.size,
        chunks: manifest.chunks,
        chunk_size: manifest.chunk_size,
        duration_ms: manifest.duration_ms,
        codecs: manifest.codecs.clone(),
        levels: manifest.levels.clone(),
    });
    let mut session = Session::start(opts.clone(), manifest.clone(), conn.host_key, events.clone()).await?;
    session.path = path;
    let ended = async {
        loop {
            let why = match outcome(session.turn(&mut conn, &mut commands).await?) {
                Ok(end) => return Ok(end),
                Err(why) => why,
            };
            // Keep every store, the picture and the hash; only the link is new.
            close_link(&conn.link).await;
            match session.back_in(&opts, why).await? {
                Reconnected::Again(c) => {
                    session.path = c.announce(&events).await;
                    conn = c;
                }
                Reconnected::Ended(end) => return Ok(end),
            }
        }
    }
    .await;
    let end = match ended {
        Ok(end) => end,
        Err(e) => {
            // Given up: what was handed to the disk still lands, and playback and the view
            // close, before the error is told.
            close_link(&conn.link).await;
            let _ = session.finish(&JoinEnd::Quit).await;
            return Err(e);
        }
    };
    tracing::info!("leaving: {end:?}");
    session.finish(&end).await?;
    close_link(&conn.link).await;
    tracing::info!("link closed");
    Ok(end)
}

/// `--download-limit`'s default: 50 MiB/s.
pub const DEFAULT_DOWNLOAD_LIMIT: u64 = 50 << 20;
