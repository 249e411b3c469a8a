//! Command-line interface (DESIGN §9). Parsing only; `main` turns these into engines.

pub mod config;
/// Sizes and rates with units (in the core: the headless command reader parses them too).
pub use crate::core::units;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cli::units::parse_bytes;

/// Peer-to-peer watch party for the terminal.
///
/// The host's video file streams straight from the host to every participant over WebRTC data
/// channels; a small signaling server only introduces peers and never sees the video or the
/// room key.
#[derive(Debug, Parser)]
#[command(name = "syncy", version, propagate_version = true)]
pub struct Cli {
    /// Write logs to this file instead of standard error (RUST_LOG sets the level; default warn).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// On failure, print the whole error report (causes, and a backtrace with RUST_BACKTRACE=1)
    /// instead of one line.
    #[arg(long, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run a signaling server: rooms and introductions only, no media.
    Serve(ServeArgs),
    /// Host a room streaming FILE: at a terminal, the dashboard (link, peers, upload, playback;
    /// `?` lists the keys); otherwise, or with --headless, the join link and plain or JSON lines.
    Host(HostArgs),
    /// Join a room from its link.
    Join(JoinArgs),
    /// Everything in one process on a generated clip: a host and participants on loopback,
    /// shown as the host's dashboard with one participant's picture (`q` quits).
    Demo(DemoArgs),
    /// Write a generated H.264/AAC clip (moving test pattern and a tone).
    Sample(SampleArgs),
    /// Measure throughput: Syncy against a bare data channel and plain TCP, on loopback.
    Bench(BenchArgs),
    /// Check from this machine what a room needs: the signaling server (of LINK, or the config
    /// file's), each STUN and TURN server, UDP; say what works and what that means. Only the
    /// servers you gave are contacted.
    Doctor(DoctorArgs),
}

/// `syncy doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A room link: its signaling server is checked (the room itself is not joined).
    pub link: Option<String>,
    /// Check this signaling server (ws:// or wss://) instead of the config file's.
    #[arg(long, value_name = "URL", conflicts_with = "link")]
    pub server: Option<String>,
    /// Also trust the certificates in this PEM file for a wss:// server.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// JSON lines on stdout: a `check` event per finding, then `doctor` with the verdict.
    #[arg(long)]
    pub headless: bool,
    /// STUN and TURN servers to check (the config file's when not given).
    #[command(flatten)]
    pub nat: NatArgs,
}

/// Limits of a signaling server.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Participants per room (the host is not counted).
    #[arg(long, default_value_t = 20)]
    pub max_peers: usize,
    /// Rooms per server.
    #[arg(long, default_value_t = 1000)]
    pub max_rooms: usize,
    /// Rooms opened from one IP address (IPv6: one /64), so one machine cannot take them all.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_rooms_per_ip: usize,
    /// Connections in all, in a room or not (at most half the process's open-file limit).
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_conns: usize,
    /// Connections from one IP address (IPv6: one /64); a household behind one router shares
    /// this.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_conns_per_ip: usize,
    /// Largest signaling message.
    #[arg(long, default_value = "64KiB", value_parser = parse_bytes, value_name = "SIZE")]
    pub max_message: u64,
    /// Signaling messages per second per connection (bursts of 4x are allowed).
    #[arg(long, default_value_t = 50.0)]
    pub msg_rate: f64,
    /// Close a connection silent for this many seconds (clients ping every 30).
    #[arg(long, default_value_t = 120)]
    pub idle_timeout: u64,
}

impl LimitArgs {
    /// As a server configuration.
    pub fn config(&self) -> crate::server::ServerConfig {
        crate::server::ServerConfig {
            max_peers: self.max_peers,
            max_rooms: self.max_rooms,
            max_rooms_per_source: self.max_rooms_per_ip.max(1),
            max_conns: self.max_conns.max(1),
            max_conns_per_source: self.max_conns_per_ip.max(1),
            max_message: self.max_message as usize,
            msg_rate: self.msg_rate,
            msg_burst: self.msg_rate * 4.0,
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout.max(1)),
            ..Default::default()
        }
    }
}

