//! What a terminal says it can draw, and what we then draw with. Pure: the bytes to ask
//! with, the parsing of whatever comes back, and the choice. The asking itself is `probe`.
//!
//! Asked, not assumed (each answer from a real terminal is in the tests):
//! - the kitty graphics query, and the same with `U=1` (Unicode placeholders): kitty before
//!   0.28 does not know `U`, drops the command and says nothing, so an answer means
//!   placeholders work;
//! - XTVERSION (`CSI > 0 q`): the terminal's name and version;
//! - XTSMGRAPHICS: sixel colour registers (`CSI ? 1 ; 1 ; 0 S`), the sixel area now and at
//!   most (`? 2 ; 1` and `? 2 ; 4`): xterm draws nothing of a sixel image larger than its
//!   maximum (1000×1000 by default), so pictures are scaled to fit it;
//! - the cell and text-area size in pixels (`CSI 16 t`, `CSI 14 t`);
//! - DA1 (`CSI c`) last: every terminal answers it, so its answer ends the wait, and a `4`
//!   among its attributes means sixel.

/// The queries, DA1 last.
pub const QUERY: &[u8] = concat!(
    "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\",
    "\x1b_Gi=32,s=1,v=1,a=q,t=d,f=24,U=1;AAAA\x1b\\",
    "\x1b[>0q",
    "\x1b[?1;1;0S",
    "\x1b[?2;1;0S",
    "\x1b[?2;4;0S",
    "\x1b[16t",
    "\x1b[14t",
    "\x1b[c",
)
.as_bytes();

/// What came back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replies {
    /// DA1's attributes (`CSI ? 62 ; 4 ; … c`), once answered.
    pub da1: Option<Vec<u32>>,
    /// XTVERSION's text, e.g. `XTerm(379)`, `kitty(0.26.5)`.
    pub version: Option<String>,
    /// The kitty graphics query was answered OK.
    pub kitty: bool,
    /// The query with `U=1` was answered OK: Unicode placeholders work.
    pub kitty_placeholders: bool,
    /// Sixel colour registers.
    pub colour_registers: Option<u32>,
    /// The sixel area now (the text area, within the maximum), pixels.
    pub sixel_area: Option<(u32, u32)>,
    /// The largest sixel image, pixels.
    pub sixel_max: Option<(u32, u32)>,
    /// One cell, pixels (width, height).
    pub cell: Option<(u32, u32)>,
    /// The text area, pixels (width, height).
    pub text_area: Option<(u32, u32)>,
    /// How many sixel geometry answers came (they are told apart by their order).
    geometry_answers: u8,
}

impl Replies {
    /// Whether DA1 came (the end of the answers).
    pub fn complete(&self) -> bool {
        self.da1.is_some()
    }

    /// Whether DA1 says sixel.
    pub fn sixel(&self) -> bool {
        self.da1.as_ref().is_some_and(|a| a.contains(&4))
    }
}

/// Parses every answer in `bytes` (answers may come in any order, with anything between).
pub fn parse(bytes: &[u8]) -> Replies {
    let mut r = Replies::default();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0x1b || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        i = match bytes[i + 1] {
            b'[' => csi(bytes, i + 2, &mut r),
            b'P' => string(bytes, i + 2, |s| dcs(s, &mut r)),
            b'_' => string(bytes, i + 2, |s| apc(s, &mut r)),
            _ => i + 1,
        };
    }
    r
}

/// A CSI answer from `start` (just past `ESC [`); returns where the next one may start.
fn csi(bytes: &[u8], start: usize, r: &mut Replies) -> usize {
    let Some(len) = bytes[start..].iter().position(|b| (0x40..=0x7e).contains(b) || *b == 0x1b) else { return bytes.len() };
    if bytes[start + len] == 0x1b {
        // A torn answer: the next one starts here.
        return start + len;
    }
    let (body, last) = (&bytes[start..start + len], bytes[start + len]);
    let text = String::from_utf8_lossy(body);
    let private = text.strip_prefix('?');
    let nums: Vec<u32> = private.unwrap_or(&text).split(';').map(|n| n.parse().unwrap_or(0)).collect();
    match (private.is_some(), last, &nums[..]) {
        (true, b'c', _) => r.da1 = Some(nums[1.min(nums.len())..].iter().copied().filter(|&n| n != 0).collect()),
        // XTSMGRAPHICS: item; status (0 = success); values.
        (true, b'S', [1, 0, n, ..]) => r.colour_registers = Some(*n),
        // The two geometry answers carry no tag: they come in the order asked, the area first.
        (true, b'S', [2, status, rest @ ..]) => {
            r.geometry_answers += 1;
            let size = match (status, rest) {
                (0, [w, h, ..]) => Some((*w, *h)),
                _ => None,
            };
            match r.geometry_answers {
                1 => r.sixel_area = size,
                _ => r.sixel_max = size,
            }
        }
        (false, b't', [6, h, w, ..]) => r.cell = Some((*w, *h)),
        (false, b't', [4, h, w, ..]) => r.text_area = Some((*w, *h)),
        _ => {}
    }
    start + len + 1
}

