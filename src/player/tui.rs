//! The participant's terminal view: the picture, a status line and the key footer. It runs on
//! its own thread, draws snapshots from [`Screen`], and turns keys into room commands.
//! The terminal is restored on every exit path, panics included.

use std::io::{self, Stdout};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event as TermEvent};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui_image::Image;
use ratatui_image::protocol::Protocol;
use tokio::sync::mpsc::UnboundedSender;

use super::picture::{Graphics, Picture};
use super::screen::{Screen, Status};
use crate::headless::Command;
use crate::ui::keys::{self, Action};
use crate::units::clock;

/// Runs the view until the user quits or the engine closes the screen. Blocking.
pub fn run(screen: Arc<Screen>, graphics: Graphics, commands: UnboundedSender<Command>) -> io::Result<()> {
    // Ask the terminal what it can draw before taking it over.
    let picture = Picture::new(graphics);
    let (mut terminal, _guard) = crate::ui::term::enter()?;
    let result = event_loop(&mut terminal, &screen, &picture, graphics != Graphics::StatusOnly, &commands);
    // Whatever happened, the engine must stop too.
    let _ = commands.send(Command::Quit);
    result
}

fn event_loop(terminal: &mut Terminal<CrosstermBackend<Stdout>>, screen: &Screen, picture: &Picture, show_picture: bool, commands: &UnboundedSender<Command>) -> io::Result<()> {
    let mut shown_frame = 0u64;
    let mut proto: Option<(Protocol, Rect)> = None;
    let mut last_target = None;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut last_status = Status::default();
    loop {
        if screen.closed() {
            return Ok(());
        }
        let status = screen.status();
        if event::poll(Duration::from_millis(10))? {
            match event::read()? {
                TermEvent::Key(k) => match keys::action_for(&k) {
                    Some(Action::Quit) => return Ok(()),
                    Some(Action::TogglePlay) => {
                        let _ = commands.send(if status.room_playing { Command::Pause } else { Command::Play });
                    }
                    Some(Action::SeekBy(s)) => {
                        let _ = commands.send(Command::SeekBy(s));
                    }
                    Some(Action::SeekFraction(f)) => {
                        if let Some(d) = status.duration_ms {
                            let _ = commands.send(Command::SeekTo(d as f64 / 1000.0 * f));
                        }
                    }
                    // The dashboard's keys (copy link, log, help) arrive with the shared view.
                    Some(Action::CopyLink | Action::ToggleLog | Action::ToggleHelp) | None => {}
                },
                TermEvent::Resize(..) => {
                    last_target = None;
                    shown_frame = 0;
                }
                _ => {}
            }
        }
        let size = terminal.size()?;
        let video_area = layout(Rect::new(0, 0, size.width, size.height))[0];
        let mut dirty = false;
        if let Some(video) = screen.video_size().filter(|_| show_picture) {
            let (target, cells) = picture.fit(video_area, video);
            if last_target != Some(target) {
                screen.set_target(target);
                last_target = Some(target);
                dirty = true;
            }
            let (n, frame) = screen.frame();
            if n != shown_frame
                && let Some(frame) = frame
                && frame.width > 0
            {
                // Only the newest frame is encoded: frames that arrived meanwhile are dropped.
                proto = picture.encode(&frame, cells).map(|p| (p, cells));
                shown_frame = n;
                dirty = true;
            }
        }
        if dirty || status != last_status || last_draw.elapsed() >= Duration::from_millis(500) {
            terminal.draw(|f| draw(f, &status, proto.as_ref(), show_picture))?;
            last_draw = Instant::now();
            last_status = status;
        }
    }
}

fn layout(area: Rect) -> [Rect; 3] {
    Layout::vertical([Constraint::Min(1), Constraint::Length(1), Constraint::Length(1)]).areas(area)
}

