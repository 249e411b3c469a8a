//! Frames placed directly with kitty's graphics protocol: the form every kitty takes (kitty
//! before 0.28 has no Unicode placeholders, and drops a command that asks for them). Two
//! image ids take turns: the new frame is placed under one while the other still shows,
//! then the view deletes the other, data and all (`OnScreen`), so nothing flickers and kitty
//! holds two images at most.

use std::fmt::Write;

use base64::Engine;

/// The two ids frames take turns under (any number kitty is not using for something else).
pub const IDS: [u32; 2] = [0x5359_4e01, 0x5359_4e02];

/// The most base64 a command carries (the protocol's limit).
const CHUNK: usize = 4096;

/// The escape sequence that places `rgb` (`w`×`h`) at the cursor, scaled into `cells`
/// (columns, rows), under `id` (replacing what was under it). The cursor does not move.
pub fn place(rgb: &[u8], (w, h): (u32, u32), (cols, rows): (u16, u16), id: u32) -> Option<String> {
    if w == 0 || h == 0 || rgb.len() != w as usize * h as usize * 3 {
        return None;
    }
    let data = base64::engine::general_purpose::STANDARD.encode(rgb);
    let mut out = String::with_capacity(data.len() + data.len() / CHUNK * 16 + 128);
    let chunks = data.as_bytes().chunks(CHUNK);
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.enumerate() {
        let more = u8::from(i < last);
        if i == 0 {
            // q=2: no answers (they would reach the key reader); C=1: the cursor stays.
            let _ = write!(out, "\x1b_Ga=T,f=24,t=d,i={id},p=1,q=2,C=1,s={w},v={h},c={cols},r={rows},m={more};");
        } else {
            let _ = write!(out, "\x1b_Gm={more};");
        }
        out.push_str(std::str::from_utf8(chunk).ok()?);
        out.push_str("\x1b\\");
    }
    Some(out)
}

/// Deletes the image `id` and frees its data.
pub fn delete(id: u32) -> String {
    format!("\x1b_Ga=d,d=I,i={id},q=2\x1b\\")
}

/// Deletes every image of ours.
pub fn delete_all() -> String {
    IDS.iter().map(|&id| delete(id)).collect()
}

/// The other id of the two.
pub fn other(id: u32) -> u32 {
    if id == IDS[0] { IDS[1] } else { IDS[0] }
}

/// Which of our images is on the screen, as the view last drew: what to delete after a draw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OnScreen(Option<u32>);

impl OnScreen {
    /// The id the next frame should take: not the one showing.
    pub fn next_id(&self) -> u32 {
        self.0.map_or(IDS[0], other)
    }

    /// A draw put `drawn` on the screen (None: no image of ours); what must go now.
    pub fn drawn(&mut self, drawn: Option<u32>) -> Option<String> {
        let before = std::mem::replace(&mut self.0, drawn);
        match (before, drawn) {
            (Some(old), Some(new)) if old != new => Some(delete(old)),
            (Some(_), None) => Some(delete_all()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_sent_in_chunks_placed_without_moving_the_cursor_and_the_old_one_deleted() {
        let (w, h) = (64u32, 48u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        let seq = place(&rgb, (w, h), (8, 3), IDS[1]).unwrap();
        let commands: Vec<&str> = seq.split("\x1b\\").filter(|c| !c.is_empty()).collect();
        let first = commands[0];
        assert!(first.starts_with(&format!("\x1b_Ga=T,f=24,t=d,i={},p=1,q=2,C=1,s=64,v=48,c=8,r=3,m=1;", IDS[1])), "{}", &first[..80]);
        // The payload, put back together, is the frame.
        let payload: String = commands.iter().map(|c| &c[c.find(';').unwrap() + 1..]).collect();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(payload).unwrap(), rgb);
        assert!(commands.iter().all(|c| c.len() <= CHUNK + 80));
        assert!(commands.last().unwrap().starts_with("\x1b_Gm=0;"), "the last chunk says so");
        assert_eq!(place(&rgb[1..], (w, h), (8, 3), IDS[0]), None);
    }

    #[test]
    fn the_image_no_longer_drawn_is_deleted_after_the_draw_and_all_when_none_is() {
        let [a, b] = IDS;
        let mut s = OnScreen::default();
        assert_eq!(s.next_id(), a);
        assert_eq!(s.drawn(Some(a)), None, "the first");
        assert_eq!(s.next_id(), b);
        assert_eq!(s.drawn(Some(b)), Some(delete(a)), "the new one placed, the old one goes");
        assert_eq!(s.drawn(Some(b)), None, "the same one again (a redraw)");
        // An overlay: the picture is left out, every image of ours goes.
        assert_eq!(s.drawn(None), Some(delete_all()));
        assert_eq!(s.drawn(None), None);
        assert_eq!(s.next_id(), a);
        assert_eq!(s.drawn(Some(b)), None, "the overlay closed: the last drawing placed again");
        assert_eq!(other(a), b);
        assert_eq!(other(b), a);
    }
}