/// A string control (DCS or APC) from `start`, up to ST (`ESC \`) or BEL; `f` gets its body.
fn string(bytes: &[u8], start: usize, f: impl FnOnce(&str)) -> usize {
    let rest = &bytes[start..];
    // Whichever terminator comes first: ST, or BEL.
    let st = rest.windows(2).position(|w| w == b"\x1b\\").map(|p| (p, 2));
    let bel = rest.iter().position(|&b| b == 7).map(|p| (p, 1));
    let end = match (st, bel) {
        (Some(s), Some(b)) => Some(if b.0 < s.0 { b } else { s }),
        (s, b) => s.or(b),
    };
    match end {
        Some((len, st)) => {
            f(&String::from_utf8_lossy(&rest[..len]));
            start + len + st
        }
        None => bytes.len(),
    }
}

fn dcs(body: &str, r: &mut Replies) {
    if let Some(v) = body.strip_prefix(">|") {
        r.version = Some(v.chars().filter(|c| !c.is_control()).take(64).collect());
    }
}

fn apc(body: &str, r: &mut Replies) {
    match body {
        "Gi=31;OK" => r.kitty = true,
        "Gi=32;OK" => r.kitty_placeholders = true,
        _ => {}
    }
}

/// How pictures are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Unicode half blocks, 24-bit colour: works everywhere.
    Halfblocks,
    /// Sixel, at most `max` pixels, with `colours` colours.
    Sixel { max: (u32, u32), colours: u16 },
    /// Kitty graphics; with Unicode placeholders (kitty ≥ 0.28), or placed directly.
    Kitty { placeholders: bool },
}

/// Where the program runs, as far as drawing goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    /// Inside tmux or screen: they answer queries themselves, and pass no graphics on
    /// unless set up to.
    pub multiplexer: bool,
    /// Over SSH: every byte of picture crosses the link.
    pub ssh: bool,
}

impl Place {
    /// From the environment.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Place {
        let term = var("TERM").unwrap_or_default();
        Place {
            multiplexer: var("TMUX").is_some() || var("STY").is_some() || term.starts_with("screen") || term.starts_with("tmux"),
            ssh: var("SSH_CONNECTION").is_some() || var("SSH_TTY").is_some(),
        }
    }
}

/// What the user asked for (`--render`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The best the terminal really draws.
    Best,
    Kitty,
    Sixel,
    Halfblocks,
}

/// xterm's default largest sixel image, for a terminal that says sixel but not its limit.
pub const SIXEL_MAX_DEFAULT: (u32, u32) = (1000, 1000);
/// The largest sixel image believed, whatever a terminal says (each side).
const SIXEL_MAX_BELIEVED: u32 = 4096;

/// The protocol to draw with. `Best` takes only what the answers show works: kitty when the
/// kitty query is answered (placeholders only when their own query is), sixel when DA1 says
/// so, half-blocks otherwise, and half-blocks in a multiplexer (its answers are its own, not
/// the terminal's). A protocol asked for by name is used even where the answers say nothing
/// (the user knows their terminal), within the limits they did give.
pub fn choose(r: &Replies, place: Place, wanted: Wanted) -> Protocol {
    let sixel = || Protocol::Sixel { max: sixel_max(r), colours: r.colour_registers.map_or(256, |n| n.clamp(2, 256) as u16) };
    let kitty = || Protocol::Kitty { placeholders: r.kitty_placeholders };
    match wanted {
        Wanted::Halfblocks => Protocol::Halfblocks,
        Wanted::Kitty => kitty(),
        Wanted::Sixel => sixel(),
        Wanted::Best if place.multiplexer => Protocol::Halfblocks,
        Wanted::Best if r.kitty => kitty(),
        Wanted::Best if r.sixel() => sixel(),
        Wanted::Best => Protocol::Halfblocks,
    }
}

