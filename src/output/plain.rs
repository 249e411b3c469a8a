//! Plain-text rendering of engine events for a terminal without the dashboard.

use crate::core::api::Event;

/// One human-readable line per event (the words are the event's own, `Display`).
pub fn print(ev: &Event) {
    match ev {
        Event::Room { link, links, .. } => print_links(link, links),
        Event::Knock { name, .. } => eprintln!("{ev}: type `approve {name}` or `deny {name}`"),
        _ => eprintln!("{ev}"),
    }
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
