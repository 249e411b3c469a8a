//! Plain-text rendering of engine events for a terminal without the dashboard.

use crate::headless::Event;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One human-readable line per event (stats overwrite themselves on a terminal).
pub fn print(ev: &Event) {
    match ev {
        Event::Room { link, links, .. } => print_links(link, links),
        Event::Knock { name, .. } => {
            eprintln!("? {name} wants to join: type `approve {name}` or `deny {name}`")
        }
        Event::PeerJoined { name, .. } => eprintln!("+ {name} joined"),
        Event::PeerLeft { name, reason, .. } => eprintln!("- {name} left ({reason})"),
        Event::Manifest { name, size, chunks, duration_ms, codecs, .. } => eprintln!(
            "{name}: {:.1} MB in {chunks} chunks, {}, {}",
            mb(*size),
            duration_ms.map_or("unknown length".into(), |d| format!("{:.1} s", d as f64 / 1000.0)),
            codecs.join("/")
        ),
        Event::HostStats { up_bps, peers, .. } => {
            let list: Vec<String> = peers.iter().map(|p| format!("{} {:.1} MB/s", p.name, mb(p.up_bps))).collect();
            eprintln!("up {:.1} MB/s | {} watching | {}", mb(*up_bps), peers.len(), list.join(", "));
        }
        Event::JoinStats { down_bps, received_chunks, chunks, buffered_bytes, .. } => eprintln!(
            "down {:.1} MB/s | {:.0}% received | {:.1} MB buffered",
            mb(*down_bps),
            *received_chunks as f64 * 100.0 / (*chunks).max(1) as f64,
            mb(*buffered_bytes)
        ),
        Event::State { playing, position_ms, buffering, waiting, .. } => eprintln!("{}", state_line(*playing, *buffering, waiting, *position_ms)),
        Event::Complete { sha256, size, seconds } => eprintln!("complete: {:.1} MB in {seconds:.1} s, sha256 {sha256}", mb(*size)),
        Event::Resumed { chunks, bytes } => eprintln!("resuming the saved copy: {chunks} chunks ({:.1} MB) already here", mb(*bytes)),
        Event::Path(p) => eprintln!("connected to the host: {p}"),
        Event::Fallback { reason, url } => eprintln!("{reason}: watching over HTTP from {url}"),
        Event::Reconnecting { reason, attempt } => {
            eprintln!("link lost ({reason}): reconnecting, attempt {attempt}")
        }
        Event::Reconnected { held_bytes } => {
            eprintln!("back in the room; kept {:.1} MB", mb(*held_bytes))
        }
        Event::StreamEnd { reason } => eprintln!("stream ended: {reason}"),
        Event::Warning { message } => eprintln!("warning: {message}"),
        Event::Error { message } => eprintln!("error: {message}"),
    }
}

/// The room's links on stdout, the one to share when in doubt first.
fn print_links(link: &str, links: &[crate::headless::LinkInfo]) {
    let mut out = match links.len() {
        0 | 1 => "Room open. Share this link (quote it in a shell: # starts a comment):\n\n".to_string(),
        _ => "Room open. Share one of these links (quote it in a shell: # starts a comment):\n\n".to_string(),
    };
    if links.is_empty() {
        out.push_str(&format!("  {link}\n"));
    }
    for l in links {
        out.push_str(&format!("  {}\n      {}\n", l.url, l.note));
    }
    out.push('\n');
    crate::stdout::write(&out);
}

/// "playing at 1:12", "buffering at 0:40 (waiting for bob)".
pub fn state_line(playing: bool, buffering: bool, waiting: &[String], position_ms: u64) -> String {
    let what = if buffering {
        "buffering"
    } else if playing {
        "playing"
    } else {
        "paused"
    };
    let wait = if waiting.is_empty() { String::new() } else { format!(" (waiting for {})", waiting.join(", ")) };
    format!("{what} at {}{wait}", crate::units::clock(position_ms))
}
