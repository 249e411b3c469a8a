//! The host's dashboard: room and link, the peers table, upload with a one-minute sparkline,
//! the playback bar and the key footer. Pure: it draws a [`RoomModel`] snapshot.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::format::{bytes, rate};
use super::host_model::{HISTORY, RoomModel};
use super::playbar::{PlayState, Playbar};
pub use super::view_state::ViewState;
use super::{overlay, peers, picture_pane, recent};
use crate::core::api::clock;

/// The screen's parts, top to bottom.
struct Areas {
    head: Rect,
    video: Option<Rect>,
    table: Rect,
    log: Option<Rect>,
    upload: Rect,
    bar: Rect,
    footer: Rect,
}

/// Links shown under the first one in the head, at most.
const MORE_LINKS: usize = 2;

fn areas(area: Rect, m: &RoomModel, with_video: bool, log: bool) -> Areas {
    let peers = m.peers.len();
    let head_rows = 4 + m.links.len().saturating_sub(1).min(MORE_LINKS) as u16;
    let [head, middle, upload, bar, footer] =
        Layout::vertical([Constraint::Length(head_rows), Constraint::Min(3), Constraint::Length(4), Constraint::Length(1), Constraint::Length(1)]).areas(area);
    // With a picture (the demo), the table takes what its rows need and the picture the rest.
    let (video, middle) = if with_video {
        let [v, t] = Layout::vertical([Constraint::Min(3), Constraint::Length(peers.max(1) as u16 + 3)]).areas(middle);
        (Some(v), t)
    } else {
        (None, middle)
    };
    let (table, log) = if log {
        let [t, l] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
        (t, Some(l))
    } else {
        (middle, None)
    };
    Areas { head, video, table, log, upload, bar, footer }
}

/// Where the picture goes (the demo shows one participant's), for a room of `peers`.
pub fn video_area(area: Rect, m: &RoomModel, log: bool) -> Rect {
    areas(area, m, true, log).video.unwrap_or_default()
}

/// Draws the whole host view.
pub fn draw(f: &mut Frame, m: &RoomModel, v: &ViewState, now: Instant) {
    draw_with_video(f, m, v, now, None);
}

/// Draws the host view with a picture pane: `Some(None)` while no frame has come yet.
/// True when the picture was drawn.
pub fn draw_with_video(f: &mut Frame, m: &RoomModel, v: &ViewState, now: Instant, video: Option<Option<&picture_pane::Encoded>>) -> bool {
    let area = f.area();
    let a = areas(area, m, video.is_some(), v.log);
    let mut drawn = false;
    draw_head(f, a.head, m);
    if let (Some(pane), Some(picture)) = (a.video, video) {
        drawn = picture_pane::render(f, pane, picture, "waiting for the first frame…", v.palette256, v.help);
    }
    let title = format!(" peers ({}) ", m.peers.len());
    f.render_widget(peers::table(&m.peers, v.selected).block(Block::bordered().title(title)), a.table);
    if m.peers.is_empty() && a.table.height > 3 {
        let under_header = Rect { x: a.table.x + 1, y: a.table.y + 2, width: a.table.width.saturating_sub(2), height: 1 };
        f.render_widget(Paragraph::new(peers::EMPTY).style(Style::default().fg(Color::DarkGray)), under_header);
    }
    if let Some(l) = a.log {
        overlay::log(f, l, m.log.iter());
    }
    draw_upload(f, a.upload, m);
    let state = if !m.waiting.is_empty() {
        PlayState::Waiting
    } else if m.playing {
        PlayState::Playing
    } else {
        PlayState::Paused
    };
    f.render_widget(Playbar { state, position_ms: m.position_now(now), duration_ms: m.file.duration_ms, waiting: &m.waiting }, a.bar);
    overlay::footer(f, a.footer, v);
    if v.help {
        overlay::help(f, area, v);
    }
    drawn
}

