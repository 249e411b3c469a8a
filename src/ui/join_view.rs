//! The participant's view: the picture on top; under it download speed with a one-minute
//! sparkline, the buffer map, drift, quality and the room, then the playback bar and the key
//! footer. Pure: it draws a [`Status`] snapshot and an encoded picture.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::{bytes, rate};
use super::piece_map::PieceMap;
use super::playbar::{PlayState, Playbar};
use super::view_state::ViewState;
use super::{overlay, picture_pane, recent};
use crate::player::screen::Status;

/// Rows under the picture: speeds (2), buffer map, room line, playback bar, footer.
const PANEL: u16 = 6;

/// Where the picture goes in a terminal of this size.
pub fn video_area(area: Rect) -> Rect {
    Layout::vertical([Constraint::Min(1), Constraint::Length(PANEL)]).areas::<2>(area)[0]
}

/// Draws the whole participant view.
/// True when the picture was drawn.
pub fn draw(f: &mut Frame, s: &Status, picture: Option<&picture_pane::Encoded>, show_picture: bool, v: &ViewState) -> bool {
    let area = f.area();
    let [video, speeds, map, room, bar, footer] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let waiting = if show_picture { "waiting for the first frame…" } else { "the picture is in mpv" };
    let drawn = picture_pane::render(f, video, picture, waiting, v.palette256, v.help || v.log);
    if v.log {
        let pane = Rect { y: video.y + video.height / 2, height: video.height - video.height / 2, ..video };
        overlay::log(f, pane, s.log.iter());
    }
    draw_speeds(f, speeds, s);
    let [label, cells] = Layout::horizontal([Constraint::Length(8), Constraint::Min(1)]).areas(map);
    f.render_widget(Span::styled("buffer ", Style::default().fg(Color::DarkGray)), label);
    f.render_widget(PieceMap { pieces: &s.now.pieces, read_fraction: s.now.read_fraction }, cells);
    f.render_widget(Paragraph::new(room_line(s)), room);
    let state = if s.now.buffering {
        PlayState::Buffering
    } else if !s.now.waiting.is_empty() {
        PlayState::Waiting
    } else if s.now.room_playing {
        PlayState::Playing
    } else {
        PlayState::Paused
    };
    f.render_widget(Playbar { state, position_ms: s.now.position_ms, duration_ms: s.duration_ms, waiting: &s.now.waiting }, bar);
    overlay::footer(f, footer, v);
    if v.help {
        overlay::help(f, area, v);
    }
    drawn
}

fn draw_speeds(f: &mut Frame, area: Rect, s: &Status) {
    let relay = s.now.relay.as_ref();
    let [figures, spark] = Layout::horizontal([Constraint::Length(if relay.is_some() { 34 } else { 22 }), Constraint::Min(1)]).areas(area);
    let dim = Style::default().fg(Color::DarkGray);
    let mut lines = vec![
        Line::from(vec![Span::styled("↓ ", dim), Span::raw(rate(s.now.down_bps))]),
        Line::from(vec![Span::styled("held ", dim), Span::raw(bytes(s.now.buffered_bytes))]),
    ];
    // This side's relaying: its upload to others, and to how many.
    if let Some(r) = relay {
        lines[0].spans.extend([Span::styled("  ↑ relay ", dim), Span::raw(rate(r.relay_up_bps))]);
        lines[1].spans.extend([Span::styled("  to ", dim), Span::raw(format!("{} · {} sent", r.relay_links, bytes(r.relay_up_bytes)))]);
    }
    f.render_widget(Paragraph::new(lines), figures);
    recent::sparkline(f, spark, s.down_history.iter(), Color::Blue);
}

