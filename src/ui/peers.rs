//! The peers table: who watches, how their link and buffer are doing.

use ratatui::layout::{Constraint, Flex};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Cell, Row, Table};

use super::format::{bytes, rate};
use super::host_model::{PeerRow, PeerState};
use crate::core::api::clock;

/// Columns: name, state, RTT, upload to them, buffer, position, drift, quality.
pub fn table(peers: &[PeerRow], selected: Option<u64>) -> Table<'static> {
    let header = Row::new(["name", "state", "rtt", "↑ to them", "buffer", "at", "drift", "quality"])
        .style(Style::default().fg(Color::DarkGray).add_modifier(Modifier::BOLD));
    // The selected row (Tab, for k and b) in reverse video.
    let rows: Vec<Row> =
        peers.iter().map(|p| if Some(p.peer) == selected { row(p).style(Style::default().add_modifier(Modifier::REVERSED)) } else { row(p) }).collect();
    let widths = [
        Constraint::Max(20),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    // Columns keep their widths on a wide terminal instead of stretching the name.
    Table::new(rows, widths).header(header).column_spacing(1).flex(Flex::Start)
}

/// What the empty table says, under its header.
pub const EMPTY: &str = "nobody yet: share the link (y copies it)";

/// "-3 ms", "+1.5 s": fits the 7-cell column.
pub fn drift(ms: i64) -> String {
    if ms.unsigned_abs() >= 1000 { format!("{:+.1} s", ms as f64 / 1000.0) } else { format!("{ms:+} ms") }
}

fn row(p: &PeerRow) -> Row<'static> {
    let state_color = match p.state {
        PeerState::Knocking => Color::Magenta,
        PeerState::Connecting => Color::DarkGray,
        PeerState::Watching => Color::Green,
        PeerState::Buffering => Color::Yellow,
    };
    let dash = || "–".to_string();
    let s = p.stats.as_ref();
    Row::new([
        Cell::from(p.name.clone()),
        Cell::from(p.state.word()).style(Style::default().fg(state_color)),
        Cell::from(s.and_then(|s| s.rtt_ms).map_or_else(dash, |r| format!("{r} ms"))),
        Cell::from(s.map_or_else(dash, |s| rate(s.up_bps))),
        Cell::from(s.map_or_else(dash, |s| bytes(s.buffered_bytes))),
        Cell::from(s.map_or_else(dash, |s| clock(s.position_ms))),
        Cell::from(s.and_then(|s| s.drift_ms).map_or_else(dash, drift)),
        Cell::from(s.map_or_else(dash, |s| s.quality.clone())),
    ])
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::core::api::PeerStats;

    #[test]
    fn peers_table_rows() {
        let stats = |up_bps, rtt, drift, buffering| PeerStats {
            peer: 0,
            name: String::new(),
            up_bps,
            rtt_ms: Some(rtt),
            buffered_bytes: 12_500_000,
            position_ms: 3_723_000,
            quality: "high".into(),
            sent_bytes: 0,
            drift_ms: Some(drift),
            buffering,
            relay_up_bps: None,
        };
        let rows = [
            PeerRow { peer: 1, name: "ann".into(), state: PeerState::Watching, guest: String::new(), stats: Some(stats(2_400_000, 3, -2, false)) },
            PeerRow {
                peer: 2,
                name: "a-very-long-participant-name".into(),
                state: PeerState::Buffering,
                guest: String::new(),
                stats: Some(stats(900, 250, 1500, true)),
            },
            PeerRow { peer: 3, name: "cy".into(), state: PeerState::Connecting, guest: String::new(), stats: None },
        ];
        let mut t = Terminal::new(TestBackend::new(80, 4)).unwrap();
        t.draw(|f| f.render_widget(table(&rows, Some(3)), f.area())).unwrap();
        insta::assert_snapshot!(t.backend());
        // The selected row (cy's, the last) stands out; the others do not.
        let reversed = |y: u16| t.backend().buffer()[(0, y)].modifier.contains(Modifier::REVERSED);
        assert!(reversed(3) && !reversed(1) && !reversed(2));
    }
}