/// TLS for a signaling server.
#[derive(Debug, Args, Clone)]
pub struct TlsServerArgs {
    /// Serve wss:// (links become syncys://) with this PEM certificate chain; its names must
    /// cover the host name in the link.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// NAT traversal for the WebRTC links. Each of these, when not given, comes from the
/// environment (`SYNCY_STUN`, `SYNCY_TURN`, `SYNCY_TURN_USER`, `SYNCY_TURN_PASS`,
/// `SYNCY_ICE_POLICY`) or the config file (`syncy doctor` says which file).
#[derive(Debug, Args, Clone)]
pub struct NatArgs {
    /// A STUN server, `stun:HOST:PORT`, to learn this side's public address (repeatable).
    /// None by default: nothing leaves the machine unless you name a server.
    #[arg(long, value_name = "URL", value_parser = parse_stun)]
    pub stun: Vec<String>,
    /// A TURN server to relay through when no direct path works (repeatable; needs a user and
    /// a password): `turn:HOST:PORT` over UDP, `turn:HOST:PORT?transport=tcp` over TCP (for
    /// networks that block UDP), `turns:HOST:PORT` over TLS.
    #[arg(long, value_name = "URL", value_parser = parse_turn)]
    pub turn: Vec<String>,
    /// TURN user name.
    #[arg(long, value_name = "USER")]
    pub turn_user: Option<String>,
    /// TURN password. Better in SYNCY_TURN_PASS or the config file: a command line is visible
    /// to every user of this machine.
    #[arg(long, value_name = "PASS")]
    pub turn_pass: Option<crate::secret::Secret>,
    /// Which paths ICE may use: `all` (the default), or `relay` for TURN-relayed paths only
    /// (neither side learns the other's address; needs a TURN server).
    #[arg(long, value_enum, value_name = "POLICY")]
    pub ice_policy: Option<IcePolicy>,
}

/// `--ice-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IcePolicy {
    /// Direct, reflexive and relayed paths.
    All,
    /// Relayed paths only.
    Relay,
}

impl NatArgs {
    /// As the peer link's options, flags over the environment and the config file.
    pub fn options(&self, cfg: &crate::cli::config::Config) -> Result<crate::net::peer::NatOptions, crate::error::UsageError> {
        use crate::error::UsageError;
        let or = |flag: &Vec<String>, file: &Vec<String>| if flag.is_empty() { file.clone() } else { flag.clone() };
        let (stun, turn) = (or(&self.stun, &cfg.stun), or(&self.turn, &cfg.turn));
        let turn_user = self.turn_user.clone().or_else(|| cfg.turn_user.clone()).unwrap_or_default();
        if self.turn_pass.is_some() {
            eprintln!("syncy: warning: --turn-pass is visible to every user of this machine (ps); SYNCY_TURN_PASS or the config file keep it private");
        }
        let turn_pass = self.turn_pass.clone().or_else(|| cfg.turn_pass.clone()).unwrap_or_default();
        if !turn.is_empty() && (turn_user.is_empty() || turn_pass.is_empty()) {
            return Err(UsageError(
                "a TURN server needs a user and a password: --turn-user and SYNCY_TURN_PASS (or turn_user and turn_pass in the config file)".into(),
            ));
        }
        let relay_only = match self.ice_policy {
            Some(p) => p == IcePolicy::Relay,
            None => cfg.ice_policy.as_deref() == Some("relay"),
        };
        if relay_only && turn.is_empty() {
            return Err(UsageError("--ice-policy relay needs a TURN server (--turn URL --turn-user USER, and the password in SYNCY_TURN_PASS)".into()));
        }
        Ok(crate::net::peer::NatOptions { stun, turn, turn_user, turn_pass, relay_only })
    }
}

/// A `stun:`/`stuns:` URL.
fn parse_label(s: &str) -> Result<String, String> {
    if crate::protocol::identity::valid_label(s) {
        Ok(s.to_string())
    } else {
        Err(format!("a room label is 1-{} characters of A-Z a-z 0-9 _ - (the room id adds this host's fingerprint)", crate::protocol::identity::MAX_LABEL_LEN))
    }
}

