//! Runs the real `syncy` binary headless and reads its JSON events.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_syncy")
}

/// A generated 720p clip shared by the tests of one run (generated once).
pub fn clip(name: &str, seconds: u32, bitrate: &str) -> PathBuf {
    clip_sized(name, seconds, bitrate, "1280x720")
}

/// A generated clip of a given frame size, shared by the tests of one run.
pub fn clip_sized(name: &str, seconds: u32, bitrate: &str, size: &str) -> PathBuf {
    clip_with(name, seconds, bitrate, size, "128kb/s")
}

/// A generated clip with a given sound bit rate too, shared by the tests of one run.
pub fn clip_with(name: &str, seconds: u32, bitrate: &str, size: &str, audio: &str) -> PathBuf {
    // Generated once per target directory and shared by all tests; a lock per clip keeps two
    // tests from writing the same clip at once, while different clips are made side by side.
    static LOCKS: Mutex<BTreeMap<PathBuf, Arc<Mutex<()>>>> = Mutex::new(BTreeMap::new());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let tag = if audio == "128kb/s" { String::new() } else { format!("{audio}-") };
    let path = dir.join(format!("{seconds}s-{bitrate}-{size}-{tag}{name}").replace('/', "_"));
    let lock = LOCKS.lock().unwrap_or_else(|e| e.into_inner()).entry(path.clone()).or_default().clone();
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let tmp = path.with_extension("part.mp4");
        let st = Command::new(bin())
            .args(["sample", tmp.to_str().unwrap(), "--duration", &seconds.to_string(), "--size", size, "--bitrate", bitrate, "--audio-bitrate", audio])
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A running `syncy` process with its event stream.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    pub seen: Vec<Value>,
    stderr: PathBuf,
}

impl Proc {
    pub fn spawn(args: &[&str], dir: &Path, tag: &str) -> Proc {
        Proc::spawn_env(args, dir, tag, &[])
    }

    /// Like `spawn`, with extra environment variables.
    pub fn spawn_env(args: &[&str], dir: &Path, tag: &str, env: &[(&str, &str)]) -> Proc {
        Proc::spawn_wrapped(&[], args, dir, tag, env)
    }

