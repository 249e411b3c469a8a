//! Reads a file's container, duration and codecs (header only, not a whole-file pass).

use std::path::Path;

/// What ffmpeg says about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// Container name (e.g. `mov,mp4,m4a,3gp,3g2,mj2`).
    pub container: String,
    /// Duration in milliseconds, if known.
    pub duration_ms: Option<u64>,
    /// Codec names of the streams.
    pub codecs: Vec<String>,
}

/// Probes `path`. A file ffmpeg cannot read is an error: Syncy streams media files.
pub fn probe(path: &Path) -> Result<MediaInfo, ffmpeg_next::Error> {
    super::init();
    let ictx = ffmpeg_next::format::input(&path)?;
    let duration = ictx.duration();
    let duration_ms = (duration > 0).then_some((duration as u64) / 1000);
    let codecs = ictx
        .streams()
        .map(|s| {
            let id = s.parameters().id();
            ffmpeg_next::codec::decoder::find(id).map(|c| c.name().to_string()).unwrap_or_else(|| format!("{id:?}").to_lowercase())
        })
        .collect();
    Ok(MediaInfo { container: ictx.format().name().to_string(), duration_ms, codecs })
}