pub fn parse_stun(s: &str) -> Result<String, String> {
    parse_ice_url(s, &["stun:", "stuns:"])
}

/// A `turn:`/`turns:` URL.
pub fn parse_turn(s: &str) -> Result<String, String> {
    parse_ice_url(s, &["turn:", "turns:"])
}

fn parse_ice_url(s: &str, schemes: &[&str]) -> Result<String, String> {
    let rest = schemes.iter().find_map(|p| s.strip_prefix(p)).ok_or_else(|| format!("expected a URL starting with {}", schemes.join(" or ")))?;
    let host_port = rest.split('?').next().unwrap_or("");
    if host_port.is_empty() || host_port.contains('/') {
        return Err(format!("expected {}HOST[:PORT], got {s:?}", schemes[0]));
    }
    Ok(s.to_string())
}

impl TlsServerArgs {
    /// The rustls configuration, when TLS is asked for.
    pub fn server_config(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, crate::net::tls::TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => crate::net::tls::server_config(cert, key).map(Some),
            _ => Ok(None),
        }
    }
}

/// `syncy serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// TLS.
    #[command(flatten)]
    pub tls: TlsServerArgs,
    /// Server limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Be one of several servers behind one name, sharing their rooms through the Redis at
    /// URL (redis://HOST:PORT/, redis+unix:///PATH): a host on one and a participant on
    /// another meet. Every server of the cluster needs the same cluster key, in
    /// SYNCY_CLUSTER_KEY or --cluster-key-file. A Redis password is better in SYNCY_CLUSTER
    /// than here, where every user of this machine sees it (ps).
    #[arg(long, value_name = "URL", env = "SYNCY_CLUSTER", hide_env_values = true)]
    pub cluster: Option<crate::secret::Secret>,
    /// A file whose first line is the cluster key (at least 16 bytes; the same on
    /// every server of the cluster, secret from everyone else).
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub cluster_key_file: Option<PathBuf>,
}

impl ServeArgs {
    /// The cluster's URL and key, if a cluster is asked for.
    pub fn cluster(&self) -> Result<Option<(String, crate::secret::Secret)>, crate::error::UsageError> {
        let Some(url) = self.cluster.as_ref().map(|u| u.expose().to_string()) else { return Ok(None) };
        let from_env = std::env::var("SYNCY_CLUSTER").is_ok_and(|v| v == url);
        let has_password = url.split("://").nth(1).is_some_and(|rest| rest.split('/').next().unwrap_or("").contains('@')) || url.contains("password=");
        if !from_env && has_password {
            eprintln!("syncy: warning: the Redis password in --cluster is visible to every user of this machine (ps); SYNCY_CLUSTER keeps it private");
        }
        let key = match &self.cluster_key_file {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| crate::error::UsageError(format!("--cluster-key-file {}: {e}", f.display())))?;
                text.lines().next().unwrap_or("").trim().to_string()
            }
            None => std::env::var("SYNCY_CLUSTER_KEY").unwrap_or_default().trim().to_string(),
        };
        if key.is_empty() {
            return Err(crate::error::UsageError(
                "--cluster needs the cluster key, the same on every server: in SYNCY_CLUSTER_KEY or a file (--cluster-key-file FILE)".into(),
            ));
        }
        Ok(Some((url, crate::secret::Secret::new(key))))
    }
}