/// The largest sixel image: the terminal's maximum, or xterm's default when it gives none.
fn sixel_max(r: &Replies) -> (u32, u32) {
    let max = r.sixel_max.filter(|&(w, h)| w > 0 && h > 0).unwrap_or(SIXEL_MAX_DEFAULT);
    (max.0.min(SIXEL_MAX_BELIEVED), max.1.min(SIXEL_MAX_BELIEVED))
}

/// One cell's size in pixels: as the terminal says (`16t`), else its text area over its
/// size in cells (`14t`, or the sixel area when under the maximum), else `window`'s pixels
/// (the kernel's idea), else 8×16.
pub fn cell_pixels(r: &Replies, cells: (u16, u16), window: Option<(u32, u32)>) -> (u32, u32) {
    let (cols, rows) = (cells.0.max(1) as u32, cells.1.max(1) as u32);
    let per_cell = |(w, h): (u32, u32)| (w / cols, h / rows);
    // The sixel area is the text area only where the maximum did not cut it.
    let max = r.sixel_max.unwrap_or(SIXEL_MAX_DEFAULT);
    let sixel_area = r.sixel_area.filter(|&(w, h)| w < max.0 && h < max.1);
    [r.cell, r.text_area.map(per_cell), sixel_area.map(per_cell), window.map(per_cell)]
        .into_iter()
        .flatten()
        // A cell is a few pixels to a few dozen (HiDPI): an answer past that is not believed.
        .find(|&(w, h)| (2..=64).contains(&w) && (4..=128).contains(&h))
        .unwrap_or((8, 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xterm 379 (Debian 12), `xterm -ti vt340 -fn 6x13 -geometry 150x48`, as it answered
    /// `QUERY` under Xvfb: no kitty, no `t` answers (window ops are off), 1024 registers.
    const XTERM: &[u8] = b"\x1bP>|XTerm(379)\x1b\\\x1b[?1;0;1024S\x1b[?2;0;900;624S\x1b[?2;0;1000;1000S\x1b[?63;1;2;4;6;9;15;16;22;28c";
    /// kitty 0.26.5 (Debian 12) at 8×17 cells: no answer to `U=1` nor to XTSMGRAPHICS.
    const KITTY_0_26: &[u8] = b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[6;17;8t\x1b[4;391;640t\x1b[?62;c";
    /// kitty 0.28 and later also answer the placeholder query.
    const KITTY_0_28: &[u8] = b"\x1b_Gi=31;OK\x1b\\\x1b_Gi=32;OK\x1b\\\x1bP>|kitty(0.35.2)\x1b\\\x1b[6;17;8t\x1b[4;391;640t\x1b[?62;52;c";
    /// xterm without sixel (`xterm`, VT420 default): geometry refused.
    const PLAIN_XTERM: &[u8] = b"\x1bP>|XTerm(379)\x1b\\\x1b[?1;3S\x1b[?2;3S\x1b[?2;3S\x1b[?64;1;2;6;9;15;16;17;18;21;22;28c";
    /// A terminal that answers DA1 only (e.g. the Linux console, GNU screen).
    const VT100: &[u8] = b"\x1b[?1;2c";

    #[test]
    fn xterms_answers_say_sixel_with_its_limits() {
        let r = parse(XTERM);
        assert!(r.complete() && r.sixel() && !r.kitty);
        assert_eq!(r.version.as_deref(), Some("XTerm(379)"));
        assert_eq!((r.colour_registers, r.sixel_area, r.sixel_max), (Some(1024), Some((900, 624)), Some((1000, 1000))));
        assert_eq!(choose(&r, Place::default(), Wanted::Best), Protocol::Sixel { max: (1000, 1000), colours: 256 });
        // No `t` answers: the cell comes from the sixel area, which is the text area here.
        assert_eq!(cell_pixels(&r, (150, 48), None), (6, 13));
        // At 200×60 the area is cut at the maximum's width (1200 → 1000): not the text area.
        let wide = parse(b"\x1b[?2;0;1000;780S\x1b[?2;0;1000;1000S\x1b[?63;4c");
        assert_eq!(cell_pixels(&wide, (200, 60), Some((1200, 780))), (6, 13), "from the window");
    }

    #[test]
    fn kitty_before_0_28_is_placed_directly_and_after_with_placeholders() {
        let old = parse(KITTY_0_26);
        assert!(old.complete() && old.kitty && !old.kitty_placeholders && !old.sixel());
        assert_eq!(old.version.as_deref(), Some("kitty(0.26.5)"));
        assert_eq!(choose(&old, Place::default(), Wanted::Best), Protocol::Kitty { placeholders: false });
        assert_eq!(cell_pixels(&old, (80, 24), None), (8, 17));
        let new = parse(KITTY_0_28);
        assert_eq!(choose(&new, Place::default(), Wanted::Best), Protocol::Kitty { placeholders: true });
    }

    #[test]
    fn what_answers_nothing_of_graphics_gets_half_blocks() {
        for bytes in [PLAIN_XTERM, VT100, b"" as &[u8]] {
            let r = parse(bytes);
            assert_eq!(choose(&r, Place::default(), Wanted::Best), Protocol::Halfblocks, "{r:?}");
        }
        assert!(parse(PLAIN_XTERM).complete() && !parse(b"\x1b[?2;3S").complete());
        assert_eq!(parse(PLAIN_XTERM).sixel_max, None, "a refusal is no size");
        assert_eq!(cell_pixels(&parse(VT100), (80, 24), Some((640, 384))), (8, 16), "from the window");
        assert_eq!(cell_pixels(&parse(VT100), (80, 24), Some((0, 0))), (8, 16), "nothing sane: 8×16");
    }

    #[test]
    fn in_a_multiplexer_the_answers_are_its_own_and_a_named_protocol_is_obeyed() {
        let tmux = Place { multiplexer: true, ssh: false };
        assert_eq!(choose(&parse(XTERM), tmux, Wanted::Best), Protocol::Halfblocks);
        assert_eq!(choose(&parse(KITTY_0_26), tmux, Wanted::Best), Protocol::Halfblocks);
        assert_eq!(choose(&parse(VT100), tmux, Wanted::Sixel), Protocol::Sixel { max: SIXEL_MAX_DEFAULT, colours: 256 });
        assert_eq!(choose(&parse(XTERM), Place::default(), Wanted::Kitty), Protocol::Kitty { placeholders: false });
        // Over SSH the answers come from the terminal itself: they hold.
        assert!(matches!(choose(&parse(XTERM), Place { multiplexer: false, ssh: true }, Wanted::Best), Protocol::Sixel { .. }));
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(Place::from_env(env(&[("TERM", "xterm"), ("SSH_TTY", "/dev/pts/1")])), Place { multiplexer: false, ssh: true });
        assert_eq!(Place::from_env(env(&[("TERM", "tmux-256color")])), Place { multiplexer: true, ssh: false });
        assert!(Place::from_env(env(&[("TERM", "xterm"), ("TMUX", "/tmp/x,1,0")])).multiplexer);
        assert_eq!(Place::from_env(env(&[("TERM", "xterm-256color")])), Place::default());
    }

    #[test]
    fn a_vt340_with_16_registers_gets_16_colours_and_odd_input_is_survived() {
        let r = parse(b"\x1b[?1;0;16S\x1b[?63;1;2;4c");
        assert_eq!(choose(&r, Place::default(), Wanted::Best), Protocol::Sixel { max: SIXEL_MAX_DEFAULT, colours: 16 });
        // Keys typed during the query, a torn answer, junk: parsed around, never a panic.
        let r = parse(b"q\x1b[?2;0;10\x1bP>|x\x1b[99999999999999;1t\x1b_G\x07\x1b[?;c");
        assert!(r.complete());
        // A torn answer does not swallow the next; the first terminator ends a string.
        let r = parse(b"\x1b[?2;0;10\x1b[?63;4c\x1b_Gi=31;OK\x07\x1bP>|x\x1b\\");
        assert!(r.sixel() && r.kitty && r.version.as_deref() == Some("x"));
        // Sizes no terminal has are not believed.
        let r = parse(b"\x1b[6;4000;3000t\x1b[?2;0;99999;99999S\x1b[?2;0;99999;99999S\x1b[?63;4c");
        assert_eq!(cell_pixels(&r, (80, 24), None), (8, 16));
        assert_eq!(choose(&r, Place::default(), Wanted::Best), Protocol::Sixel { max: (4096, 4096), colours: 256 });
        for cut in 0..KITTY_0_28.len() {
            let _ = parse(&KITTY_0_28[..cut]);
        }
    }
}
