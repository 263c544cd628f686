//! The platform as separate processes on this machine, for the chaos suite
//! and `chorus bench --crash`:
//! one nats-server or a cluster of them (their JetStream stores kept across
//! restarts, every stream at R3 on a cluster), each service,
//! two orchestrator replicas, each worker and the gateway as its own
//! `chorus` process, every one of them killable and restartable.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use chorus_runtime::{
    Config,
    config::ServiceDb,
    nats_cluster::NatsCluster,
    nats_server::{die_with_parent, free_port},
};
use chorus_workers::WorkerName;
use nix::{sys::signal::Signal, unistd::Pid};

use crate::{ChorusError, client::Api};

fn cluster_err(message: impl std::fmt::Display) -> ChorusError {
    ChorusError::Processes(message.to_string())
}

/// One role's process.
pub struct Proc {
    pub name: String,
    args: Vec<String>,
    child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nats: NatsCluster,
    pub api: Api,
    procs: Vec<Proc>,
    env: Vec<(String, String)>,
    exe: PathBuf,
}

impl Cluster {
    /// Starts every role and waits until the gateway reports all healthy.
    /// `extra` is added to every process's environment.
    pub async fn start(config: &Config, nats_nodes: usize, extra: &[(&str, &str)]) -> Result<Cluster, ChorusError> {
        let dir = tempfile::Builder::new().prefix("chorus-chaos-").tempdir().map_err(ChorusError::Output)?;
        let nats = NatsCluster::start(&config.nats_server_bin, &dir.path().join("nats"), nats_nodes)?;
        let port = free_port().map_err(ChorusError::Output)?;
        let mut env: Vec<(String, String)> = vec![
            ("NATS_URL".into(), nats.urls()),
            ("CHORUS_STREAM_REPLICAS".into(), nats_nodes.min(3).to_string()),
            ("CHORUS_DATA_DIR".into(), dir.path().join("data").display().to_string()),
            ("GATEWAY_ADDR".into(), format!("127.0.0.1:{port}")),
            ("CHORUS_FAULT_INJECTION".into(), "1".into()),
            // Short enough that a killed replica's work is taken over
            // within the suite's bound.
            ("CHORUS_SAGA_LEASE".into(), "3s".into()),
            ("CHORUS_ACK_WAIT".into(), "3s".into()),
            ("CHORUS_STALL_DEADLINE".into(), "20s".into()),
            ("RUST_LOG".into(), std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())),
        ];
        // The databases the caller chose (Postgres when the variables say so).
        env.extend(config.database_urls.iter().map(|(db, url)| (db.env_var().to_owned(), url.clone())));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut roles: Vec<(String, Vec<String>)> = ["catalogue", "inventory", "orders"]
            .iter()
            .map(|s| ((*s).to_owned(), vec!["service".to_owned(), (*s).to_owned()]))
            .collect();
        for replica in 1..=2 {
            roles.push((format!("orchestrator-{replica}"), vec!["service".into(), "orchestrator".into()]));
        }
        for worker in WorkerName::ALL {
            roles.push((worker.as_str().to_owned(), vec!["worker".into(), worker.as_str().to_owned()]));
        }
        roles.push(("gateway".into(), vec!["gateway".into()]));
        let exe = std::env::current_exe().map_err(ChorusError::Output)?;
        let api = Api::new(&format!("http://127.0.0.1:{port}"), None)?;
        let mut cluster = Cluster {
            dir,
            nats,
            api,
            procs: roles.into_iter().map(|(name, args)| Proc { name, args, child: None }).collect(),
            env,
            exe,
        };
        for i in 0..cluster.procs.len() {
            cluster.spawn(i)?;
        }
        cluster.wait_healthy().await?;
        Ok(cluster)
    }

    /// Where `db` lives for the processes of this cluster.
    pub fn database_url(&self, config: &Config, db: ServiceDb) -> String {
        let mut config = config.clone();
        config.data_dir = self.dir.path().join("data");
        config.database_url(db)
    }

    /// The names of the processes, in start order.
    pub fn names(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.name.clone()).collect()
    }

    fn index(&self, name: &str) -> Result<usize, ChorusError> {
        self.procs.iter().position(|p| p.name == name).ok_or_else(|| cluster_err(format!("no process {name}")))
    }

    fn spawn(&mut self, i: usize) -> Result<(), ChorusError> {
        let proc = &mut self.procs[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", proc.name)))
            .map_err(ChorusError::Output)?;
        let mut command = Command::new(&self.exe);
        command
            .args(&proc.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        die_with_parent(&mut command);
        proc.child = Some(command.spawn().map_err(|e| cluster_err(format!("cannot start {}: {e}", proc.name)))?);
        Ok(())
    }

    /// Starts one more process of a role (a second replica of a worker,
    /// say) as `name`, with the same environment as the rest.
    pub fn add(&mut self, name: &str, args: &[&str]) -> Result<(), ChorusError> {
        self.procs.push(Proc { name: name.to_owned(), args: args.iter().map(|a| (*a).to_owned()).collect(), child: None });
        self.spawn(self.procs.len() - 1)
    }

    /// SIGKILL: no graceful stop, no hand-back, nothing flushed.
    pub fn kill(&mut self, name: &str) -> Result<(), ChorusError> {
        let i = self.index(name)?;
        if let Some(mut child) = self.procs[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Freezes a process (SIGSTOP) or lets it run again (SIGCONT): a
    /// replica whose machine stalls, then wakes up believing it still leads.
    pub fn freeze(&mut self, name: &str, frozen: bool) -> Result<(), ChorusError> {
        let i = self.index(name)?;
        if let Some(pid) = self.procs[i].child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) {
            let signal = if frozen { Signal::SIGSTOP } else { Signal::SIGCONT };
            nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(cluster_err)?;
        }
        Ok(())
    }

    /// Starts a killed process again (a no-op for one that runs).
    pub fn restart(&mut self, name: &str) -> Result<(), ChorusError> {
        let i = self.index(name)?;
        if self.procs[i].child.is_none() {
            self.spawn(i)?;
        }
        Ok(())
    }

    /// Starts whatever is not running, then waits for health.
    pub async fn heal(&mut self) -> Result<(), ChorusError> {
        for i in 0..self.procs.len() {
            let exited = match self.procs[i].child.as_mut() {
                None => true,
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            };
            if exited {
                tracing::warn!(process = %self.procs[i].name, "not running: starting it again");
                self.procs[i].child = None;
                self.spawn(i)?;
            }
        }
        self.wait_healthy().await
    }

    pub async fn wait_healthy(&self) -> Result<(), ChorusError> {
        self.api.wait_healthy(Duration::from_secs(60)).await.map_err(|e| {
            cluster_err(format!("{e}; the logs are kept in {}", self.dir.path().display()))
        })
    }

    /// The end of every process's log, for a report on failure.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stops every process (SIGTERM, then SIGKILL) and the server.
    pub fn stop(mut self) {
        for proc in &mut self.procs {
            if let Some(pid) = proc.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) {
                // A frozen one must wake to act on SIGTERM.
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGCONT);
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for proc in &mut self.procs {
            if let Some(mut child) = proc.child.take() {
                while std::time::Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for i in 0..self.nats.len() {
            self.nats.node(i).stop();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            if let Some(mut child) = proc.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