/// `syncy host`.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// The video file to stream.
    pub file: PathBuf,
    /// Use this signaling server (ws://HOST:PORT/ or wss://HOST:PORT/) instead of embedding one.
    /// Without --server or --listen, SYNCY_SERVER or the config file's `server` is used when set.
    #[arg(long, value_name = "URL", conflicts_with_all = ["listen", "tls_cert"])]
    pub server: Option<String>,
    /// Also trust the certificates in this PEM file for a wss:// server (a private or
    /// self-signed certificate); the system's trusted roots are always used.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// TLS for the embedded signaling server.
    #[command(flatten)]
    pub tls: TlsServerArgs,
    /// Where the embedded signaling server listens [default: 0.0.0.0:7878, every interface;
    /// `[::]:7878` for IPv6 too; 127.0.0.1:7878 for this machine only].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The host name or address to put in the link. Without it, a wildcard --listen gives a
    /// link for each of this machine's addresses, saying from where each works.
    #[arg(long, value_name = "HOST")]
    pub advertise: Option<String>,
    /// Ask the router to forward the signaling port (UPnP IGD, else NAT-PMP), so friends on
    /// the internet can reach the embedded server; the mapping is removed on exit. Also `upnp = true` in the
    /// config file, or SYNCY_UPNP=1.
    #[arg(long, conflicts_with = "no_upnp")]
    pub upnp: bool,
    /// No port mapping, whatever the config file says.
    #[arg(long)]
    pub no_upnp: bool,
    /// A label for the room: its id becomes LABEL-FINGERPRINT of this host's key, with a key
    /// of its own (one host can keep several rooms). Without it the id is the fingerprint.
    /// Up to 41 characters of A-Z a-z 0-9 _ -.
    #[arg(long, value_name = "LABEL", value_parser = parse_label)]
    pub room: Option<String>,
    /// A new host identity, hence a new link: the old link stops working. Without it the
    /// host keeps its identity (in the config dir, private) and the same link across restarts.
    #[arg(long)]
    pub new_room: bool,
    /// Your display name [default: the config file's `name`, else "host"].
    #[arg(long)]
    pub name: Option<String>,
    /// No dashboard: JSON lines of events on stdout, commands on stdin.
    #[arg(long)]
    pub headless: bool,
    /// Chunk payload size, 16KiB to 192KiB (a file may have at most 4,194,304 chunks: 256 GiB
    /// of 64 KiB chunks).
    #[arg(long, default_value = "64KiB", value_parser = parse_bytes, value_name = "SIZE")]
    pub chunk_size: u64,
    /// Let each newcomer in by hand: the dashboard shows who knocks (`a` lets the oldest in,
    /// `d` turns them away); headless or plain, type `approve ID|NAME` or `deny ID|NAME`. Any
    /// host can `kick ID|NAME` and `ban ID|NAME` (the dashboard: Tab selects, `k` kicks, `b`
    /// twice bans): a ban turns that participant's identity away for the room's life, across restarts
    /// (the list is in the config dir: `bans/ROOM`).
    #[arg(long)]
    pub approve: bool,
    /// Also serve the room over plain HTTP on this address (e.g. 0.0.0.0:8080), for
    /// participants whose WebRTC link does not come up: they fall back to it by themselves.
    /// Requests need a token derived from the room key; answers are signed with it.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Upload limit for the whole room, shared fairly between participants (units allowed:
    /// 10MiB/s, 80Mb/s; 0 for none).
    #[arg(long, default_value = "10MiB/s", value_parser = parse_bytes, value_name = "RATE")]
    pub upload_limit: u64,
    /// Bind WebRTC (ICE) to this address instead of following the loopback rule.
    #[arg(long, value_name = "ADDR")]
    pub ice_addr: Option<String>,
    /// Start playing at once (a room starts paused otherwise).
    #[arg(long)]
    pub autoplay: bool,
    /// Keep playing while a participant is buffering (by default the room waits for them).
    #[arg(long)]
    pub no_wait: bool,
    /// Only the host may play, pause and seek (participants' requests are refused).
    #[arg(long)]
    pub host_only_control: bool,
    /// NAT traversal.
    #[command(flatten)]
    pub nat: NatArgs,
    /// Limits of the embedded signaling server.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `syncy join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The room link, `syncy://HOST:PORT/ROOM#KEY` (quote it: # starts a shell comment). It
    /// holds the room key, and a command line is visible to every user of this machine (`ps`)
    /// and kept in shell history: --link-file or SYNCY_LINK keep it out of both.
    #[arg(env = "SYNCY_LINK", hide_env_values = true)]
    pub link: Option<String>,
    /// Read the link from this file (its first line), instead of the command line.
    #[arg(long, value_name = "PATH", conflicts_with = "link")]
    pub link_file: Option<PathBuf>,
    /// Your display name [default: the config file's `name`, else guest-XXXX: from your key in
    /// the room, never your login name].
    #[arg(long)]
    pub name: Option<String>,
    /// No dashboard: JSON lines of events on stdout, commands on stdin.
    #[arg(long)]
    pub headless: bool,
    /// Also write every chunk to this file, keeping a full copy (a copy left half-way by an
    /// earlier run is resumed; a symbolic link is refused).
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// Let --save overwrite a file that is there already and is not a copy in progress.
    #[arg(long, requires = "save")]
    pub force: bool,
    /// Memory for chunks; the oldest far-behind chunks are evicted first.
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes, value_name = "SIZE")]
    pub buffer: u64,
    /// Download limit (units allowed: 50MiB/s, 12Mb/s; 0 for none): requests are paced so the
    /// host sends at about this rate.
    #[arg(long, default_value = "50MiB/s", value_parser = parse_bytes, value_name = "RATE")]
    pub download_limit: u64,
    /// Upload to other participants (units allowed: 2MiB/s, 16Mb/s; 0 for none). Relaying
    /// passes chunks you hold to others in the room over direct links, so the host's upload
    /// serves a larger room; it shows your address to them (as it does to the host).
    #[arg(long, default_value = "0", value_parser = parse_bytes, value_name = "RATE", conflicts_with = "no_relay")]
    pub relay_limit: u64,
    /// Relay nothing: take every chunk from the host and link with nobody else in the room.
    #[arg(long)]
    pub no_relay: bool,
    /// Picture quality: `auto` follows the measured throughput and the buffer (down fast when
    /// the buffer drains, up slowly); `high` is the host's original file, `medium` (720p,
    /// ~2.6 Mb/s) and `low` (480p, ~1.1 Mb/s) are renditions the host makes when it can.
    /// With --save or --player mpv it stays `high`.
    #[arg(long, value_parser = ["auto", "high", "medium", "low"], default_value = "auto", value_name = "LEVEL")]
    pub quality: String,
    /// Bind WebRTC (ICE) to this address instead of following the loopback rule.
    #[arg(long, value_name = "ADDR")]
    pub ice_addr: Option<String>,
    /// Also trust the certificates in this PEM file when the link is syncys:// (a server with
    /// a private or self-signed certificate); the system's trusted roots are always used.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// NAT traversal.
    #[command(flatten)]
    pub nat: NatArgs,
    /// How to draw the picture: auto asks the terminal and draws kitty or sixel where its
    /// answers show they work, half-blocks otherwise (and in tmux or screen, which answer for
    /// themselves); none runs the whole pipeline without drawing (the default with
    /// --headless, whose stdout carries JSON).
    #[arg(long, value_enum, default_value_t = RenderArg::Auto)]
    pub render: RenderArg,
    /// The most picture sent to the terminal, bytes per second (units allowed: 2MiB/s,
    /// 16Mb/s; 0 for none): fewer pictures a second, then smaller ones, to stay under it.
    /// Default: 2MiB/s over SSH (SSH_CONNECTION or SSH_TTY set), none otherwise.
    #[arg(long, value_parser = parse_bytes, value_name = "RATE")]
    pub max_picture_bandwidth: Option<u64>,
    /// Play in mpv, with sound, kept on the room clock (mpv reads the stream from a local
    /// HTTP server on 127.0.0.1). The terminal then shows the status only.
    #[arg(long, value_enum, default_value_t = PlayerArg::Builtin)]
    pub player: PlayerArg,
    /// No sound from the built-in player (it plays on the default output device otherwise,
    /// when there is one).
    #[arg(long)]
    pub no_sound: bool,
    /// Extra arguments for mpv, split on spaces (e.g. "--vo=null --ao=null").
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub mpv_args: Option<String>,
}