/// Draws one screen: picture, status, footer. Pure: it only reads.
pub fn draw(f: &mut ratatui::Frame, status: &Status, picture: Option<&(Protocol, Rect)>, show_picture: bool) {
    let [video, status_area, footer] = layout(f.area());
    match picture {
        Some((p, cells)) => {
            let cells = cells.intersection(video);
            f.render_widget(Image::new(p), cells);
        }
        None => {
            let words = if show_picture { "waiting for the first frame…" } else { "the picture is in mpv" };
            let text = Paragraph::new(words).style(Style::default().fg(Color::DarkGray)).centered();
            f.render_widget(text, Rect { y: video.y + video.height / 2, height: 1.min(video.height), ..video });
        }
    }
    f.render_widget(Paragraph::new(status_line(status, status_area.width)), status_area);
    f.render_widget(Paragraph::new(keys::footer(footer.width)).style(Style::default().fg(Color::DarkGray)), footer);
}

fn status_line(s: &Status, width: u16) -> Line<'static> {
    let (icon, word, color) = if s.buffering {
        ("◌", "buffering", Color::Yellow)
    } else if !s.waiting.is_empty() {
        ("◌", "waiting", Color::Yellow)
    } else if s.room_playing {
        ("▶", "playing", Color::Green)
    } else {
        ("⏸", "paused", Color::Cyan)
    };
    let mut spans = vec![
        Span::styled(format!("{icon} {word} "), Style::default().fg(color).add_modifier(Modifier::BOLD)),
        Span::raw(format!("{} / {}", clock(s.position_ms), s.duration_ms.map_or("?".into(), clock))),
    ];
    if !s.waiting.is_empty() {
        spans.push(Span::styled(format!("  waiting for {}", s.waiting.join(", ")), Style::default().fg(Color::Yellow)));
    }
    spans.push(Span::raw(format!("  ↓ {:.1} MB/s  buf {:.1} MB", s.down_bps as f64 / 1e6, s.buffered_bytes as f64 / 1e6)));
    if let Some(d) = s.drift_ms {
        spans.push(Span::raw(format!("  drift {d:+} ms")));
    }
    spans.push(Span::raw(format!("  {}", s.quality)));
    if let Some(m) = &s.message {
        spans.push(Span::styled(format!("  {m}"), Style::default().fg(Color::Red)));
    }
    let _ = width;
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;

    fn text(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        (0..buf.area.height)
            .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>().trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn draws_status_and_footer_and_the_picture() {
        let status = Status {
            position_ms: 72_000,
            duration_ms: Some(600_000),
            room_playing: true,
            down_bps: 2_500_000,
            buffered_bytes: 12_000_000,
            drift_ms: Some(-3),
            quality: "high".into(),
            ..Status::default()
        };
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| draw(f, &status, None, true)).unwrap();
        let s = text(&t);
        assert!(s.contains("waiting for the first frame"), "{s}");
        assert!(s.contains("▶ playing 1:12 / 10:00  ↓ 2.5 MB/s  buf 12.0 MB  drift -3 ms  high"), "{s}");
        assert!(s.lines().last().unwrap().starts_with("space play/pause"), "{s}");

        // A red/blue frame in half blocks.
        let picture = Picture::new(Graphics::Halfblocks);
        let ((w, h), cells) = picture.fit(Rect::new(0, 0, 80, 22), (16, 9));
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        for (i, px) in rgb.chunks_mut(3).enumerate() {
            let y = i as u32 / w;
            px.copy_from_slice(if y < h / 2 { &[255, 0, 0] } else { &[0, 0, 255] });
        }
        let frame = crate::media::decode::VideoFrame { pts_us: 0, width: w, height: h, rgb };
        let proto = picture.encode(&frame, cells).unwrap();
        let waiting = Status { waiting: vec!["bob".into()], ..status };
        t.draw(|f| draw(f, &waiting, Some(&(proto, cells)), true)).unwrap();
        let buf = t.backend().buffer();
        let top = &buf[(40, cells.y)];
        assert_eq!(top.bg, Color::Rgb(255, 0, 0), "top half red");
        let bottom = &buf[(40, cells.y + cells.height - 1)];
        assert_eq!(bottom.bg, Color::Rgb(0, 0, 255), "bottom half blue");
        assert!(text(&t).contains("◌ waiting 1:12 / 10:00  waiting for bob"), "{}", text(&t));
    }
}