fn draw_head(f: &mut Frame, area: Rect, m: &RoomModel) {
    let dim = Style::default().fg(Color::DarkGray);
    let title = Line::from(vec![Span::styled(" syncy ", Style::default().add_modifier(Modifier::BOLD)), Span::raw(format!("· room {} ", m.room))]);
    let file = format!("{} · {} · {}", m.file.name, bytes(m.file.size), m.file.duration_ms.map_or("length unknown".into(), clock));
    let kind = |i: usize| m.links.get(i).map_or(String::new(), |l| format!("  {}", l.kind.label()));
    let mut lines = vec![Line::from(vec![
        Span::styled("link ", dim),
        Span::styled(m.link.clone(), Style::default().fg(Color::Cyan)),
        Span::styled(format!("{}  (y copies)", kind(0)), dim),
    ])];
    for (i, l) in m.links.iter().enumerate().skip(1).take(MORE_LINKS) {
        lines.push(Line::from(vec![Span::styled("also ", dim), Span::raw(l.url.clone()), Span::styled(kind(i), dim)]));
    }
    lines.push(Line::from(vec![Span::styled("file ", dim), Span::raw(file)]));
    lines.push(m.error.as_ref().map_or_else(Line::default, |e| Line::styled(format!("! {e}"), Style::default().fg(Color::Red))));
    f.render_widget(Paragraph::new(lines).block(Block::new().title(title)), area);
}

