//! `chorus chaos`: proves under faults that no checkout is lost, stock is
//! conserved and nothing happens twice. Each scenario gets a fresh platform
//! of separate processes ([`cluster`]), runs a steady mix of checkouts
//! ([`load`]) while it breaks something, stops the load, waits for
//! quiescence and checks the invariants from outside ([`check`]).

pub mod check;
mod inject;
pub mod load;

use std::{collections::HashMap, path::PathBuf, time::Duration};

use chorus_runtime::{Config, config::ServiceDb};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use self::{
    check::{Ends, Invariant},
    inject::inject,
    load::{Load, Shelf},
};
use crate::{ChorusError, client::Api, cluster::Cluster};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL an orchestrator replica at random moments, then restart it.
    KillOrchestrator,
    /// SIGKILL each worker in turn, then restart it.
    KillWorkers,
    /// SIGKILL catalogue, inventory and orders in turn, then restart them.
    KillServices,
    /// Restart nats-server (its JetStream store kept) with checkouts in
    /// flight: stopped cleanly and killed, in turn.
    RestartNats,
    /// `timeout` and `error` faults on every service operation.
    Faults,
    /// Lost acks (redeliveries) and events re-published with their ids.
    Duplicates,
    /// Kill and restart the gateway under live subscriptions.
    RestartGateway,
    /// Take the inventory and orders databases offline in turn (Postgres
    /// only: connections refused and the open ones terminated).
    DbOutage,
    /// SIGKILL the node leading CHECKOUT_EVENTS, then bring it back (`--nats-cluster 3`).
    KillNatsLeader,
    /// Restart every NATS node in turn (`--nats-cluster 3`).
    RollingNatsRestart,
    /// Freeze (SIGSTOP) the stream's leader node past an election, then let it run (`--nats-cluster 3`).
    PauseNatsNode,
    /// Every NATS node down at once for up to 30 s, with checkouts in flight.
    NatsOutage,
    /// Freeze an orchestrator replica for twice its lease, then let it run:
    /// it must not drive a saga another replica took over (fencing).
    PauseOrchestrator,
}

impl Scenario {
    pub const ALL: [Scenario; 13] = [
        Scenario::KillOrchestrator,
        Scenario::KillWorkers,
        Scenario::KillServices,
        Scenario::RestartNats,
        Scenario::Faults,
        Scenario::Duplicates,
        Scenario::RestartGateway,
        Scenario::DbOutage,
        Scenario::KillNatsLeader,
        Scenario::RollingNatsRestart,
        Scenario::PauseNatsNode,
        Scenario::NatsOutage,
        Scenario::PauseOrchestrator,
    ];

    /// Whether the scenario needs a NATS cluster (`--nats-cluster 3`).
    fn needs_cluster(self) -> bool {
        matches!(self, Scenario::KillNatsLeader | Scenario::RollingNatsRestart | Scenario::PauseNatsNode)
    }

