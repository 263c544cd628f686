//! The platform `chorus bench` starts for itself when given no `--url`:
//! `chorus up` in a temp dir on its own nats-server (or three), with the
//! counters the report reads (CPU by process and thread, NATS messages).

use std::{process::Stdio, time::Duration};

use chorus_runtime::{Config, config::ServiceDb, nats_server::free_port};

use super::{cpu, report};
use crate::client::Api;
use crate::ChorusError;

/// `chorus up` in a temp dir, on its own embedded nats-server.
pub(super) struct OwnPlatform {
    child: tokio::process::Child,
    pub(super) url: String,
    pub(super) backend: &'static str,
    /// The cluster `chorus up` runs against (`--nats-cluster 3`); dropped last.
    nats: Option<chorus_runtime::nats_cluster::NatsCluster>,
    /// Otherwise the one server it runs against, started here with its
    /// monitoring port, whose counters give messages per checkout.
    pub(super) server: Option<(chorus_runtime::nats_server::NatsServer, u16)>,
    /// `--durable`: every commit fsynced.
    durable: bool,
    dir: tempfile::TempDir,
}

impl OwnPlatform {
    pub(super) async fn start(config: &Config, nats_nodes: usize, durable: bool) -> Result<Self, ChorusError> {
        let dir = tempfile::Builder::new().prefix("chorus-bench-").tempdir().map_err(ChorusError::Output)?;
        let exe = std::env::current_exe().map_err(ChorusError::Output)?;
        let port = free_port().map_err(ChorusError::Output)?;
        let log = std::fs::File::create(dir.path().join("chorus.log")).map_err(ChorusError::Output)?;
        let store = dir.path().join("nats");
        let (nats, server) = match nats_nodes {
            1 => {
                let monitor = free_port().map_err(ChorusError::Output)?;
                let mut extra = vec!["-m".to_owned(), monitor.to_string()];
                if durable {
                    extra.extend(chorus_runtime::nats_server::NatsServer::sync_always(&store)?);
                }
                (None, Some((chorus_runtime::nats_server::NatsServer::start_free(&config.nats_server_bin, &store, extra)?, monitor)))
            }
            n => (Some(chorus_runtime::nats_cluster::NatsCluster::start(&config.nats_server_bin, &store, n)?), None),
        };
        let mut command = tokio::process::Command::new(exe);
        if let Some(cluster) = &nats {
            command.env("NATS_URL", cluster.urls()).env("CHORUS_STREAM_REPLICAS", "3");
        }
        if let Some((server, _)) = &server {
            command.env("NATS_URL", server.url());
        }
        let child = command
            .args(["up", "--no-seed"])
            .env("CHORUS_DATA_DIR", dir.path())
            .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
            .env("CHORUS_FAULT_INJECTION", "1")
            .env("CHORUS_DURABLE", if durable { "1" } else { "0" })
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ChorusError::Bench(format!("cannot start `chorus up`: {e}")))?;
        let backend = backend(config);
        let own = OwnPlatform { child, url: format!("http://127.0.0.1:{port}"), backend, nats, server, dir, durable };
        let api = Api::new(&own.url, None)?;
        if let Err(e) = api.wait_healthy(Duration::from_secs(60)).await {
            let log = std::fs::read_to_string(own.dir.path().join("chorus.log")).unwrap_or_default();
            return Err(ChorusError::Bench(format!("{e}; its log:\n{log}")));
        }
        Ok(own)
    }

    /// CPU seconds spent so far by `chorus up` and its children (nats-server),
    /// and the cluster's nodes when there is one.
    pub(super) fn cpu_seconds(&self) -> f64 {
        self.child.id().map(cpu::process_tree).unwrap_or(0.0) + self.all_nats_cpu_seconds()
    }

    /// CPU seconds of every nats-server the bench started: the single
    /// server, or the cluster's nodes.
    fn all_nats_cpu_seconds(&self) -> f64 {
        let nodes: f64 = self.nats.iter().flat_map(|c| (0..c.len()).filter_map(|i| c.pid_of(i))).map(cpu::process_tree).sum();
        nodes + self.nats_cpu_seconds().unwrap_or(0.0)
    }

    /// CPU seconds so far of `chorus up`'s threads by kind (runtime, sqlite,
    /// other) and of the nats-server(s) it runs.
    pub(super) fn threads(&self) -> std::collections::BTreeMap<&'static str, f64> {
        let mut threads = self.child.id().map(cpu::threads_by_kind).unwrap_or_default();
        threads.insert("nats-server", self.all_nats_cpu_seconds());
        threads
    }

    /// CPU seconds of the single nats-server started here.
    fn nats_cpu_seconds(&self) -> Option<f64> {
        self.server.as_ref().and_then(|(server, _)| server.pid()).map(cpu::process_tree)
    }

    /// How its databases and JetStream write to disk, said beside the figures.
    pub(super) fn durability(&self) -> String {
        durability(self.backend, self.durable, self.nats.is_some())
    }

    /// The single server's `in_msgs` and `out_msgs` (`/varz`).
    pub(super) async fn nats_counters(&self) -> Option<NatsCounters> {
        let (_, monitor) = self.server.as_ref()?;
        let varz: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{monitor}/varz")).await.ok()?.json().await.ok()?;
        Some(NatsCounters {
            messages_in: varz["in_msgs"].as_u64()?,
            messages_out: varz["out_msgs"].as_u64()?,
            cpu_s: self.nats_cpu_seconds()?,
        })
    }

    pub(super) async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SIGTERM: `chorus up` stops in order and takes nats-server with it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// A snapshot of what the bench's own nats-server has done.
#[derive(Clone, Copy, Debug)]
pub(super) struct NatsCounters {
    messages_in: u64,
    pub(super) messages_out: u64,
    cpu_s: f64,
}

impl NatsCounters {
    /// What was done between `self` and `later`, per one of `checkouts`.
    pub(super) fn per_checkout(self, later: NatsCounters, checkouts: u64) -> Option<report::NatsCost> {
        let n = checkouts as f64;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        (checkouts > 0).then(|| report::NatsCost {
            messages_in: round(later.messages_in.saturating_sub(self.messages_in) as f64 / n),
            messages_out: round(later.messages_out.saturating_sub(self.messages_out) as f64 / n),
            cpu_ms: round((later.cpu_s - self.cpu_s) * 1000.0 / n),
        })
    }
}

/// `postgres` or `sqlite`: what the inventory database (and so, with the
/// usual variables, every other) is.
pub(super) fn backend(config: &Config) -> &'static str {
    if config.database_url(ServiceDb::Inventory).starts_with("postgres") { "postgres" } else { "sqlite" }
}

/// How a platform the bench started writes to disk, for the report.
pub(super) fn durability(backend: &str, durable: bool, cluster: bool) -> String {
    let db = match (backend, durable) {
        ("postgres", true) => "Postgres `synchronous_commit=on`",
        ("postgres", false) => "Postgres `synchronous_commit=off`",
        (_, true) => "SQLite `synchronous=FULL`",
        (_, false) => "SQLite `synchronous=NORMAL` (WAL)",
    };
    let js = if durable { "JetStream `sync_interval: always`" } else { "JetStream's default sync interval (2 min)" };
    let replicas = if cluster { ", three nodes at R3" } else { "" };
    format!("{db}, {js}{replicas}")
}