/// `--player` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlayerArg {
    /// The picture in the terminal.
    Builtin,
    /// mpv.
    Mpv,
}

/// `--render` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderArg {
    /// Best the terminal supports.
    Auto,
    /// Kitty graphics protocol.
    Kitty,
    /// Sixel graphics.
    Sixel,
    /// Unicode half blocks with 24-bit colour (works everywhere).
    Halfblocks,
    /// No picture.
    None,
}

/// `syncy demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Participants to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub participants: u32,
    /// Length of the generated clip in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// How the dashboard draws the first participant's picture (as `join --render`; none
    /// shows the dashboard without it). Without a terminal on stdout the demo prints progress
    /// lines instead and ends once every copy is verified.
    #[arg(long, value_enum, default_value_t = RenderArg::Auto)]
    pub render: RenderArg,
}

/// `syncy sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Output file; the extension picks the container (.mp4, .mkv, .webm needs VP9: use .mkv).
    pub out: PathBuf,
    /// Seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360", value_parser = parse_wxh)]
    pub size: (u32, u32),
    /// Video bit rate (bits per second; units allowed, e.g. 4Mb/s).
    #[arg(long, default_value = "2Mb/s", value_parser = parse_bytes)]
    pub bitrate: u64,
    /// Sound (AAC) bit rate.
    #[arg(long, default_value = "128kb/s", value_parser = parse_bytes)]
    pub audio_bitrate: u64,
    /// MP4 only: where the index goes (moov-at-end is ffmpeg's default; faststart puts it
    /// first; fragmented writes fragments).
    #[arg(long, value_enum, default_value_t = Mp4LayoutArg::MoovAtEnd)]
    pub mp4_layout: Mp4LayoutArg,
}