    fn name(self) -> &'static str {
        match self {
            Scenario::KillOrchestrator => "kill-orchestrator",
            Scenario::KillWorkers => "kill-workers",
            Scenario::KillServices => "kill-services",
            Scenario::RestartNats => "restart-nats",
            Scenario::Faults => "faults",
            Scenario::Duplicates => "duplicates",
            Scenario::RestartGateway => "restart-gateway",
            Scenario::DbOutage => "db-outage",
            Scenario::KillNatsLeader => "kill-nats-leader",
            Scenario::RollingNatsRestart => "rolling-nats-restart",
            Scenario::PauseNatsNode => "pause-nats-node",
            Scenario::NatsOutage => "nats-outage",
            Scenario::PauseOrchestrator => "pause-orchestrator",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// A scenario to run (repeat the flag for several); all by default.
    #[arg(long = "scenario", value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Seconds of faults per scenario (the load runs a little longer).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    pub clients: usize,
    /// NATS nodes: 1 (a single server) or 3 (a JetStream cluster on
    /// loopback, every stream, bucket and consumer at R3).
    #[arg(long = "nats-cluster", default_value_t = 1)]
    pub nats_cluster: usize,
    /// Seconds after the load stops within which every accepted checkout
    /// must have ended.
    #[arg(long, default_value_t = 90.0)]
    pub settle: f64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the Markdown table here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// Units of each plentiful product, and of the scarce one.
const PLENTY: i64 = 100_000;
const SCARCE: i64 = 6;
/// Load before and after the faults, so that recovery shows.
const CALM: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub attempted: u64,
    pub accepted: u64,
    pub completed: u64,
    pub compensated: u64,
    /// Accepted but not terminal within the bound: must be 0.
    pub lost: u64,
    pub invalid_refused: u64,
    pub unanswered: u64,
    pub faults_injected: usize,
    /// From each fault to the first checkout that succeeded after it.
    pub recover_ms_median: Option<u64>,
    pub recover_ms_max: Option<u64>,
    pub invariants: Vec<Invariant>,
    pub passed: bool,
}

#[derive(Debug, Serialize)]
pub struct ChaosReport {
    pub machine: String,
    pub duration_s: f64,
    pub clients: usize,
    pub scenarios: Vec<ScenarioReport>,
    pub passed: bool,
}

pub async fn run(args: ChaosArgs, config: &Config) -> Result<(), ChorusError> {
    let positive = |s: f64| s > 0.0 && s.is_finite();
    if !positive(args.duration) || !positive(args.settle) {
        return Err(ChorusError::Usage("--duration and --settle must be positive numbers of seconds".into()));
    }
    if args.clients == 0 {
        return Err(ChorusError::Usage("--clients must be at least 1".into()));
    }
    if args.nats_cluster != 1 && args.nats_cluster != 3 {
        return Err(ChorusError::Usage("--nats-cluster takes 1 or 3".into()));
    }
    let on_postgres = [ServiceDb::Inventory, ServiceDb::Orders]
        .iter()
        .all(|db| config.database_urls.get(db).is_some_and(|url| url.starts_with("postgres")));
    let scenarios = if args.scenarios.is_empty() {
        // Every scenario this backend can run.
        Scenario::ALL
            .into_iter()
            .filter(|s| on_postgres || *s != Scenario::DbOutage)
            .filter(|s| args.nats_cluster >= 3 || !s.needs_cluster())
            .collect()
    } else {
        args.scenarios.clone()
    };
    if let Some(s) = scenarios.iter().find(|s| s.needs_cluster() && args.nats_cluster < 3) {
        return Err(ChorusError::Usage(format!("{} breaks a NATS cluster: add --nats-cluster 3", s.name())));
    }
    if scenarios.contains(&Scenario::DbOutage) && !on_postgres {
        return Err(ChorusError::Usage(
            "db-outage takes Postgres databases offline: set INVENTORY_DATABASE_URL and ORDERS_DATABASE_URL to postgres:// URLs".into(),
        ));
    }
    let mut reports = Vec::new();
    for scenario in scenarios {
        eprintln!("chaos: {} …", scenario.name());
        let report = run_scenario(scenario, &args, config).await?;
        eprintln!(
            "chaos: {}: {} ({} accepted, {} lost)",
            scenario.name(),
            if report.passed { "passed" } else { "FAILED" },
            report.accepted,
            report.lost
        );
        reports.push(report);
    }
    let report = ChaosReport {
        machine: crate::bench::report::machine(),
        duration_s: args.duration,
        clients: args.clients,
        passed: reports.iter().all(|r| r.passed),
        scenarios: reports,
    };
    let markdown = markdown(&report);
    println!("{markdown}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &markdown).map_err(ChorusError::Output)?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| ChorusError::Chaos(e.to_string()))?;
        std::fs::write(path, json).map_err(ChorusError::Output)?;
    }
    if report.passed { Ok(()) } else { Err(ChorusError::Chaos("an invariant did not hold (see the report)".into())) }
}

async fn run_scenario(scenario: Scenario, args: &ChaosArgs, config: &Config) -> Result<ScenarioReport, ChorusError> {
    let extra: &[(&str, &str)] = match scenario {
        Scenario::Duplicates => &[("CHORUS_TEST_DROP_ACKS", "0.2")],
        _ => &[],
    };
    let mut cluster = Cluster::start(config, args.nats_cluster, extra).await?;
    // Keep the logs and databases unless the scenario passes.
    cluster.dir.disable_cleanup(true);
    let (shelf, stocked) = stock_shelf(&cluster.api).await?;
    let load = Load::start(&cluster.api, &shelf, args.clients, scenario == Scenario::RestartGateway);
    tokio::time::sleep(CALM).await;
    let injected = inject(scenario, &mut cluster, config, Duration::from_secs_f64(args.duration)).await;
    // Whatever the scenario left down comes back before the load ends.
    let healed = cluster.heal().await;
    tokio::time::sleep(CALM).await;
    let log = load.stop().await;
    let faults = injected?;
    healed?;
    let (ends, invariants) = check::run(&cluster, config, &log, &shelf, &stocked, Duration::from_secs_f64(args.settle)).await?;
    let recoveries = recoveries(&faults, &ends);
    let passed = ends.lost == 0 && invariants.iter().all(|i| i.ok);
    if passed {
        cluster.dir.disable_cleanup(false);
    } else {
        eprintln!("chaos: {} failed; the platform's logs are kept in {}", scenario.name(), cluster.path().display());
    }
    cluster.stop();
    Ok(ScenarioReport {
        scenario,
        attempted: log.attempted,
        accepted: log.accepted.len() as u64,
        completed: ends.completed,
        compensated: ends.compensated,
        lost: ends.lost,
        invalid_refused: log.invalid_refused,
        unanswered: log.unanswered,
        faults_injected: faults.len(),
        recover_ms_median: recoveries.get(recoveries.len() / 2).copied(),
        recover_ms_max: recoveries.last().copied(),
        invariants,
        passed,
    })
}

/// Milliseconds from each fault to the first success after it, sorted.
fn recoveries(faults: &[OffsetDateTime], ends: &Ends) -> Vec<u64> {
    let mut out: Vec<u64> = faults
        .iter()
        .filter_map(|t| {
            let first = ends.successes.iter().find(|s| *s > t)?;
            u64::try_from((*first - *t).whole_milliseconds()).ok()
        })
        .collect();
    out.sort_unstable();
    out
}

async fn stock_shelf(api: &Api) -> Result<(Shelf, HashMap<Uuid, i64>), ChorusError> {
    let mut stocked = HashMap::new();
    let mut create = async |name: &str, stock: i64| -> Result<Uuid, ChorusError> {
        let data = api
            .gql(
                "mutation($n: String!, $s: Int!) { createProduct(name: $n, priceCents: 250, stock: $s) { id } }",
                json!({ "n": name, "s": stock }),
            )
            .await
            .map_err(|e| ChorusError::Chaos(format!("cannot create products: {e}")))?;
        let id = data["createProduct"]["id"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| ChorusError::Chaos("createProduct returned no id".into()))?;
        stocked.insert(id, stock);
        Ok(id)
    };
    let mut plentiful = Vec::new();
    for i in 0..3 {
        plentiful.push(create(&format!("chaos {i}"), PLENTY).await?);
    }
    let scarce = create("chaos scarce", SCARCE).await?;
    Ok((Shelf { plentiful, scarce }, stocked))
}

pub fn markdown(report: &ChaosReport) -> String {
    let mut out = String::from(
        "| scenario | attempted | accepted | completed | compensated | lost | invalid refused | unanswered | faults | recover P50 | recover max | invariants |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let ms = |v: Option<u64>| v.map_or("–".to_owned(), |v| format!("{v} ms"));
    for r in &report.scenarios {
        let failed: Vec<&str> = r.invariants.iter().filter(|i| !i.ok).map(|i| i.name).collect();
        let verdict = if failed.is_empty() { format!("all {} hold", r.invariants.len()) } else { format!("FAILED: {}", failed.join("; ")) };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario.name(),
            r.attempted,
            r.accepted,
            r.completed,
            r.compensated,
            r.lost,
            r.invalid_refused,
            r.unanswered,
            r.faults_injected,
            ms(r.recover_ms_median),
            ms(r.recover_ms_max),
            verdict
        ));
    }
    for r in &report.scenarios {
        for i in r.invariants.iter().filter(|i| !i.ok) {
            out.push_str(&format!("\n{}: {} — {}", r.scenario.name(), i.name, i.detail));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_measured_to_the_first_success_after_each_fault() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let ms = |n: i64| t + time::Duration::milliseconds(n);
        let ends = Ends { successes: vec![ms(50), ms(400), ms(1_000)], ..Ends::default() };
        assert_eq!(recoveries(&[ms(100), ms(900), ms(2_000)], &ends), vec![100, 300]);
    }
}