fn draw_upload(f: &mut Frame, area: Rect, m: &RoomModel) {
    let mut block = Block::bordered().title(format!(" ↑ {} total · last {HISTORY} s ", rate(m.up_bps)));
    // Where the room's data came from: the host itself, or participants relaying.
    if m.relayed_bytes > 0 {
        // (Participants' own counts: any u64 may come.)
        let share = m.relayed_bytes as f64 * 100.0 / (m.relayed_bytes as f64 + m.sent_bytes as f64).max(1.0);
        block = block.title_bottom(format!(" sent {} · relays carried {} ({share:.0}%) ", bytes(m.sent_bytes), bytes(m.relayed_bytes)));
    }
    let inner = block.inner(area);
    f.render_widget(block, area);
    recent::sparkline(f, inner, m.up_history.iter(), Color::Green);
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::core::api::{Event, PeerStats};

    fn peer(peer: u64, name: &str, up_bps: u64, rtt: u32, buffered: u64, drift: i64, buffering: bool) -> PeerStats {
        PeerStats {
            peer,
            name: name.into(),
            up_bps,
            rtt_ms: Some(rtt),
            buffered_bytes: buffered,
            position_ms: 72_000,
            quality: "high".into(),
            sent_bytes: buffered,
            drift_ms: Some(drift),
            buffering,
            relay_up_bps: None,
        }
    }

    /// A room three people watch, one of them buffering, after a minute and a half of stats.
    fn busy_room(t: Instant) -> RoomModel {
        let mut m = RoomModel::default();
        let events = [
            Event::Room {
                link: "syncy://watch.example.org:7878/k3x9qz2m#cA-txt4nD6GXYZYYH15H3Q".into(),
                links: vec![],
                room: "k3x9qz2m".into(),
                file: "big-buck-bunny.mp4".into(),
                size: 276_134_947,
                duration_ms: Some(596_000),
            },
            Event::PeerJoined { peer: 1, name: "ann".into(), guest: "Z3Vlc3Qga2V5".into() },
            Event::PeerJoined { peer: 2, name: "bob".into(), guest: "Z3Vlc3Qga2V5".into() },
            Event::PeerJoined { peer: 3, name: "cy".into(), guest: "Z3Vlc3Qga2V5".into() },
            Event::PeerJoined { peer: 4, name: "dee".into(), guest: "Z3Vlc3Qga2V5".into() },
            Event::Knock { peer: 5, name: "eve".into(), guest: "Qm9iIGtleSAx".into() },
        ];
        for e in &events {
            m.apply(e, t);
        }
        for i in 0..90u64 {
            let peers = vec![
                peer(1, "ann", 2_400_000 + i * 10_000, 3, 48_000_000, -2, false),
                peer(2, "bob", 1_100_000, 41, 9_500_000, 7, false),
                peer(3, "cy", 350_000, 120, 800_000, -35, true),
            ];
            let up = (i % 20) * 400_000 + 1_000_000;
            let (sent_bytes, relayed_bytes) = (i * 3_000_000, i * 9_000_000);
            m.apply(&Event::HostStats { position_ms: 72_000, playing: true, up_bps: up, sent_bytes, relayed_bytes, peers }, t);
        }
        m.apply(&Event::State { playing: true, position_ms: 72_000, buffering: false, waiting: vec!["cy".into()], seq: 4, t_ms: 0.0 }, t);
        m
    }

    /// The host's view state, as `host_app` makes it while someone knocks.
    fn host() -> ViewState {
        ViewState { keys: crate::ui::keys::Shown { host: true, knocking: true }, ..ViewState::default() }
    }

    fn render(m: &RoomModel, v: &ViewState, w: u16, h: u16, t: Instant) -> Terminal<TestBackend> {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| draw(f, m, v, t)).unwrap();
        term
    }

    #[test]
    fn host_view_80x24() {
        let t = Instant::now();
        insta::assert_snapshot!(render(&busy_room(t), &host(), 80, 24, t).backend());
    }

    #[test]
    fn host_view_lists_the_links_and_where_they_work_80x24() {
        use crate::core::api::LinkInfo;
        use crate::net::links::LinkKind;
        let t = Instant::now();
        let mut m = RoomModel::default();
        let info = |url: &str, kind| LinkInfo { url: url.into(), kind, note: String::new() };
        let links = vec![
            info("syncy://192.168.1.20:7878/k3x9qz2m#cA-txt4nD6GXYZYYH15H3Q", LinkKind::Lan),
            info("syncy://10.8.0.3:7878/k3x9qz2m#cA-txt4nD6GXYZYYH15H3Q", LinkKind::Lan),
            info("syncy://203.0.113.9:7878/k3x9qz2m#cA-txt4nD6GXYZYYH15H3Q", LinkKind::Internet),
        ];
        let link = links[0].url.clone();
        m.apply(&Event::Room { link, links, room: "k3x9qz2m".into(), file: "clip.mkv".into(), size: 12_000_000, duration_ms: None }, t);
        let out = render(&m, &host(), 80, 24, t).backend().to_string();
        assert!(out.contains("192.168.1.20:7878") && out.contains("LAN"), "{out}");
        assert!(out.contains("10.8.0.3:7878") && out.contains("203.0.113.9:7878"), "{out}");
        insta::assert_snapshot!(out);
    }

    #[test]
    fn host_view_160x48() {
        let t = Instant::now();
        insta::assert_snapshot!(render(&busy_room(t), &host(), 160, 48, t).backend());
    }

    #[test]
    fn host_view_empty_room_with_log_80x24() {
        let t = Instant::now();
        let mut m = RoomModel::default();
        m.apply(
            &Event::Room {
                link: "syncy://127.0.0.1:7878/demo#key".into(),
                links: vec![],
                room: "demo".into(),
                file: "clip.mkv".into(),
                size: 12_000_000,
                duration_ms: None,
            },
            t,
        );
        m.apply(&Event::Error { message: "signaling connection lost: no new participants can join".into() }, t);
        insta::assert_snapshot!(render(&m, &ViewState { log: true, ..host() }, 80, 24, t).backend());
    }

    #[test]
    fn help_overlay_and_flash_80x24() {
        let t = Instant::now();
        let v = ViewState { help: true, flash: Some("link copied to the clipboard (OSC 52)".into()), ..host() };
        insta::assert_snapshot!(render(&busy_room(t), &v, 80, 24, t).backend());
    }

    #[test]
    fn demo_view_with_a_picture_80x24() {
        let t = Instant::now();
        let m = busy_room(t);
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        term.draw(|f| {
            draw_with_video(f, &m, &host(), t, Some(None));
        })
        .unwrap();
        insta::assert_snapshot!(term.backend());
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        let t = Instant::now();
        let m = busy_room(t);
        for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 10), (80, 8)] {
            for v in [ViewState::default(), ViewState { help: true, log: true, palette256: true, ..Default::default() }] {
                render(&m, &v, w, h, t);
                let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
                term.draw(|f| {
                    draw_with_video(f, &m, &v, t, Some(None));
                })
                .unwrap();
            }
        }
    }
}
