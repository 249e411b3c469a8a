//! Frames as sixel images, within what the terminal said it takes: no larger than its
//! largest image (xterm draws nothing of one larger), no more colours than it has registers.

use std::fmt::Write;

/// The escape sequence that draws `rgb` (`w`×`h`, 3 bytes a pixel) at the cursor, over
/// `cells` (columns, rows) cleared first (a smaller frame must not leave the last one's edge
/// behind), with at most `colours` colours.
pub fn encode(rgb: &[u8], (w, h): (u32, u32), cells: (u16, u16), colours: u16) -> Option<String> {
    if w == 0 || h == 0 || rgb.len() != w as usize * h as usize * 3 {
        return None;
    }
    let mut rgba = Vec::with_capacity(rgb.len() / 3 * 4);
    for px in rgb.chunks_exact(3) {
        rgba.extend_from_slice(&[px[0], px[1], px[2], 255]);
    }
    let opts = icy_sixel::EncodeOptions { max_colors: colours.clamp(2, 256), ..Default::default() };
    let image = icy_sixel::sixel_encode(&rgba, w as usize, h as usize, &opts).map_err(|e| tracing::warn!("sixel: {e}")).ok()?;
    let mut out = String::with_capacity(image.len() + 16 * cells.1 as usize);
    clear(&mut out, cells);
    out.push_str(&image);
    Some(out)
}

/// Erases `cells` from the cursor down (ECH and a line down, each row), the cursor saved
/// and put back (a line down stops at the last row: counting back up would overshoot).
pub(super) fn clear(out: &mut String, (cols, rows): (u16, u16)) {
    out.push_str("\x1b7");
    for _ in 0..rows {
        let _ = write!(out, "\x1b[{cols}X\x1b[1B");
    }
    out.push_str("\x1b8");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_comes_back_from_its_sixel_at_its_size_in_its_colours() {
        // Two bars, red and blue, 8×12.
        let (w, h) = (8u32, 12u32);
        let rgb: Vec<u8> = (0..w * h).flat_map(|i| if i % w < 4 { [255, 0, 0] } else { [0, 0, 255] }).collect();
        let seq = encode(&rgb, (w, h), (1, 1), 16).unwrap();
        assert!(seq.starts_with("\x1b7\x1b[1X\x1b[1B\x1b8"), "the cell cleared first: {seq:?}");
        let dcs = &seq[seq.find("\x1bP").unwrap()..];
        let img = icy_sixel::SixelImage::decode(dcs.as_bytes()).unwrap();
        let (pixels, dw, dh) = (img.pixels, img.width, img.height);
        assert_eq!((dw, dh), (w as usize, h as usize));
        let at = |x: usize, y: usize| &pixels[(y * dw + x) * 4..(y * dw + x) * 4 + 3];
        assert_eq!(at(1, 5), [255, 0, 0]);
        assert_eq!(at(6, 5), [0, 0, 255]);
        assert!(seq.contains("\"1;1;8;12"), "the raster size declared: what the terminal checks against its maximum");
    }

    #[test]
    fn nothing_for_a_frame_that_is_not_one() {
        assert_eq!(encode(&[0; 5], (2, 1), (1, 1), 256), None);
        assert_eq!(encode(&[], (0, 0), (1, 1), 256), None);
    }
}
