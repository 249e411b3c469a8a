//! The config file, so that a user names their signaling server, STUN and TURN once:
//! `$XDG_CONFIG_HOME/syncy/config.toml` (`~/.config/syncy/config.toml` without XDG_CONFIG_HOME,
//! or the file `SYNCY_CONFIG` names). `SYNCY_*` environment variables go over it, and flags
//! over both. A missing file is an empty config; a bad one is a clear error naming the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What the file may hold (every key optional).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The signaling server `syncy host` uses when neither `--server` nor `--listen` is given.
    pub server: Option<String>,
    /// STUN servers (`stun:HOST:PORT`).
    #[serde(default)]
    pub stun: Vec<String>,
    /// TURN servers (`turn:HOST:PORT`, `?transport=tcp`, `turns:`).
    #[serde(default)]
    pub turn: Vec<String>,
    /// TURN user name.
    pub turn_user: Option<String>,
    /// TURN password (keep the file private: `chmod 600`).
    pub turn_pass: Option<crate::secret::Secret>,
    /// `all` or `relay`.
    pub ice_policy: Option<String>,
    /// Map the host's signaling port on the router (UPnP IGD, else NAT-PMP).
    pub upnp: Option<bool>,
    /// Extra trusted certificates for `wss://`/`syncys://` servers.
    pub tls_ca: Option<PathBuf>,
    /// Display name.
    pub name: Option<String>,
}

/// Why the config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML, or holds a key or value we do not know.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// An environment variable holds something we cannot use.
    #[error("{0}: {1}")]
    Env(&'static str, String),
}

/// Where the config file is, whether or not it exists.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SYNCY_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Some(dir()?.join("config.toml"))
}

/// Syncy's config dir: `$XDG_CONFIG_HOME/syncy`, else `~/.config/syncy` (the config file and
/// the host's identity live there).
pub fn dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("syncy"))
}

/// The file's config with the environment over it, and the file it came from (when it exists).
pub fn load() -> Result<(Config, Option<PathBuf>), ConfigError> {
    let (file, from) = match path() {
        Some(p) if p.exists() => (read(&p)?, Some(p)),
        _ => (Config::default(), None),
    };
    Ok((with_env(file, |k| std::env::var(k).ok())?, from))
}

/// Reads and checks one config file.
pub fn read(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
    let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), one_line(&e.to_string())))?;
    cfg.check().map_err(|e| ConfigError::Parse(path.into(), e))?;
    if cfg.turn_pass.is_some() {
        warn_if_readable_by_others(path);
    }
    Ok(cfg)
}

/// toml's messages span lines, quoting the line at fault with a caret under the spot; one line
/// reads better after the file name, and the quoted line may hold the TURN password.
fn one_line(message: &str) -> String {
    let quoted = |l: &str| l.split_once('|').is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit()));
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty() && !quoted(l)).collect();
    // serde names the value it could not take (`invalid type: integer `12345678``): leave the
    // values out too.
    let mut out = String::new();
    for (i, part) in lines.join(" ").split('`').enumerate() {
        out.push_str(if i % 2 == 0 { part } else { "…" });
    }
    out
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!("{} holds a TURN password and others may read it: chmod 600 it", path.display());
        eprintln!("syncy: warning: {} holds a TURN password and others may read it; chmod 600 it", path.display());
    }
}

impl Config {
    fn check(&self) -> Result<(), String> {
        for s in &self.stun {
            crate::cli::parse_stun(s).map_err(|e| format!("stun: {e}"))?;
        }
        for t in &self.turn {
            crate::cli::parse_turn(t).map_err(|e| format!("turn: {e}"))?;
        }
        if let Some(p) = &self.ice_policy
            && p != "all"
            && p != "relay"
        {
            return Err(format!("ice_policy: expected \"all\" or \"relay\", got {p:?}"));
        }
        if let Some(s) = &self.server
            && !(s.starts_with("ws://") || s.starts_with("wss://"))
        {
            return Err(format!("server: expected a ws:// or wss:// URL, got {s:?}"));
        }
        Ok(())
    }
}

/// `SYNCY_*` variables over `file` (`get` reads one; tests pass their own).
pub fn with_env(mut cfg: Config, get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let list = |v: String| v.split([',', ' ']).filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>();
    if let Some(v) = get("SYNCY_SERVER") {
        cfg.server = Some(v);
    }
    if let Some(v) = get("SYNCY_STUN") {
        cfg.stun = list(v);
    }
    if let Some(v) = get("SYNCY_TURN") {
        cfg.turn = list(v);
    }
    if let Some(v) = get("SYNCY_TURN_USER") {
        cfg.turn_user = Some(v);
    }
    if let Some(v) = get("SYNCY_TURN_PASS") {
        cfg.turn_pass = Some(crate::secret::Secret::new(v));
    }
    if let Some(v) = get("SYNCY_ICE_POLICY") {
        cfg.ice_policy = Some(v);
    }
    if let Some(v) = get("SYNCY_UPNP") {
        cfg.upnp = Some(match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(ConfigError::Env("SYNCY_UPNP", format!("expected 1 or 0, got {v:?}"))),
        });
    }
    cfg.check().map_err(|e| ConfigError::Env("SYNCY_*", e))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        read(&p)
    }

    #[test]
    fn reads_the_servers_once() {
        let c = parse(
            r#"
            server = "wss://watch.example.org:7879/"
            stun = ["stun:stun.example.org:3478"]
            turn = ["turn:turn.example.org:3478", "turn:turn.example.org:3478?transport=tcp"]
            turn_user = "me"
            turn_pass = "secret"
            ice_policy = "all"
            upnp = true
            "#,
        )
        .unwrap();
        assert_eq!(c.server.as_deref(), Some("wss://watch.example.org:7879/"));
        assert_eq!(c.turn.len(), 2);
        assert_eq!(c.upnp, Some(true));
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn bad_files_say_where_and_what() {
        for (text, says) in [
            ("stun = \"stun:x\"", "invalid type"),
            ("stun = [\"http://x\"]", "stun: expected a URL starting with stun:"),
            ("surver = \"ws://x:1/\"", "unknown field"),
            ("ice_policy = \"some\"", "ice_policy"),
            ("server = \"syncy://x:1/r#k\"", "ws://"),
            ("stun = [", "config.toml"),
            ("turn_pass = hunter2", "line 1"),
            ("turn_pass = 12345678", "line 1"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("config.toml") && e.contains(says), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e:?}");
            assert!(!e.contains("hunter2") && !e.contains("12345678"), "the line at fault is not quoted (it may hold the password): {e}");
        }
    }

    #[test]
    fn the_environment_goes_over_the_file() {
        let file = Config { stun: vec!["stun:a:1".into()], turn_user: Some("file".into()), upnp: Some(true), ..Default::default() };
        let env = |k: &str| match k {
            "SYNCY_STUN" => Some("stun:b:1,stun:c:1".to_string()),
            "SYNCY_UPNP" => Some("0".to_string()),
            "SYNCY_TURN_USER" => Some("  ".to_string()),
            _ => None,
        };
        let c = with_env(file, env).unwrap();
        assert_eq!(c.stun, vec!["stun:b:1", "stun:c:1"]);
        assert_eq!(c.upnp, Some(false));
        assert_eq!(c.turn_user.as_deref(), Some("file"), "an empty variable does not count");
        let bad = with_env(Config::default(), |k| (k == "SYNCY_UPNP").then(|| "maybe".to_string()));
        assert!(bad.unwrap_err().to_string().contains("SYNCY_UPNP"));
    }
}