fn room_line(s: &Status) -> Line<'static> {
    let dim = Style::default().fg(Color::DarkGray);
    let mut spans = vec![
        Span::styled("drift ", dim),
        Span::raw(s.now.drift_ms.map_or("–".into(), super::peers::drift)),
        Span::styled("  quality ", dim),
        Span::raw(if s.now.quality_choice == "auto" || s.now.quality_choice.is_empty() {
            format!("{} auto", s.now.quality_label())
        } else {
            s.now.quality_label()
        }),
        Span::styled("  you ", dim),
        Span::raw(s.name.clone()),
    ];
    if let Some(path) = &s.path {
        spans.push(Span::styled("  via ", dim));
        spans.push(Span::raw(path.clone()));
    }
    if !s.peers.is_empty() {
        spans.push(Span::styled("  room ", dim));
        let list: Vec<String> = s.peers.iter().map(|(n, what)| format!("{n} {what}")).collect();
        spans.push(Span::raw(list.join(", ")));
    }
    if let Some(m) = &s.message {
        spans.push(Span::styled(format!("  {m}"), Style::default().fg(Color::Red)));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::core::api::JoinSnapshot;
    use crate::player::picture::{Graphics, Picture};

    fn status() -> Status {
        let now = JoinSnapshot {
            position_ms: 72_000,
            room_playing: true,
            buffered_bytes: 48_000_000,
            drift_ms: Some(-3),
            quality: "high".into(),
            // The last of the download samples below.
            down_bps: 3_200_000,
            pieces: (0..256)
                .map(|i| {
                    if i < 40 {
                        100
                    } else if i < 44 {
                        50
                    } else if (120..130).contains(&i) {
                        100
                    } else {
                        0
                    }
                })
                .collect(),
            read_fraction: 0.12,
            relay: Some(crate::core::api::RelayStats { relay_up_bps: 1_100_000, relay_up_bytes: 96_000_000, relay_links: 3, ..Default::default() }),
            ..JoinSnapshot::default()
        };
        let mut s = Status {
            now,
            name: "bob".into(),
            file: "big-buck-bunny.mp4".into(),
            duration_ms: Some(596_000),
            link: "syncy://127.0.0.1:7878/demo#key".into(),
            path: Some("direct".into()),
            peers: vec![("ann".into(), "watching".into()), ("cy".into(), "buffering".into())],
            ..Status::default()
        };
        for i in 0..70u64 {
            s.sample_down((i % 15) * 300_000 + 500_000);
        }
        s.note("big-buck-bunny.mp4: 276.1 MB".into());
        s.note("playing at 1:12".into());
        s
    }

    /// A red-over-blue test picture, encoded as the view would.
    fn picture(video: Rect) -> picture_pane::Encoded {
        let p = Picture::new(Graphics::Halfblocks);
        let ((w, h), cells) = p.fit(video, (16, 9), 1.0);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        for (i, px) in rgb.chunks_mut(3).enumerate() {
            px.copy_from_slice(if (i as u32 / w) < h / 2 { &[255, 0, 0] } else { &[0, 0, 255] });
        }
        let frame = crate::media::decode::VideoFrame { pts_us: 0, width: w, height: h, rgb };
        (p.encode(&frame, cells, 0).unwrap(), cells)
    }

    fn render(s: &Status, v: &ViewState, w: u16, h: u16, with_picture: bool) -> Terminal<TestBackend> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        let pic = with_picture.then(|| picture(video_area(Rect::new(0, 0, w, h))));
        t.draw(|f| {
            draw(f, s, pic.as_ref(), true, v);
        })
        .unwrap();
        t
    }

    #[test]
    fn participant_view_80x24() {
        insta::assert_snapshot!(render(&status(), &ViewState::default(), 80, 24, false).backend());
    }

    #[test]
    fn participant_view_160x48_with_log() {
        insta::assert_snapshot!(render(&status(), &ViewState { log: true, ..Default::default() }, 160, 48, false).backend());
    }

    #[test]
    fn the_picture_fills_the_video_pane_in_half_blocks() {
        let t = render(&status(), &ViewState::default(), 80, 24, true);
        let buf = t.backend().buffer();
        let video = video_area(Rect::new(0, 0, 80, 24));
        let (_, cells) = picture(video);
        assert_eq!(buf[(40, cells.y)].bg, Color::Rgb(255, 0, 0), "top half red");
        assert_eq!(buf[(40, cells.y + cells.height - 1)].bg, Color::Rgb(0, 0, 255), "bottom half blue");
        assert!(cells.height >= 16, "the picture gets most of an 80×24 screen: {cells:?}");

        // Without 24-bit colour, the same picture in the 256-colour palette.
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let pic = picture(video);
        t.draw(|f| {
            draw(f, &status(), Some(&pic), true, &ViewState { palette256: true, ..Default::default() });
        })
        .unwrap();
        assert_eq!(t.backend().buffer()[(40, cells.y)].bg, Color::Indexed(196), "red in 256 colours");
        assert_eq!(t.backend().buffer()[(40, cells.y + cells.height - 1)].bg, Color::Indexed(21), "blue in 256 colours");
    }

    #[test]
    fn buffering_and_waiting_show_in_the_bar_and_tiny_terminals_do_not_panic() {
        let mut s = status();
        (s.now.buffering, s.now.waiting) = (true, vec!["cy".into()]);
        let t = render(&s, &ViewState::default(), 80, 24, false);
        let bar: String = (0..80).map(|x| t.backend().buffer()[(x, 22)].symbol().to_string()).collect();
        assert!(bar.starts_with("◌ buffering") && bar.contains("waiting for cy"), "{bar}");
        for (w, h) in [(1, 1), (10, 3), (30, 7), (80, 6)] {
            render(&s, &ViewState { help: true, log: true, palette256: true, ..Default::default() }, w, h, true);
        }
    }
}
