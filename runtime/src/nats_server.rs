//! A `nats-server` child process with JetStream: what `chorus up` runs when
//! `NATS_URL` is unset, and what every test runs so that tests never share
//! the machine's NATS.
//!
//! The child never outlives its parent: it is stopped on drop, and on Linux
//! it asks the kernel for SIGTERM when the thread that started it dies, so
//! even a SIGKILLed `chorus up` leaves no server behind.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a started server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    #[error("cannot start `{bin}` ({source}); install nats-server (Debian: apt-get install nats-server) or set NATS_URL")]
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
}

impl NatsServer {
    /// Starts a server on a free loopback port with its JetStream store in
    /// `store_dir` (created if needed, reused if it holds a previous store).
    pub fn start(bin: &str, store_dir: &Path) -> Result<Self, NatsServerError> {
        // A port found free may be taken by another process before the
        // server binds it; the server then exits, and another port is tried.
        let mut attempts = 0;
        loop {
            match Self::start_on(bin, store_dir, free_port().map_err(NatsServerError::Port)?) {
                Err(NatsServerError::Exited { .. }) if attempts < 4 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Like [`start`](Self::start) on a given port (a restart keeps its URL).
    pub fn start_on(bin: &str, store_dir: &Path, port: u16) -> Result<Self, NatsServerError> {
        std::fs::create_dir_all(store_dir)
            .map_err(|source| NatsServerError::StoreDir { path: store_dir.into(), source })?;
        let log = store_dir.join("nats-server.log");
        let mut command = Command::new(bin);
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store_dir)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| NatsServerError::Spawn { bin: bin.into(), source })?;
        let mut server = NatsServer { child: Some(child), port, store_dir: store_dir.into(), bin: bin.into() };
        server.wait_ready(&log)?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Stops the server (SIGTERM, JetStream flushes) and starts it again on
    /// the same port and store; clients reconnect on their own.
    pub fn restart(&mut self) -> Result<(), NatsServerError> {
        self.stop();
        let fresh = NatsServer::start_on(&self.bin, &self.store_dir, self.port)?;
        *self = fresh;
        Ok(())
    }

    /// Kills the server (SIGKILL: nothing flushed, no goodbye to clients)
    /// and starts it again on the same port and store.
    pub fn crash_restart(&mut self) -> Result<(), NatsServerError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let fresh = NatsServer::start_on(&self.bin, &self.store_dir, self.port)?;
        *self = fresh;
        Ok(())
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
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

#[cfg(unix)]
#[allow(unsafe_code)]
fn terminate(child: &Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else { return };
    // SAFETY: kill(2) with a pid we own and a valid signal has no memory effects.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

#[cfg(not(unix))]
fn terminate(_child: &Child) {}
