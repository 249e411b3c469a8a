//! Plain-text rendering of engine events for a terminal without the dashboard.

use crate::core::api::Event;

/// One human-readable line per event (the words are the event's own, `Display`), on stderr.
pub fn print(ev: &Event) {
    match ev {
        Event::Room { link, links, .. } => print_links(link, links),
        _ => eprintln!("{}", line(ev)),
    }
}

/// The event's line, with what came over the network made safe for a terminal.
fn line(ev: &Event) -> String {
    let text = match ev {
        Event::Knock { peer, .. } => format!("{ev}: type `approve {peer}` or `deny {peer}` (or `ban {peer}`)"),
        _ => ev.to_string(),
    };
    crate::output::terminal::safe(&text, false).into_owned()
}

/// The room's links on stdout, the one to share when in doubt first.
fn print_links(link: &str, links: &[crate::core::api::LinkInfo]) {
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
    crate::output::stdout::write(&out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_or_notice_from_the_network_cannot_drive_the_terminal() {
        let knock = Event::Knock { peer: 7, name: "eve\u{1b}]0;owned\u{7}".into(), guest: "Qm9iIGtleSAx".into() };
        let l = line(&knock);
        assert!(!l.contains('\u{1b}') && !l.contains('\u{7}') && l.contains("eve\\u{1b}]0;owned"), "{l}");
        let notice = Event::Error { message: "bad\nsyncy: error: fake".into() };
        assert!(!line(&notice).contains('\n'), "{}", line(&notice));
    }
}
