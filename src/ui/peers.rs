//! The peers table: who watches, how their link and buffer are doing.

use ratatui::layout::{Constraint, Flex};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Cell, Row, Table};


use super::format::{bytes, rate};
use super::room::{PeerRow, PeerState};
use crate::units::clock;

/// Columns: name, state, RTT, upload to them, buffer, position, drift, quality.
pub fn table(peers: &[PeerRow]) -> Table<'static> {
    let header = Row::new(["name", "state", "rtt", "↑ to them", "buffer", "at", "drift", "quality"])
        .style(Style::default().fg(Color::DarkGray).add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = peers.iter().map(row).collect();
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

fn row(p: &PeerRow) -> Row<'static> {
    let state_color = match p.state {
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
        Cell::from(s.and_then(|s| s.drift_ms).map_or_else(dash, |d| format!("{d:+} ms"))),
        Cell::from(s.map_or_else(dash, |s| s.quality.clone())),
    ])
}
