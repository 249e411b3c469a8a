//! `syncy`: command-line entry. Builds the real inputs and hands them to the engines.
//! Exit codes: 0 on a clean quit or end of stream, 1 on failure (reason on stderr), 2 on bad usage.

use std::process::ExitCode;

use clap::Parser;
use color_eyre::eyre::{Result, eyre};
use tokio::sync::mpsc;

use syncy::cli::{Cli, Cmd};
use syncy::commands::{bench, demo};
use syncy::engine::{Command, Event};
use syncy::engine::{host, join};
use syncy::output::headless;
use syncy::protocol::link::Link;
use syncy::server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose || std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    if verbose {
        let _ = color_eyre::install();
    }
    // The terminal view owns the screen: logs must not land on it.
    let tui = match &cli.command {
        Cmd::Join(a) => !a.headless && a.render != syncy::cli::RenderArg::None,
        Cmd::Host(a) => dashboard(a.headless),
        Cmd::Demo(_) => dashboard(false),
        _ => false,
    };
    if let Err(e) = init_logging(cli.log.as_deref(), tui) {
        eprintln!("syncy: error: {e}");
        return ExitCode::from(1);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("syncy: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(run(cli.command));
    // Threads blocked on stdin or the terminal must not hold the exit up.
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`| head`): nothing to say, and nobody to say it to.
        Err(_) if syncy::output::stdout::is_closed() => ExitCode::SUCCESS,
        Err(e) => report(&e, verbose),
    }
}

/// `syncy: error: …` on one line (the whole report with --verbose or RUST_BACKTRACE), a hint
/// under it when there is one; exit 2 for a usage error, 1 for any other failure.
fn report(e: &color_eyre::Report, verbose: bool) -> ExitCode {
    use syncy::output::terminal::safe;
    let (code, hint) = syncy::error::classify(e);
    if verbose {
        eprintln!("syncy: error: {}", safe(&format!("{e:?}"), true));
    } else {
        eprintln!("syncy: error: {}", safe(&format!("{e:#}"), false));
    }
    if let Some(hint) = hint {
        eprintln!("syncy: hint: {}", safe(&hint, false));
    }
    ExitCode::from(code)
}

fn init_logging(file: Option<&std::path::Path>, tui: bool) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,rtc_dtls=error,rtc_ice=error,webrtc=error,rtc=error"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| eyre!("cannot open log file {}: {e}", path.display()))?;
            builder.with_ansi(false).with_writer(std::sync::Mutex::new(f)).init();
        }
        None if tui => builder.with_writer(std::io::sink).init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Commands from stdin (headless) and Ctrl-C.
fn command_channel(headless: bool) -> mpsc::UnboundedReceiver<Command> {
    let (tx, rx) = mpsc::unbounded_channel();
    if headless {
        headless::spawn_stdin_reader(tx.clone());
    }
    quit_on_signals(tx);
    rx
}

/// Ctrl-C, SIGTERM (a service manager, `kill`), SIGHUP (the terminal closed) and a reader of
/// stdout that went away (`| head -1`) all quit cleanly: the host then says goodbye and
/// removes its port mapping. A part still setting up (a participant waiting to be let in)
/// may not read its commands yet: a second signal, or [`QUIT_GRACE`] without an exit, ends
/// the process at once.
fn quit_on_signals(tx: mpsc::UnboundedSender<Command>) {
    use tokio::signal::unix::{SignalKind, signal};
    syncy::output::stdout::watch();
    tokio::spawn(async move {
        let (mut term, mut hup) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::hangup()).ok());
        let code = tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_ok() { 130 } else { return },
            Some(()) = next(&mut term) => 143,
            Some(()) = next(&mut hup) => 129,
            _ = syncy::output::stdout::closed() => 0,
        };
        let _ = tx.send(Command::Quit);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = next(&mut term) => {}
            Some(()) = next(&mut hup) => {}
            _ = tokio::time::sleep(QUIT_GRACE) => tracing::warn!("still running {QUIT_GRACE:?} after being asked to quit; stopping now"),
        }
        std::process::exit(code);
    });
}

