//! How each chaos scenario breaks the platform: kills, freezes, outages,
//! faults and duplicate deliveries, each at a moment it records.

use std::time::Duration;

use chorus_runtime::{Config, config::{FAULT_TARGETS, ServiceDb}};
use chorus_workers::WorkerName;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Scenario;
use crate::{ChorusError, client::Api, cluster::Cluster};

/// Breaks the platform the scenario's way for `duration`; returns when each
/// fault struck.
pub(super) async fn inject(scenario: Scenario, cluster: &mut Cluster, config: &Config, duration: Duration) -> Result<Vec<OffsetDateTime>, ChorusError> {
    let until = tokio::time::Instant::now() + duration;
    let mut faults = Vec::new();
    let jitter = |from: f64, to: f64| Duration::from_secs_f64(from + rand::random::<f64>() * (to - from));
    match scenario {
        Scenario::KillOrchestrator | Scenario::KillWorkers | Scenario::KillServices => {
            let targets: Vec<String> = match scenario {
                Scenario::KillOrchestrator => vec!["orchestrator-1".into(), "orchestrator-2".into()],
                Scenario::KillWorkers => WorkerName::ALL.iter().map(|w| w.as_str().to_owned()).collect(),
                _ => vec!["catalogue".into(), "inventory".into(), "orders".into()],
            };
            let mut next = 0;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(jitter(0.2, 1.0)).await;
                let target = &targets[next % targets.len()];
                next += 1;
                faults.push(OffsetDateTime::now_utc());
                cluster.kill(target)?;
                tokio::time::sleep(jitter(0.3, 1.0)).await;
                cluster.restart(target)?;
            }
        }
        Scenario::RestartNats => {
            let mut crash = false;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(jitter(1.0, 3.0)).await;
                faults.push(OffsetDateTime::now_utc());
                // A clean stop and a SIGKILL in turn.
                tokio::task::block_in_place(|| if crash { cluster.nats.node(0).crash_restart() } else { cluster.nats.node(0).restart() })?;
                crash = !crash;
            }
        }
        Scenario::Faults => {
            faults.push(OffsetDateTime::now_utc());
            for (i, target) in FAULT_TARGETS.iter().enumerate() {
                let mode = if i % 2 == 0 { "ERROR" } else { "TIMEOUT" };
                set_fault(&cluster.api, target, mode, 0.3).await?;
            }
            tokio::time::sleep_until(until).await;
            for target in FAULT_TARGETS {
                set_fault(&cluster.api, target, "NONE", 0.0).await?;
            }
        }
        Scenario::Duplicates => {
            let nats = chorus_runtime::nats::connect(&cluster.nats.urls(), "chorus-chaos").await?;
            let js = async_nats::jetstream::new(nats);
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(jitter(0.2, 0.5)).await;
                faults.push(OffsetDateTime::now_utc());
                republish_some(&js, 3).await?;
            }
        }
        Scenario::RestartGateway => {
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(jitter(1.0, 2.5)).await;
                faults.push(OffsetDateTime::now_utc());
                cluster.kill("gateway")?;
                tokio::time::sleep(jitter(0.3, 1.0)).await;
                cluster.restart("gateway")?;
                cluster.wait_healthy().await?;
            }
        }
        Scenario::KillNatsLeader | Scenario::PauseNatsNode => {
            let nats = chorus_runtime::nats::connect(&cluster.nats.urls(), "chorus-chaos").await?;
            let js = async_nats::jetstream::new(nats);
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(jitter(1.0, 2.0)).await;
                let leader = stream_leader(&js, &cluster.nats).await?;
                faults.push(OffsetDateTime::now_utc());
                if scenario == Scenario::KillNatsLeader {
                    cluster.nats.node(leader).kill();
                    tokio::time::sleep(jitter(4.0, 8.0)).await;
                    tokio::task::block_in_place(|| cluster.nats.node(leader).start_again())?;
                } else {
                    // Longer than an election (about 2 s), so the others move on.
                    cluster.nats.node(leader).pause();
                    tokio::time::sleep(jitter(5.0, 8.0)).await;
                    cluster.nats.node(leader).resume();
                }
                tokio::time::sleep(jitter(3.0, 5.0)).await;
            }
        }
        Scenario::RollingNatsRestart => {
            while tokio::time::Instant::now() < until {
                for i in 0..cluster.nats.len() {
                    faults.push(OffsetDateTime::now_utc());
                    tokio::task::block_in_place(|| cluster.nats.node(i).restart())?;
                    tokio::time::sleep(jitter(2.0, 4.0)).await;
                }
            }
        }
        Scenario::NatsOutage => {
            faults.push(OffsetDateTime::now_utc());
            for i in 0..cluster.nats.len() {
                cluster.nats.node(i).kill();
            }
            tokio::time::sleep(duration.min(Duration::from_secs(30))).await;
            for i in 0..cluster.nats.len() {
                tokio::task::block_in_place(|| cluster.nats.node(i).start_again())?;
            }
        }
        Scenario::PauseOrchestrator => {
            // Twice the lease the cluster runs with (CHORUS_SAGA_LEASE=3s).
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(jitter(0.5, 1.5)).await;
                faults.push(OffsetDateTime::now_utc());
                cluster.freeze("orchestrator-1", true)?;
                tokio::time::sleep(Duration::from_secs(6)).await;
                cluster.freeze("orchestrator-1", false)?;
            }
        }
        Scenario::DbOutage => {
            let targets = [ServiceDb::Inventory, ServiceDb::Orders];
            let mut next = 0;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(jitter(0.5, 1.5)).await;
                let db = targets[next % targets.len()];
                next += 1;
                let url = config.database_urls.get(&db).ok_or_else(|| ChorusError::Chaos(format!("no {} URL", db.env_var())))?;
                faults.push(OffsetDateTime::now_utc());
                outage(url, jitter(1.0, 3.0)).await?;
            }
        }
    }
    Ok(faults)
}

