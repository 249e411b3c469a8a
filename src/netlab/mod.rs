//! Test networks out of Linux network namespaces (the maintainers' NETWORKS.md recipes): machines on a LAN, homes
//! behind NAT routers on an "internet", a symmetric NAT, a network that blocks UDP. The network
//! tests and `syncy bench --suite networks` build them, run the real `syncy` inside with
//! `ip netns exec`, exactly as the README gives the commands, and tear them down when dropped.
//!
//! Traffic only ever flows between namespaces made here: none of them has a link to the
//! machine's own network. Needs root, iproute2 and nftables; [`available`] says why not.

mod servers;
mod topology;

pub use servers::{Coturn, Daemon, config_dir, coturn, serve};
pub use topology::{Homes, HomesSpec, Lan};

use std::fs::File;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What every namespace made here is called first (then the process id, a number, the role):
/// only those are ever swept away.
const PREFIX: &str = "syncylab-";

/// A network namespace; deleted (with what is left in it) when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// Why the test networks cannot be built here, or `Ok`.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("network namespaces need root".into());
    }
    for (tool, args) in [("ip", &["-V"][..]), ("nft", &["-v"][..])] {
        match Command::new(tool).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(s) if s.success() => {}
            _ => {
                return Err(format!("`{tool}` is missing (Debian: iproute2, nftables; scripts/setup-debian.sh installs both)"));
            }
        }
    }
    let probe = Netns::new("probe")?;
    drop(probe);
    Ok(())
}

/// Runs `program args…`; the error says what failed and what it printed.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes()).map_err(|e| format!("{program}: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() { Ok(out) } else { Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())) }
}

impl Netns {
    /// A new, empty namespace with loopback up, named after this process and `role`.
    pub fn new(role: &str) -> Result<Netns, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_stale);
        let name = format!("{PREFIX}{}-{}-{role}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        run("ip", &["netns", "add", &name], None)?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command prefix that runs a program inside.
    pub fn wrapper(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    /// `ip -n NS args…`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full, None).map(|_| ())
    }

    /// Runs `program args…` inside and returns what it printed.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full, None).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Loads an nftables script inside.
    pub fn nft(&self, script: &str) -> Result<(), String> {
        run("ip", &["netns", "exec", &self.name, "nft", "-f", "-"], Some(script)).map(|_| ())
    }

    /// Sets a sysctl inside (`net.ipv4.ip_forward`, …).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), String> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")]).map(|_| ())
    }

    /// Adds an address to an interface and brings it up.
    pub fn addr(&self, dev: &str, cidr: &str) -> Result<(), String> {
        // IPv6 addresses skip duplicate-address detection, which would hold them back ~2 s.
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(&args)?;
        self.ip(&["link", "set", dev, "up"])
    }

    /// Runs `f` on a thread inside this namespace (a socket made there stays there).
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || -> Result<T, String> {
            let ns = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a namespace file this thread holds open; it moves this thread
            // only, which ends with the closure.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
            }
            Ok(f())
        })
        .join()
        .map_err(|_| "a thread in the namespace panicked".to_string())?
    }

    /// Waits until something inside accepts TCP connections on `addr`.
    pub fn wait_tcp(&self, addr: std::net::SocketAddr, timeout: Duration) -> Result<(), String> {
        self.run_in(move || {
            let deadline = Instant::now() + timeout;
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if Instant::now() > deadline {
                    return Err(format!("nothing listens on {addr} after {timeout:?}"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name], None);
    }
}

/// Joins `a`'s interface `a_dev` to `b`'s `b_dev` with a veth pair, made straight inside the
/// two namespaces (no name ever exists in the machine's own).
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) -> Result<(), String> {
    a.ip(&["link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b.name()])
}

/// Namespaces left by a test process that died before it could delete them.
fn sweep_stale() {
    let Ok(out) = run("ip", &["netns", "list"], None) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name], None);
        }
    }
}

/// For a test that cannot build its network: `SKIPPED: reason` on stderr, or, with `CI` set
/// (where the network must be there), a failure.
pub fn skip(reason: &str) {
    skip_under(std::env::var_os("CI").is_some(), reason);
}

fn skip_under(ci: bool, reason: &str) {
    if ci {
        panic!("the test network cannot be built here and CI is set: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_ci_a_network_that_cannot_be_built_is_skipped() {
        super::skip_under(false, "no root");
    }

    #[test]
    #[should_panic(expected = "CI is set: no root")]
    fn under_ci_it_fails() {
        super::skip_under(true, "no root");
    }
}
