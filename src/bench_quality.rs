//! `syncy bench --suite quality`: how fast the host makes renditions, in multiples of real
//! time, beside decoding the same clip alone (the floor any transcode pays) in the same run.

use std::path::Path;
use std::time::Instant;

use color_eyre::eyre::Result;

use crate::bench_playback::decode_each;
use crate::media::sample::{SampleSpec, write_sample};
use crate::media::transcode::{levels, transcode};

/// Runs the suite; returns the Markdown section.
pub async fn run() -> Result<String> {
    let dir = tempfile::tempdir()?;
    let mut out = String::from("| source | work | seconds for 20 s of media | × real time |\n|---|---|---|---|\n");
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let clip = dir.path().join(format!("src{h}.mp4"));
        eprintln!("preparing a 20 s {w}x{h} clip…");
        let spec = SampleSpec { duration: 20.0, width: w, height: h, video_bitrate: if h > 720 { 8_000_000 } else { 4_000_000 }, ..Default::default() };
        let c = clip.clone();
        tokio::task::spawn_blocking(move || write_sample(&c, &spec)).await??;
        let c = clip.clone();
        let rows = tokio::task::spawn_blocking(move || -> Result<Vec<(String, f64)>> {
            let mut rows = Vec::new();
            let t = Instant::now();
            decode_each(&c, (160, 90), &mut |_| Ok(()))?;
            rows.push(("decode only (baseline)".to_string(), t.elapsed().as_secs_f64()));
            for (name, r) in levels() {
                let out = c.with_extension(format!("{name}.mp4"));
                let t = Instant::now();
                transcode(Path::new(&c), &out, &r, 0, |_| true)?;
                rows.push((format!("transcode to {name} ({}p, {} kb/s)", r.height.min(h), r.video_bps / 1000), t.elapsed().as_secs_f64()));
            }
            Ok(rows)
        })
        .await??;
        for (what, secs) in rows {
            eprintln!("{w}x{h} {what}: {secs:.2} s = {:.1}× real time", 20.0 / secs);
            out += &format!("| {w}×{h} H.264 | {what} | {secs:.2} | {:.1}× |\n", 20.0 / secs);
        }
    }
    out += "\nOne transcode at a time on the 2-core machine, H.264 `veryfast` without B-frames + AAC into fragmented MP4, from the start of the clip; decode only is the same clip through the player's decoder thread scaled to 160×90.\n";
    Ok(out)
}
