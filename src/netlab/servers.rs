//! The servers on a test network, run inside its namespaces: `syncy serve`, coturn (STUN and
//! TURN), and a config file for the machines — shared by the network tests and
//! `syncy bench --suite networks`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Netns;

/// A background process; killed when dropped, so a failing test never leaves it running.
#[derive(Debug)]
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Netns {
    /// `program args…` in the background inside, its output in `log`.
    pub fn daemon(&self, program: &str, args: &[&str], log: &Path) -> Result<Daemon, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", self.name(), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        Ok(Daemon(child))
    }
}

/// `syncy serve` (the binary `exe`) on `ip:7878` inside `ns`, listening when this returns.
pub fn serve(ns: &Netns, exe: &Path, ip: &str, dir: &Path) -> Result<Daemon, String> {
    let listen = format!("{ip}:7878");
    let d = ns.daemon(&exe.to_string_lossy(), &["serve", "--listen", &listen], &dir.join("serve.log"))?;
    ns.wait_tcp(listen.parse().map_err(|e| format!("{listen}: {e}"))?, Duration::from_secs(10))?;
    Ok(d)
}

/// How coturn runs besides STUN and TURN on `ip`:3478 over UDP and TCP, user syncy/secret.
#[derive(Debug, Clone, Default)]
pub struct Coturn {
    /// More addresses to listen on (a second STUN server, to tell a symmetric NAT by).
    pub also: Vec<String>,
    /// TURN over TLS on 5349 too, with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// coturn inside `ns`, its files and log (`turn.log`) in `dir`; answering when this returns.
pub fn coturn(ns: &Netns, ip: &str, opts: &Coturn, dir: &Path) -> Result<Daemon, String> {
    if Command::new("turnserver").arg("--help").output().is_err() {
        return Err("coturn's turnserver is missing: run scripts/setup-debian.sh (it installs the coturn package)".into());
    }
    let mut args: Vec<String> = [
        "-n",
        "-v",
        "--simple-log",
        "--listening-port=3478",
        "--min-port=49152",
        "--max-port=65535",
        "--lt-cred-mech",
        "--user=syncy:secret",
        "--realm=syncy.test",
        "--no-dtls",
        "--no-cli",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--listening-ip={ip}"));
    args.push(format!("--relay-ip={ip}"));
    args.extend(opts.also.iter().map(|a| format!("--listening-ip={a}")));
    match &opts.tls {
        Some((cert, key)) => args.extend([format!("--cert={}", cert.display()), format!("--pkey={}", key.display()), "--tls-listening-port=5349".into()]),
        None => args.push("--no-tls".into()),
    }
    for (flag, file) in [("--pidfile", "turn.pid"), ("--userdb", "turndb"), ("--log-file", "turn.log")] {
        args.push(format!("{flag}={}", dir.join(file).display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = ns.daemon("turnserver", &args, &dir.join("turn-out.log"))?;
    ns.wait_tcp(format!("{ip}:3478").parse().map_err(|e| format!("{ip}: {e}"))?, Duration::from_secs(10))?;
    Ok(d)
}

/// A directory for `XDG_CONFIG_HOME` whose `syncy/config.toml` holds `toml`, private (0600) as
/// a file with a TURN password should be.
pub fn config_dir(dir: &Path, name: &str, toml: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let home = dir.join(name);
    let file = home.join("syncy/config.toml");
    let io = |e: std::io::Error| format!("{}: {e}", file.display());
    std::fs::create_dir_all(home.join("syncy")).map_err(io)?;
    std::fs::write(&file, toml).map_err(io)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(home)
}