/// `--mp4-layout` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mp4LayoutArg {
    /// Index after the media data.
    MoovAtEnd,
    /// Index first.
    Faststart,
    /// Fragmented MP4.
    Fragmented,
}

/// `syncy bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which measurements: streaming throughput, playback (sync, seek, first frame, render),
    /// or both.
    #[arg(long, value_enum, default_value_t = BenchSuite::All)]
    pub suite: BenchSuite,
    /// Room sizes for the playback suite (comma-separated).
    #[arg(long, default_value = "3,10", value_delimiter = ',')]
    pub participants: Vec<u32>,
    /// File size to stream.
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes, value_name = "SIZE")]
    pub size: u64,
    /// Participant counts to measure (comma-separated).
    #[arg(long, default_value = "1,4,10,20", value_delimiter = ',')]
    pub peers: Vec<u32>,
    /// Repetitions of the single-link measurements (medians are compared).
    #[arg(long, default_value_t = 3)]
    pub reps: u32,
    /// Participants in the soak.
    #[arg(long, default_value_t = 20)]
    pub soak_participants: usize,
    /// Minutes the soak (or the simulated room) plays.
    #[arg(long, default_value_t = 10)]
    pub minutes: u32,
    /// Participants in the simulated room.
    #[arg(long, default_value_t = 100)]
    pub sim_participants: usize,
    /// The relay suite's seed: who joins when, with what uplink and round trip (the tables in
    /// BENCHMARKS.md are seed 3; a change to scheduling is worth a look at a few).
    #[arg(long, default_value_t = 3)]
    pub seed: u64,
    /// Write the results as Markdown here too.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// The picture suite's inner half, inside a terminal: where to write its figures.
    #[arg(long, hide = true, value_name = "FILE")]
    pub in_terminal: Option<PathBuf>,
    /// The picture suite's clip (inner half).
    #[arg(long, hide = true, value_name = "FILE")]
    pub clip: Option<PathBuf>,
    /// The picture suite's protocol (inner half).
    #[arg(long, hide = true, value_enum)]
    pub render: Option<RenderArg>,
}

