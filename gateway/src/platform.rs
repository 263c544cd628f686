//! The `platform` query (admin) behind `chorus status`: one place for an
//! operator to ask "is everything running, is anything stuck?". Every
//! figure is read live: service replicas from `$SRV.PING` answers, each
//! durable consumer's state and the stream's from JetStream, stalled sagas
//! and the outbox backlog from the orchestrator, the version from NATS.

use std::{collections::BTreeMap, time::Duration};

use async_graphql::SimpleObject;
use chorus_contracts::orchestrator::SagaHealth;
use futures::StreamExt;

use crate::{GatewayError, GatewayState, SERVICES};

/// How long replicas get to answer a ping: they answer in milliseconds, so
/// one missing after this is not answering.
const PING_WINDOW: Duration = Duration::from_millis(300);

/// Everything `chorus status` shows.
#[derive(SimpleObject, Debug)]
pub struct Platform {
    /// The NATS server's version.
    pub nats_version: String,
    /// The event stream.
    pub stream: StreamStatus,
    /// Each service and how many replicas answered a ping.
    pub services: Vec<ServiceStatus>,
    /// Each durable consumer (the workers'), with its backlog.
    pub consumers: Vec<ConsumerStatus>,
    /// The orchestrated sagas and the orchestrator's outbox.
    pub sagas: SagaStatus,
    /// What needs an operator, in words; empty when all is well.
    pub problems: Vec<String>,
}

/// The event stream, as JetStream reports it.
#[derive(SimpleObject, Debug)]
pub struct StreamStatus {
    /// `CHECKOUT_EVENTS`.
    pub name: String,
    /// Events stored.
    pub messages: i64,
    /// Their size on the server.
    pub bytes: i64,
    /// The oldest event's sequence.
    pub first_sequence: i64,
    /// The newest event's sequence.
    pub last_sequence: i64,
}

/// One service (catalogue, inventory, orders, orchestrator).
#[derive(SimpleObject, Debug)]
pub struct ServiceStatus {
    /// Its name on the NATS service API.
    pub name: String,
    /// Replicas that answered `$SRV.PING` within 300 ms.
    pub replicas: i32,
}

/// One durable consumer of the event stream (a worker's).
#[derive(SimpleObject, Debug)]
pub struct ConsumerStatus {
    /// The durable name (`choreo-…`).
    pub durable: String,
    /// Events not yet delivered.
    pub pending: i64,
    /// Delivered and not yet acked (held, being handled, or the stall
    /// watch's open checkouts).
    pub ack_pending: i64,
    /// Delivered more than once and not yet acked.
    pub redelivered: i64,
    /// Pull requests waiting: at least one per live worker replica.
    pub waiting: i64,
}

/// The orchestrated sagas, as the orchestrator reports them.
#[derive(SimpleObject, Debug)]
pub struct SagaStatus {
    /// Orchestrated sagas not terminal and not moved for longer than the
    /// saga lease.
    pub stalled: i64,
    /// When the longest-stalled one last moved (RFC 3339).
    pub oldest_stalled_since: Option<String>,
    /// Events written by the orchestrator and not yet in the event store.
    pub outbox_pending: i64,
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads the platform's state now.
pub async fn read(state: &GatewayState) -> Result<Platform, GatewayError> {
    let nats = state.services.nats();
    let (services, stream, consumers, sagas) =
        tokio::join!(replicas(nats), state.events.stream().get_info(), consumers(state), state.services.call(&SagaHealth {}));
    let stream = stream.map_err(|e| GatewayError::ServiceUnavailable(format!("the event store is unavailable: {e}")))?;
    let sagas = sagas?;
    let consumers = consumers?;
    let mut problems = Vec::new();
    problems.extend(services.iter().filter(|s| s.replicas == 0).map(|s| format!("service {} answers no ping", s.name)));
    problems.extend(consumers.iter().filter(|c| c.waiting == 0).map(|c| format!("consumer {} has no worker pulling", c.durable)));
    if sagas.stalled > 0 {
        problems.push(format!("{} saga(s) have not moved for over {} ms", sagas.stalled, sagas.stalled_after_ms));
    }
    Ok(Platform {
        nats_version: nats.server_info().version,
        stream: StreamStatus {
            name: stream.config.name.clone(),
            messages: int(stream.state.messages),
            bytes: int(stream.state.bytes),
            first_sequence: int(stream.state.first_sequence),
            last_sequence: int(stream.state.last_sequence),
        },
        services,
        consumers,
        sagas: SagaStatus { stalled: int(sagas.stalled), oldest_stalled_since: sagas.oldest_stalled_since, outbox_pending: int(sagas.outbox_pending) },
        problems,
    })
}

/// Every replica of every service answers `$SRV.PING.<name>` on one inbox:
/// the answers within [`PING_WINDOW`], counted by name.
async fn replicas(nats: &async_nats::Client) -> Vec<ServiceStatus> {
    let mut counts: BTreeMap<&str, i32> = SERVICES.iter().map(|s| (*s, 0)).collect();
    let inbox = nats.new_inbox();
    if let Ok(mut answers) = nats.subscribe(inbox.clone()).await {
        for name in SERVICES {
            let _ = nats.publish_with_reply(format!("$SRV.PING.{name}"), inbox.clone(), "".into()).await;
        }
        let _ = nats.flush().await;
        let deadline = tokio::time::sleep(PING_WINDOW);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                answer = answers.next() => {
                    let Some(answer) = answer else { break };
                    let name = serde_json::from_slice::<serde_json::Value>(&answer.payload)
                        .ok()
                        .and_then(|v| v["name"].as_str().map(str::to_owned));
                    if let Some(count) = name.and_then(|n| counts.iter_mut().find(|(k, _)| **k == n).map(|(_, c)| c)) {
                        *count += 1;
                    }
                }
            }
        }
    }
    counts.into_iter().map(|(name, replicas)| ServiceStatus { name: name.to_owned(), replicas }).collect()
}

/// The stream's durable consumers (the gateway's own live feed is not one).
async fn consumers(state: &GatewayState) -> Result<Vec<ConsumerStatus>, GatewayError> {
    let mut listed = state.events.stream().consumers();
    let mut found = Vec::new();
    while let Some(info) = listed.next().await {
        let info = info.map_err(|e| GatewayError::ServiceUnavailable(format!("the event store is unavailable: {e}")))?;
        let Some(durable) = info.config.durable_name.clone() else { continue };
        found.push(ConsumerStatus {
            durable,
            pending: int(info.num_pending),
            ack_pending: int(info.num_ack_pending as u64),
            redelivered: int(info.num_redelivered as u64),
            waiting: int(info.num_waiting as u64),
        });
    }
    found.sort_by(|a, b| a.durable.cmp(&b.durable));
    Ok(found)
}