/// The index of the node leading stream `CHECKOUT_EVENTS`.
async fn stream_leader(js: &async_nats::jetstream::Context, nats: &chorus_runtime::nats_cluster::NatsCluster) -> Result<usize, ChorusError> {
    let err = |e: &dyn std::fmt::Display| ChorusError::Chaos(format!("finding the stream leader: {e}"));
    let mut stream = js.get_stream(chorus_event_store::subjects::STREAM).await.map_err(|e| err(&e))?;
    let info = stream.info().await.map_err(|e| err(&e))?;
    let leader = info.cluster.as_ref().and_then(|c| c.leader.clone()).ok_or_else(|| err(&"no leader"))?;
    nats.index_of(&leader).ok_or_else(|| err(&format!("{leader} is not ours")))
}

/// Makes a Postgres database refuse connections for `down`, its open
/// connections terminated, then lets them in again.
async fn outage(url: &str, down: Duration) -> Result<(), ChorusError> {
    use sea_orm::ConnectionTrait;
    let err = |e: &dyn std::fmt::Display| ChorusError::Chaos(format!("database outage: {e}"));
    let (admin, name) = admin_url(url).ok_or_else(|| err(&"not a postgres://…/name URL"))?;
    let conn = sea_orm::Database::connect(admin.as_str()).await.map_err(|e| err(&e))?;
    let allow = |on: bool| format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {on}");
    conn.execute_unprepared(&allow(false)).await.map_err(|e| err(&e))?;
    let terminated = conn
        .execute_unprepared(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"))
        .await;
    tokio::time::sleep(down).await;
    // Allowed again even when the termination failed.
    conn.execute_unprepared(&allow(true)).await.map_err(|e| err(&e))?;
    terminated.map(drop).map_err(|e| err(&e))
}

/// The same server's `postgres` database, and the database `url` names
/// (only a plain identifier: it is spliced into SQL).
fn admin_url(url: &str) -> Option<(String, String)> {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, name) = base.rsplit_once('/')?;
    if !url.starts_with("postgres") || name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let admin = match query {
        Some(q) => format!("{server}/postgres?{q}"),
        None => format!("{server}/postgres"),
    };
    Some((admin, name.to_owned()))
}

async fn set_fault(api: &Api, target: &str, mode: &str, rate: f64) -> Result<(), ChorusError> {
    let query = format!("mutation($t: String!, $r: Float!) {{ setFault(target: $t, mode: {mode}, rate: $r) }}");
    api.gql(&query, json!({ "t": target, "r": rate })).await.map(drop).map_err(|e| ChorusError::Chaos(format!("setFault {target}: {e}")))
}

/// Re-publishes `n` recent events as a publisher retrying after the
/// dedupe window would: same event (same id), new message, so every
/// consumer receives it a second time.
async fn republish_some(js: &async_nats::jetstream::Context, n: usize) -> Result<(), ChorusError> {
    let err = |e: &dyn std::fmt::Display| ChorusError::Chaos(format!("re-publishing: {e}"));
    let stream = js.get_stream(chorus_event_store::subjects::STREAM).await.map_err(|e| err(&e))?;
    let last = stream.get_info().await.map_err(|e| err(&e))?.state.last_sequence;
    for _ in 0..n {
        if last == 0 {
            break;
        }
        let sequence = last.saturating_sub(rand::random_range(0..last.min(50)));
        let Ok(message) = stream.get_raw_message(sequence).await else { continue };
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in message.headers.iter() {
            if name.to_string() != "Nats-Msg-Id" {
                for value in values {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        headers.insert("Nats-Msg-Id", format!("chaos-duplicate-{}", Uuid::new_v4()).as_str());
        js.publish_with_headers(message.subject.to_string(), headers, message.payload)
            .await
            .map_err(|e| err(&e))?
            .await
            .map_err(|e| err(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_targets_one_plain_database_through_the_admin_one() {
        assert_eq!(
            admin_url("postgres://postgres@127.0.0.1:5432/chorus_inventory"),
            Some(("postgres://postgres@127.0.0.1:5432/postgres".into(), "chorus_inventory".into()))
        );
        assert_eq!(admin_url("postgres://u@h/db?sslmode=disable").map(|a| a.0), Some("postgres://u@h/postgres?sslmode=disable".into()));
        assert_eq!(admin_url("postgres://u@h/x;DROP"), None);
        assert_eq!(admin_url("sqlite://./data/orders.db"), None);
    }
}
