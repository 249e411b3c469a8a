//! `syncy`: command-line entry. Builds the real inputs and hands them to the engines.
//! Exit codes: 0 on a clean quit or end of stream, 1 on failure (reason on stderr), 2 on bad usage.

use std::process::ExitCode;

use clap::Parser;
use color_eyre::eyre::{Result, eyre};
use tokio::sync::mpsc;

use syncy::cli::{Cli, Cmd};
use syncy::headless::{self, Command, Event};
use syncy::protocol::link::Link;
use syncy::{bench, demo, host, participant, server};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = color_eyre::install();
    // The terminal view owns the screen: logs must not land on it.
    let tui = match &cli.command {
        Cmd::Join(a) => !a.headless && a.render != syncy::cli::RenderArg::None,
        Cmd::Host(a) => dashboard(a.headless),
        Cmd::Demo(_) => dashboard(false),
        _ => false,
    };
    if let Err(e) = init_logging(cli.log.as_deref(), tui) {
        eprintln!("syncy: {e}");
        return ExitCode::from(1);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("syncy: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syncy: {e:?}");
            ExitCode::from(1)
        }
    }
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
    // A reader of stdout that went away (`| head -1`) ends the program quietly too.
    syncy::stdout::watch();
    tokio::spawn(async move {
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_err() { return },
            _ = syncy::stdout::closed() => {}
        }
        let _ = tx.send(Command::Quit);
    });
    rx
}

/// Prints events: JSON lines when headless, short human lines otherwise.
fn event_printer(headless: bool) -> (mpsc::UnboundedSender<Event>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let task = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if headless {
                headless::print(&ev);
            } else {
                syncy::plain::print(&ev);
            }
        }
    });
    (tx, task)
}

async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Serve(a) => {
            let mut cfg = a.limits.config();
            cfg.tls = a.tls.server_config()?;
            let scheme = if cfg.tls.is_some() { "wss" } else { "ws" };
            let s = server::Server::start(a.listen, cfg).await.map_err(|e| eyre!("cannot listen on {}: {e}", a.listen))?;
            eprintln!("syncy signaling server on {scheme}://{}/ (Ctrl-C to stop)", s.addr);
            tokio::select! {
                _ = s.wait() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(())
        }
        Cmd::Host(a) => {
            let mut server_cfg = a.limits.config();
            server_cfg.tls = a.tls.server_config()?;
            let opts = host::HostOptions {
                file: a.file,
                server: a.server,
                tls_ca: a.tls_ca,
                tls_cert: a.tls.tls_cert,
                listen: a.listen,
                advertise: a.advertise,
                room: a.room,
                name: a.name,
                chunk_size: u32::try_from(a.chunk_size).map_err(|_| eyre!("chunk size too large"))?,
                ice_addr: a.ice_addr,
                nat: a.nat.options().map_err(|e| eyre!(e))?,
                server_cfg,
                playback: host::PlaybackPolicy { autoplay: a.autoplay, wait_for_buffering: !a.no_wait, host_only_control: a.host_only_control },
                upload_limit: a.upload_limit,
                approve: a.approve,
                http: a.http,
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
        Cmd::Join(a) => {
            let link = Link::parse(&a.link)?;
            use syncy::player::picture::Graphics;
            let mpv =
                (a.player == syncy::cli::PlayerArg::Mpv).then(|| a.mpv_args.as_deref().unwrap_or("").split_whitespace().map(String::from).collect::<Vec<_>>());
            let graphics = match graphics_for(a.render) {
                _ if a.headless => None,
                // mpv shows the picture; the terminal shows the status.
                Some(_) if mpv.is_some() => Some(Graphics::StatusOnly),
                g => g,
            };
            if let Some(graphics) = graphics {
                return join_with_view(link, a, graphics, mpv).await;
            }
            let opts = participant::JoinOptions {
                link,
                name: a.name,
                save: a.save,
                buffer: a.buffer,
                ice_addr: a.ice_addr,
                nat: a.nat.options().map_err(|e| eyre!(e))?,
                tls_ca: a.tls_ca,
                render: participant::Render::None,
                mpv,
                playback: true,
                sound: !a.no_sound,
                download_limit: a.download_limit,
                quality: a.quality,
            };
            let (events, printer) = event_printer(a.headless);
            let result = participant::run(opts, events.clone(), command_channel(a.headless)).await.map(|_| ());
            report_error(&result, &events, a.headless);
            drop(events);
            let _ = printer.await;
            result
        }
        Cmd::Demo(a) if dashboard(false) => demo::run_dashboard(a.participants, a.duration, graphics_for(a.render)).await,
        Cmd::Demo(a) => demo::run(a.participants, a.duration, command_channel(false)).await,
        Cmd::Sample(a) => {
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
        Cmd::Bench(a) => bench::run(a).await,
    }
}

/// A participant with the terminal view: the engine on the runtime, the view on a thread.
async fn join_with_view(link: Link, a: syncy::cli::JoinArgs, graphics: syncy::player::picture::Graphics, mpv: Option<Vec<String>>) -> Result<()> {
    use syncy::player::screen::Screen;
    let screen = Screen::new();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (events, mut events_rx) = mpsc::unbounded_channel::<Event>();
    let opts = participant::JoinOptions {
        link,
        name: a.name,
        save: a.save,
        buffer: a.buffer,
        ice_addr: a.ice_addr,
        nat: a.nat.options().map_err(|e| eyre!(e))?,
        tls_ca: a.tls_ca,
        render: participant::Render::Screen(screen.clone()),
        mpv,
        playback: true,
        sound: !a.no_sound,
        download_limit: a.download_limit,
        quality: a.quality,
    };
    let engine = tokio::spawn(participant::run(opts, events, cmd_rx));
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
        tokio::task::spawn_blocking(move || syncy::player::tui::run(screen, graphics, cmd_tx))
    };
    // Close the view whatever the engine did (a panic included), or it would wait forever.
    let result = engine.await;
    screen.close();
    let result = result?;
    view.await?.map_err(|e| eyre!("terminal: {e}"))?;
    tracing::info!("view closed");
    if let Ok(Some(reason)) = notices.await {
        eprintln!("stream ended: {reason}");
    }
    result.map(|_| ())
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