    /// Like `spawn_env`, run through `wrapper` (e.g. `ip netns exec NS`).
    pub fn spawn_wrapped(wrapper: &[&str], args: &[&str], dir: &Path, tag: &str, env: &[(&str, &str)]) -> Proc {
        let stderr = dir.join(format!("{tag}.stderr"));
        let mut cmd = match wrapper.split_first() {
            Some((program, pre)) => {
                let mut c = Command::new(program);
                c.args(pre).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        // Each test's own (empty) config dir, unless it brings one: a config file in the
        // machine's home never changes what a test does.
        let config = dir.join("xdg-config");
        let mut child = cmd
            .args(args)
            .env("XDG_CONFIG_HOME", &config)
            // What a user sees: one-line errors, not the whole report.
            .env_remove("RUST_BACKTRACE")
            .envs(env.iter().copied())
            // SYNCY_TEST_LOG sets the processes' RUST_LOG when a test needs looking into.
            .env("RUST_LOG", std::env::var("SYNCY_TEST_LOG").unwrap_or_else(|_| "warn,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                assert!(v["event"].is_string() && v["t_ms"].is_number(), "missing event/t_ms: {line}");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Proc { stdin: child.stdin.take(), child, events: rx, seen: vec![], stderr }
    }

    pub fn host(file: &Path, dir: &Path, extra: &[&str]) -> Proc {
        let mut args = vec!["host", file.to_str().unwrap(), "--headless", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Proc::spawn(&args, dir, "host")
    }

    /// `syncy join` as `name`, saving to `DIR/NAME.copy`. Each name is its own person: its
    /// own config dir (`DIR/xdg-config-NAME`), hence its own participant identity.
    pub fn join(link: &str, name: &str, dir: &Path, extra: &[&str]) -> Proc {
        let save = dir.join(format!("{name}.copy"));
        let mut args = vec!["join", link, "--headless", "--name", name, "--save", save.to_str().unwrap()];
        args.extend_from_slice(extra);
        let config = dir.join(format!("xdg-config-{name}"));
        Proc::spawn_env(&args, dir, name, &[("XDG_CONFIG_HOME", config.to_str().unwrap())])
    }

    /// Waits for an event matching `pred`, keeping everything seen.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_after(0, what, timeout, pred)
    }

    /// How many events have been seen (for `wait_after`).
    pub fn mark(&self) -> usize {
        self.seen.len()
    }

    /// Like `wait_for`, considering only events after the first `mark` seen.
    pub fn wait_after(&mut self, mark: usize, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        if let Some(v) = self.seen.iter().skip(mark).find(|v| pred(v)) {
            return v.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("timed out waiting for {what}; seen {:?}\nstderr: {}", self.tail(), self.stderr_text()),
                Err(RecvTimeoutError::Disconnected) => panic!("process ended before {what}; seen {:?}\nstderr: {}", self.tail(), self.stderr_text()),
            }
        }
    }

    /// Takes in every event printed so far, without waiting.
    pub fn drain(&mut self) {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
    }

    /// Keeps every event up to the end of its output (after the process has exited).
    pub fn drain_to_end(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while let Ok(v) = self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(v);
        }
    }

    pub fn event(&mut self, name: &str, timeout: Duration) -> Value {
        self.wait_for(name, timeout, |v| v["event"] == name)
    }

    fn tail(&self) -> Vec<String> {
        self.seen.iter().rev().take(5).map(|v| v.to_string().chars().take(300).collect()).collect()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Sends `quit` and waits for the exit code.
    pub fn quit(&mut self) -> i32 {
        self.send("quit");
        self.wait(Duration::from_secs(15))
    }

    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Drain what is left so `seen` is complete.
                while let Ok(v) = self.events.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(v);
                }
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process did not exit; stderr: {}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test leaves every event the process printed beside its stderr, for a
        // look afterwards (with SYNCY_KEEP_TEST_DIR where the directory is a temporary one).
        if std::thread::panicking() {
            self.drain();
            let lines: String = self.seen.iter().map(|v| format!("{v}\n")).collect();
            let _ = std::fs::write(self.stderr.with_extension("events"), lines);
        }
    }
}

/// A test's directory; SYNCY_KEEP_TEST_DIR keeps it (logs, copies) for a look afterwards.
pub fn test_dir() -> tempfile::TempDir {
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var_os("SYNCY_KEEP_TEST_DIR").is_some() {
        dir.disable_cleanup(true);
        eprintln!("test dir {}", dir.path().display());
    }
    dir
}

pub fn link_of(host: &mut Proc) -> String {
    let room = host.event("room", Duration::from_secs(30));
    let link = room["link"].as_str().unwrap().to_string();
    assert!(link.starts_with("syncy://127.0.0.1:"), "{link}");
    link
}

/// Held for the whole of a test whose bar is real time (no stall in a minute, two pictures
/// within 40 ms, pictures every second), and of the heaviest loads (a siege, terminals in X):
/// on this 2-core machine two of them side by side starve each other, nine WebRTC processes
/// beside a terminal emulator or a thousand connections, which says nothing of the product.
/// Lighter tests may run beside them (threads waiting for the lock wait, which costs only
/// time). Taken before anything else, a port least of all (one not held while waiting could be
/// taken by another test).
pub fn real_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A free TCP port on 127.0.0.1 (for servers that need their address before they start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A background process (a `syncy serve`, a TURN server) that goes when dropped, so a failing
/// test never leaves it holding a port.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program args` with no stdio and waits until 127.0.0.1:`port` accepts TCP.
pub fn daemon(program: &str, args: &[&str], port: u16) -> Daemon {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let d = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{program} did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}