/// Prints events: JSON lines when headless, short human lines otherwise.
fn event_printer(headless: bool) -> (mpsc::UnboundedSender<Event>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let task = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if headless {
                headless::print(&ev);
            } else {
                syncy::output::plain::print(&ev);
            }
        }
    });
    (tx, task)
}

/// TURN over TLS checks its server against the system's roots plus `--tls-ca` (or the config
/// file's `tls_ca`).
fn trust_for_turn(cmd: &Cmd, cfg: &syncy::cli::config::Config) -> Result<()> {
    let flag = match cmd {
        Cmd::Host(a) => a.tls_ca.as_ref(),
        Cmd::Join(a) => a.tls_ca.as_ref(),
        Cmd::Doctor(a) => a.tls_ca.as_ref(),
        _ => None,
    };
    if let Some(ca) = flag.or(cfg.tls_ca.as_ref()) {
        syncy::net::turn_tls::set_client_config(syncy::net::tls::client_config(Some(ca)).map_err(usage)?);
    }
    Ok(())
}

/// How long a clean quit may take before the process is ended anyway.
const QUIT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The next delivery of a signal (never, when its handler could not be installed).
async fn next(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s.as_mut() {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// A usage error (exit 2) as a report.
fn usage(e: impl std::fmt::Display) -> color_eyre::Report {
    syncy::error::UsageError(e.to_string()).into()
}

async fn run(cmd: Cmd) -> Result<()> {
    // Only the commands that use it read the config file: a mistake in it is not `serve`'s.
    let (cfg, cfg_path) = match cmd {
        Cmd::Host(_) | Cmd::Join(_) | Cmd::Doctor(_) => syncy::cli::config::load().map_err(usage)?,
        _ => Default::default(),
    };
    trust_for_turn(&cmd, &cfg)?;
    match cmd {
        Cmd::Serve(a) => serve(a).await,
        Cmd::Host(a) => host_cmd(a, &cfg).await,
        Cmd::Join(a) => join_cmd(a, &cfg).await,
        Cmd::Demo(a) if dashboard(false) => demo::run_dashboard(a.participants, a.duration, graphics_for(a.render)).await,
        Cmd::Demo(a) => demo::run(a.participants, a.duration, command_channel(false)).await,
        Cmd::Sample(a) => sample(a).await,
        Cmd::Bench(a) => bench::run(a).await,
        Cmd::Doctor(a) => doctor(a, &cfg, cfg_path).await,
    }
}

/// `syncy serve`: the signaling server until Ctrl-C.
async fn serve(a: syncy::cli::ServeArgs) -> Result<()> {
    let mut cfg = a.limits.config();
    cfg.tls = a.tls.server_config()?;
    let scheme = if cfg.tls.is_some() { "wss" } else { "ws" };
    let cluster = a.cluster().map_err(usage)?;
    let joined = cluster.as_ref().map(|(url, key)| (url.as_str(), key.expose().as_bytes()));
    let s = server::Server::start_clustered(a.listen, cfg, joined).await.map_err(|e| match e {
        server::StartError::Listen(e) => eyre!("cannot listen on {}: {e}", a.listen),
        e => eyre!("{e}"),
    })?;
    let member = if cluster.is_some() { ", one of a cluster" } else { "" };
    eprintln!("syncy signaling server on {scheme}://{}/{member} (Ctrl-C to stop)", s.addr);
    tokio::select! {
        _ = s.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// `syncy host FILE`: the dashboard, or events as lines.
async fn host_cmd(a: syncy::cli::HostArgs, cfg: &syncy::cli::config::Config) -> Result<()> {
    let mut server_cfg = a.limits.config();
    server_cfg.tls = a.tls.server_config().map_err(usage)?;
    let (server, listen) = a.signaling(cfg);
    let opts = host::HostOptions {
        server,
        tls_ca: a.tls_ca.clone().or_else(|| cfg.tls_ca.clone()),
        tls_cert: a.tls.tls_cert.clone(),
        listen,
        advertise: a.advertise.clone(),
        upnp: a.upnp(cfg),
        room: a.room.clone(),
        identity: match syncy::cli::config::dir() {
            Some(dir) => host::Identity::File { path: dir.join("host-identity"), renew: a.new_room },
            None => return Err(usage("no config dir for the host identity: set HOME or XDG_CONFIG_HOME")),
        },
        name: a.name.clone().or_else(|| cfg.name.clone()).unwrap_or_else(|| "host".into()),
        chunk_size: u32::try_from(a.chunk_size).map_err(|_| usage("chunk size too large"))?,
        ice_addr: a.ice_addr.clone(),
        nat: a.nat.options(cfg)?,
        server_cfg,
        playback: host::PlaybackPolicy { autoplay: a.autoplay, wait_for_buffering: !a.no_wait, host_only_control: a.host_only_control },
        upload_limit: a.upload_limit,
        approve: a.approve,
        http: a.http,
        ..host::HostOptions::new(a.file.clone())
    };
    if dashboard(a.headless) {
        return host_with_dashboard(opts).await;
    }
    let (events, printer) = event_printer(a.headless);
    // Plain output reads commands too when someone must let newcomers in.
    let result = host::run(opts, events.clone(), command_channel(a.headless || a.approve)).await;
    report_error(&result, &events, a.headless);
    drop(events);
    let _ = printer.await;
    result
}

/// The link: from `--link-file` (its first line), or the argument (or `SYNCY_LINK`).
fn link_text(a: &syncy::cli::JoinArgs) -> Result<String> {
    match (&a.link_file, &a.link) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read the link from {}: {e}", path.display())))?;
            Ok(text.lines().next().unwrap_or("").trim().to_string())
        }
        (None, Some(link)) => Ok(link.clone()),
        (None, None) => Err(usage("give the room link: as an argument, with --link-file, or in SYNCY_LINK")),
    }
}

/// `syncy join LINK`: the view (or mpv), or events as lines.
async fn join_cmd(a: syncy::cli::JoinArgs, cfg: &syncy::cli::config::Config) -> Result<()> {
    let link = Link::parse(&link_text(&a)?).map_err(|e| usage(format!("not a Syncy link: {e}")))?;
    use syncy::player::picture::Graphics;
    let mpv = (a.player == syncy::cli::PlayerArg::Mpv).then(|| a.mpv_args.as_deref().unwrap_or("").split_whitespace().map(String::from).collect::<Vec<_>>());
    let graphics = match graphics_for(a.render) {
        _ if a.headless => None,
        // mpv shows the picture; the terminal shows the status.
        Some(_) if mpv.is_some() => Some(Graphics::StatusOnly),
        g => g,
    };
    if let Some(graphics) = graphics {
        return join_with_view(link, &a, cfg, graphics, mpv).await;
    }
    let opts = join_options(link, &a, cfg, join::Render::None, mpv).await?;
    let (events, printer) = event_printer(a.headless);
    let result = join::run(opts, events.clone(), command_channel(a.headless)).await.map(|_| ());
    report_error(&result, &events, a.headless);
    drop(events);
    let _ = printer.await;
    result
}

/// `syncy sample`: writes the generated clip.
async fn sample(a: syncy::cli::SampleArgs) -> Result<()> {
    let spec = syncy::media::sample::SampleSpec {
        duration: a.duration,
        width: a.size.0,
        height: a.size.1,
        video_bitrate: a.bitrate as usize * 8,
        audio_bitrate: a.audio_bitrate as usize * 8,
        mp4_layout: match a.mp4_layout {
            syncy::cli::Mp4LayoutArg::MoovAtEnd => syncy::media::sample::Mp4Layout::MoovAtEnd,
            syncy::cli::Mp4LayoutArg::Faststart => syncy::media::sample::Mp4Layout::Faststart,
            syncy::cli::Mp4LayoutArg::Fragmented => syncy::media::sample::Mp4Layout::Fragmented,
        },
        ..Default::default()
    };
    let out = a.out.clone();
    tokio::task::spawn_blocking(move || syncy::media::sample::write_sample(&out, &spec)).await??;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

/// `syncy doctor`: the checks as lines (or JSON), exit 1 when one failed.
async fn doctor(a: syncy::cli::DoctorArgs, cfg: &syncy::cli::config::Config, config: Option<std::path::PathBuf>) -> Result<()> {
    let server = match &a.link {
        Some(l) => Some(Link::parse(l).map_err(|e| usage(format!("not a Syncy link: {e}")))?.signal_url()),
        None => a.server.clone().or_else(|| cfg.server.clone()),
    };
    let opts = syncy::commands::doctor::DoctorOptions { server, tls_ca: a.tls_ca.clone().or_else(|| cfg.tls_ca.clone()), nat: a.nat.options(cfg)?, config };
    if !a.headless {
        eprintln!("syncy doctor: checking what a room needs from this machine…");
    }
    let report = syncy::commands::doctor::run(&opts).await;
    for c in &report.checks {
        if a.headless {
            let mut v = serde_json::to_value(c).expect("checks serialize");
            v["event"] = "check".into();
            v["t_ms"] = headless::now_ms().into();
            syncy::output::stdout::write(&format!("{v}\n"));
        } else {
            syncy::output::stdout::write(&format!("  {c}\n"));
        }
    }
    if a.headless {
        let v = serde_json::json!({"event": "doctor", "verdict": report.verdict, "t_ms": headless::now_ms()});
        syncy::output::stdout::write(&format!("{v}\n"));
    } else {
        syncy::output::stdout::write(&format!("\n{}\n", report.verdict));
    }
    if report.checks.iter().any(|c| c.ok == Some(false)) {
        color_eyre::eyre::bail!("some checks failed (see above)");
    }
    Ok(())
}

/// A participant's options from its flags, over the environment and the config file.
async fn join_options(
    link: Link,
    a: &syncy::cli::JoinArgs,
    cfg: &syncy::cli::config::Config,
    render: join::Render,
    mpv: Option<Vec<String>>,
) -> Result<join::JoinOptions> {
    let defaults = join::JoinOptions::new(link);
    // The same person to a host across restarts (what a ban names), from a private file.
    let guest = match syncy::cli::config::dir() {
        Some(dir) => {
            let identity = host::Identity::File { path: dir.join("guest-identity"), renew: false };
            match tokio::task::spawn_blocking(move || syncy::engine::identity::load_guest(&identity)).await? {
                Ok(g) => g,
                // A secret others can read is not used: whoever read it could join as us.
                Err(e @ syncy::engine::identity::IdentityError::Exposed(..)) => return Err(e.into()),
                // Joining needs no file of its own: a read-only home only costs the host's
                // memory of us.
                Err(e) => {
                    tracing::warn!("{e}: a new participant identity for this run");
                    defaults.guest.clone()
                }
            }
        }
        None => {
            tracing::warn!("no config dir (HOME and XDG_CONFIG_HOME unset): a new participant identity for this run");
            defaults.guest.clone()
        }
    };
    Ok(join::JoinOptions {
        name: a.name.clone().or_else(|| cfg.name.clone()).unwrap_or_else(|| join::default_name(&guest, &defaults.link.room)),
        guest,
        save: a.save.clone(),
        force: a.force,
        buffer: a.buffer,
        ice_addr: a.ice_addr.clone(),
        nat: a.nat.options(cfg)?,
        tls_ca: a.tls_ca.clone().or_else(|| cfg.tls_ca.clone()),
        render,
        mpv,
        sound: !a.no_sound,
        download_limit: a.download_limit,
        relay: (!a.no_relay).then_some(a.relay_limit),
        quality: a.quality.clone(),
        ..defaults
    })
}

async fn join_with_view(
    link: Link,
    a: &syncy::cli::JoinArgs,
    cfg: &syncy::cli::config::Config,
    graphics: syncy::player::picture::Graphics,
    mpv: Option<Vec<String>>,
) -> Result<()> {
    use syncy::player::screen::Screen;
    let screen = Screen::new();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (events, mut events_rx) = mpsc::unbounded_channel::<Event>();
    let opts = join_options(link, a, cfg, join::Render::Screen(screen.clone()), mpv).await?;
    let engine = tokio::spawn(join::run(opts, events, cmd_rx));
    // Events become the view's message line (and the log); nothing prints while it is up.
    let notices = {
        let screen = screen.clone();
        tokio::spawn(async move {
            let mut end = None;
            while let Some(ev) = events_rx.recv().await {
                tracing::debug!("{ev:?}");
                match ev {
                    Event::StreamEnd { reason } => end = Some(reason),
                    other => screen.update(|s| s.log_event(&other)),
                }
            }
            end
        })
    };
    let view = {
        let screen = screen.clone();
        let pace = syncy::player::graphics::pace::Pace::new(syncy::player::graphics::pace::MAX_FPS, picture_bandwidth(a.max_picture_bandwidth));
        tokio::task::spawn_blocking(move || syncy::ui::join_app::run(screen, graphics, pace, cmd_tx))
    };
    // Close the view whatever the engine did (a panic included), or it would wait forever.
    let result = engine.await;
    screen.close();
    let result = result?;
    view.await?.map_err(|e| eyre!("terminal: {e}"))?;
    tracing::info!("view closed");
    if let Ok(Some(reason)) = notices.await {
        eprintln!("stream ended: {}", syncy::output::terminal::safe(&reason, false));
    }
    result.map(|_| ())
}

/// `--max-picture-bandwidth`, or its default: 2 MiB/s over SSH (every byte of picture
/// crosses the link), none on this machine's own terminal.
fn picture_bandwidth(given: Option<u64>) -> u64 {
    let place = syncy::player::graphics::caps::Place::from_env(|k| std::env::var(k).ok());
    given.unwrap_or(if place.ssh { 2 << 20 } else { 0 })
}

/// How `--render` draws pictures (None: it does not).
fn graphics_for(render: syncy::cli::RenderArg) -> Option<syncy::player::picture::Graphics> {
    use syncy::cli::RenderArg;
    use syncy::player::picture::Graphics;
    match render {
        RenderArg::None => None,
        RenderArg::Auto => Some(Graphics::Auto),
        RenderArg::Kitty => Some(Graphics::Kitty),
        RenderArg::Sixel => Some(Graphics::Sixel),
        RenderArg::Halfblocks => Some(Graphics::Halfblocks),
    }
}

/// The dashboard is for a person at a terminal: not headless, and stdout is a terminal.
fn dashboard(headless: bool) -> bool {
    use std::io::IsTerminal;
    !headless && std::io::stdout().is_terminal()
}

/// A host with the dashboard: the engine on the runtime, the view on a thread, events and
/// commands between them.
async fn host_with_dashboard(opts: host::HostOptions) -> Result<()> {
    let (events, events_rx) = mpsc::unbounded_channel::<Event>();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    quit_on_signals(cmd_tx.clone());
    let engine = tokio::spawn(host::run(opts, events, cmd_rx));
    let view = tokio::task::spawn_blocking(move || syncy::ui::host_app::run(Vec::new(), events_rx, cmd_tx, None));
    let result = engine.await?;
    view.await?.map_err(|e| eyre!("terminal: {e}"))?;
    result
}

fn report_error<T>(result: &Result<T>, events: &mpsc::UnboundedSender<Event>, headless: bool) {
    if let (Err(e), true) = (result, headless) {
        let _ = events.send(Event::Error { message: format!("{e:#}") });
    }
}