/// `syncy bench --suite` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSuite {
    /// Streaming throughput against a bare data channel and TCP.
    Throughput,
    /// Sync spread, seek latency, late-joiner first frame, decode+render speed.
    Playback,
    /// What drawing the dashboard costs (CPU per frame, share of a core at 10 fps).
    Ui,
    /// How fast the host makes lower-quality renditions (× real time).
    Quality,
    /// A room of --soak-participants playing for --minutes: stalls, sync spread and memory
    /// each minute (not part of `all`: it takes as long as it plays).
    Soak,
    /// Time to the first frame and sync per network topology (LAN, two NATs, symmetric NATs
    /// with TURN, UDP blocked with TURN over TCP), in network namespaces: needs root, iproute2,
    /// nftables and coturn (not part of `all`).
    Networks,
    /// A simulated room (sans-IO cores over simulated links, no network, no decoding):
    /// --sim-participants for --minutes at 20 ms round trips and 1% loss: sync spread, stalls,
    /// host upload, and CPU per simulated minute (not part of `all`).
    Sim,
    /// Relays in a simulated room (issue 19's): 10, 20, 50 and 100 participants joining over
    /// a minute on a host uploading three streams: how far the room plays, the host's upload,
    /// what relays carried, who stalled (not part of `all`).
    Relay,
    /// Pictures in real terminals: frames a second xterm (sixel, half-blocks) and kitty take
    /// at 80×24 and 150×48, and CPU per frame, under an Xvfb of its own; then a room where a
    /// sixel viewer and a headless participant play, and each one's drift (needs Xvfb, xterm,
    /// kitty, taskset; not part of `all`).
    Picture,
    /// All of them but the soak, the networks, the simulation and the pictures.
    All,
}

pub use crate::engine::join::default_name;

pub use crate::engine::host::DEFAULT_HOST_LISTEN;

impl HostArgs {
    /// The external server to use, or where to embed one. `--server` wins, then `--listen`
    /// (so a configured server never changes what `syncy host FILE --listen ADDR` does), then
    /// the environment's or config file's server, then an embedded one on the default address.
    pub fn signaling(&self, cfg: &crate::cli::config::Config) -> (Option<String>, SocketAddr) {
        let default: SocketAddr = DEFAULT_HOST_LISTEN.parse().expect("a literal address");
        // Flags that only mean something for an embedded server ask for one, too.
        let embedded = self.tls.tls_cert.is_some() || self.advertise.is_some() || self.upnp(cfg);
        match (&self.server, self.listen) {
            (Some(url), _) => (Some(url.clone()), default),
            (None, Some(listen)) => (None, listen),
            (None, None) if embedded => (None, default),
            (None, None) => (cfg.server.clone(), default),
        }
    }

    /// Whether to map the signaling port: the flags over the config.
    pub fn upnp(&self, cfg: &crate::cli::config::Config) -> bool {
        !self.no_upnp && (self.upnp || cfg.upnp == Some(true))
    }
}

fn parse_wxh(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or("expected WIDTHxHEIGHT, like 1280x720")?;
    let w: u32 = w.parse().map_err(|_| "bad width")?;
    let h: u32 = h.parse().map_err(|_| "bad height")?;
    if w < 16 || h < 16 || w > 7680 || h > 4320 || w % 2 == 1 || h % 2 == 1 {
        return Err("width and height must be even, 16..7680 x 16..4320".into());
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_flags_defaults_are_the_engines_defaults() {
        use crate::engine::{host::HostOptions, join::JoinOptions};
        let Cmd::Join(j) = Cli::parse_from(["syncy", "join", "syncy://h:1/r#k"]).command else { panic!() };
        let link = crate::protocol::link::Link { host: "h".into(), port: 1, room: "r".into(), key: crate::protocol::auth::RoomKey::random(), tls: false };
        let d = JoinOptions::new(link);
        assert_eq!((j.buffer, j.download_limit, j.quality.as_str(), !j.no_sound), (d.buffer, d.download_limit, d.quality.as_str(), d.sound));
        assert_eq!((!j.no_relay).then_some(j.relay_limit), d.relay);
        let Cmd::Host(h) = Cli::parse_from(["syncy", "host", "f.mp4"]).command else { panic!() };
        let d = HostOptions::new("f.mp4".into());
        assert_eq!((h.upload_limit, h.chunk_size, h.approve), (d.upload_limit, d.chunk_size as u64, d.approve));
        assert_eq!(h.signaling(&Default::default()).1, d.listen);
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_wxh("1280x720"), Ok((1280, 720)));
        assert!(parse_wxh("1281x720").is_err());
    }
}
