//! Text from the network made safe for a terminal (TRUST-REVIEW #15): names, notices, reasons
//! and errors from a host or a server reach stderr, where an ESC or OSC sequence would act
//! (set the title, write the clipboard, fake a link) and bidi controls would reorder what is
//! read. The dashboard is safe already (ratatui drops control characters); JSON is escaped.

use std::borrow::Cow;

/// `text` with every control character (the C0 and C1 sets: ESC, CSI, BEL, CR…) and every
/// invisible format character that hides or reorders text (zero-width, bidi embeddings,
/// overrides and isolates, the BOM) written as its escape, `\u{1b}`. Newlines stay only with
/// `keep_newlines` (a verbose report spans lines; a line of news must not fake another).
pub fn safe(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| (c.is_control() && !(keep_newlines && c == '\n') && c != '\t') || invisible(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Format characters that change what a reader sees without showing themselves, and the
/// Unicode line and paragraph separators (some terminals and editors break a line there: a
/// line that fakes another).
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on_and_leaves_the_rest() {
        assert!(matches!(safe("ann: 5 ms, café 日本 ▶", false), Cow::Borrowed(_)));
        // OSC 52 (write the clipboard), a title, CSI as C1, a bell.
        assert_eq!(safe("\u{1b}]52;c;ZXZpbA==\u{7}x", false), "\\u{1b}]52;c;ZXZpbA==\\u{7}x");
        assert_eq!(safe("a\u{9b}2Jb", false), "a\\u{9b}2Jb");
        // A right-to-left override that would make "exe.txt" read as "txt.exe".
        assert_eq!(safe("\u{202e}txt.exe", false), "\\u{202e}txt.exe");
        assert_eq!(safe("eve\u{2028}bob", false), "eve\\u{2028}bob");
        // A line of news cannot fake a second line or overwrite itself.
        assert_eq!(safe("bob\nsyncy: error: fake\r", false), "bob\\u{a}syncy: error: fake\\u{d}");
        assert_eq!(safe("one\ntwo\u{1b}", true), "one\ntwo\\u{1b}");
    }
}
