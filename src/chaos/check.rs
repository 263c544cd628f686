//! The invariants, checked from outside once the load has stopped: through
//! the public GraphQL API, the event store, and the services' databases
//! read directly (nothing of the platform's own bookkeeping is trusted).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::{Duration, Instant},
};

use chorus_event_store::{EventStore, Projection, Projections};
use chorus_runtime::{Config, config::ServiceDb};
use chorus_workers::WorkerName;
use futures::StreamExt;
use sea_orm::EntityTrait;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::load::{Accepted, LoadLog, Pattern, Shelf};
use crate::{ChorusError, client::Api, cluster::Cluster};

/// One invariant's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Invariant {
    pub name: &'static str,
    pub ok: bool,
    /// Empty when it holds; else the first violations.
    pub detail: String,
}

/// How the accepted checkouts ended.
#[derive(Debug, Default, Serialize)]
pub struct Ends {
    pub completed: u64,
    pub compensated: u64,
    /// Not terminal within the bound: must be 0.
    pub lost: u64,
    #[serde(skip)]
    pub successes: Vec<OffsetDateTime>,
}

/// What one checkout looks like from outside once it ended (or the bound passed).
#[derive(Debug, Default)]
struct Seen {
    terminal: Option<bool>,
    /// Orchestrated: the saga log as (from, to).
    transitions: Vec<(Option<String>, String)>,
    /// From `checkoutEvents`: (event id, sequence, type, emittedAt).
    events: Vec<(String, u64, String, String)>,
}

fn verdict(name: &'static str, violations: Vec<String>) -> Invariant {
    let detail = violations.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    let detail = if violations.len() > 5 { format!("{detail}; … {} in all", violations.len()) } else { detail };
    Invariant { name, ok: violations.is_empty(), detail }
}

fn chaos_err(message: impl std::fmt::Display) -> ChorusError {
    ChorusError::Chaos(message.to_string())
}

pub async fn run(
    cluster: &Cluster,
    config: &Config,
    log: &LoadLog,
    shelf: &Shelf,
    stocked: &HashMap<Uuid, i64>,
    settle: Duration,
) -> Result<(Ends, Vec<Invariant>), ChorusError> {
    let api = &cluster.api;
    let deadline = Instant::now() + settle;
    let seen = wait_terminal(api, &log.accepted, deadline).await;
    let nats = chorus_runtime::nats::connect(&cluster.nats.urls(), "chorus-chaos-check").await?;
    let events = EventStore::open(nats.clone()).await?;
    quiesce(&events, deadline).await?;

    let mut invariants = Vec::new();
    let mut ends = Ends::default();
    let mut violations = Vec::new();
    for a in &log.accepted {
        match seen.get(&a.id).and_then(|s| s.terminal) {
            Some(true) => ends.completed += 1,
            Some(false) => ends.compensated += 1,
            None => {
                ends.lost += 1;
                violations.push(format!("{:?} checkout {} never ended", a.pattern, a.id));
            }
        }
    }
    invariants.push(verdict("every accepted checkout ended", violations));

    // Exactly one terminal event, agreeing with the state; each effect once.
    let mut violations = Vec::new();
    for a in &log.accepted {
        let Some(s) = seen.get(&a.id) else { continue };
        let ids_of = |kind: &str| s.events.iter().filter(|e| e.2 == kind).map(|e| e.0.as_str()).collect::<BTreeSet<_>>();
        let (succeeded, failed) = (ids_of("CheckoutSucceeded"), ids_of("CheckoutFailed"));
        let expected = match s.terminal {
            Some(true) => (1, 0),
            Some(false) => (0, 1),
            None => continue,
        };
        if (succeeded.len(), failed.len()) != expected {
            violations.push(format!("checkout {}: {} success and {} failure events", a.id, succeeded.len(), failed.len()));
        }
        for kind in ["StockReserved", "OrderCreated", "StockReleased"] {
            if ids_of(kind).len() > 1 {
                violations.push(format!("checkout {}: {kind} {} times", a.id, ids_of(kind).len()));
            }
        }
        for e in &s.events {
            if e.2 == "CheckoutSucceeded"
                && let Ok(at) = OffsetDateTime::parse(&e.3, &time::format_description::well_known::Rfc3339)
            {
                ends.successes.push(at);
            }
        }
    }
    ends.successes.sort();
    invariants.push(verdict("one terminal event per checkout, each effect once", violations));

    let mut violations = Vec::new();
    for a in log.accepted.iter().filter(|a| a.pattern == Pattern::Orchestrated) {
        let Some(s) = seen.get(&a.id) else { continue };
        if let Some(problem) = saga_log_problem(&s.transitions) {
            violations.push(format!("saga {}: {problem}", a.id));
        }
    }
    invariants.push(verdict("saga logs: one chain, no transition twice", violations));

    invariants.push(stock(api, shelf, stocked).await?);
    invariants.push(orders(cluster, config, &log.accepted, &seen).await?);
    invariants.push(audit(cluster, config, &events).await?);
    invariants.push(read_models(&events, nats).await?);
    invariants.push(outbox(cluster, config, deadline).await?);

    let mut violations = log.invalid_not_refused.clone();
    violations.extend(log.valid_refused.iter().map(|m| format!("a valid cart was refused: {m}")));
    invariants.push(verdict("invalid carts refused (BAD_USER_INPUT), valid ones accepted", violations));

    if !log.watched.is_empty() {
        let mut violations = Vec::new();
        for w in &log.watched {
            let stored: BTreeSet<u64> = seen.get(&w.id).map(|s| s.events.iter().map(|e| e.1).collect()).unwrap_or_default();
            if !w.saw_terminal {
                violations.push(format!("checkout {}: the subscription never saw it end ({} reconnects)", w.id, w.reconnects));
            } else if !stored.is_subset(&w.sequences) {
                let missing: Vec<_> = stored.difference(&w.sequences).collect();
                violations.push(format!("checkout {}: the subscription missed sequences {missing:?}", w.id));
            }
        }
        invariants.push(verdict("subscriptions resumed without a gap", violations));
    }
    Ok((ends, invariants))
}

/// Polls every accepted checkout until it is terminal or `deadline` passes.
async fn wait_terminal(api: &Api, accepted: &[Accepted], deadline: Instant) -> HashMap<Uuid, Seen> {
    let mut seen: HashMap<Uuid, Seen> = HashMap::new();
    let mut pending: Vec<Accepted> = accepted.to_vec();
    loop {
        let looked: Vec<(Accepted, Seen)> = futures::stream::iter(pending.drain(..))
            .map(|a| async move {
                let s = look(api, &a).await;
                (a, s)
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (a, s) in looked {
            if s.terminal.is_none() {
                pending.push(a.clone());
            }
            seen.insert(a.id, s);
        }
        if pending.is_empty() || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn look(api: &Api, a: &Accepted) -> Seen {
    let mut seen = Seen::default();
    let data = match a.pattern {
        Pattern::Orchestrated => api.gql("query($id: ID!) { saga(id: $id) { state transitions { from to } } }", json!({ "id": a.id })).await,
        Pattern::Choreographed => api.gql("query($id: ID!) { checkout(id: $id) { status } }", json!({ "id": a.id })).await,
    };
    let Ok(data) = data else { return seen };
    seen.terminal = match (data["saga"]["state"].as_str(), data["checkout"]["status"].as_str()) {
        (Some("COMPLETED"), _) | (_, Some("SUCCEEDED")) => Some(true),
        (Some("CANCELLED"), _) | (_, Some("FAILED")) => Some(false),
        _ => None,
    };
    if let Some(list) = data["saga"]["transitions"].as_array() {
        seen.transitions = list.iter().map(|t| (t["from"].as_str().map(str::to_owned), t["to"].as_str().unwrap_or_default().to_owned())).collect();
    }
    if seen.terminal.is_some()
        && let Ok(data) = api.gql("query($id: ID!) { checkoutEvents(checkoutId: $id) { id sequence type emittedAt } }", json!({ "id": a.id })).await
    {
        let text = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_owned();
        seen.events = data["checkoutEvents"]
            .as_array()
            .map(|list| list.iter().map(|e| (text(e, "id"), e["sequence"].as_u64().unwrap_or(0), text(e, "type"), text(e, "emittedAt"))).collect())
            .unwrap_or_default();
    }
    seen
}

/// Why a saga log is not one chain from `PENDING` to a terminal state
/// with no state reached twice, if it is not.
pub fn saga_log_problem(transitions: &[(Option<String>, String)]) -> Option<String> {
    let mut previous: Option<&str> = None;
    let mut reached = HashSet::new();
    for (from, to) in transitions {
        if from.as_deref() != previous {
            return Some(format!("{from:?} → {to} does not follow {previous:?}"));
        }
        if !reached.insert(to.as_str()) {
            return Some(format!("{to} reached twice"));
        }
        previous = Some(to);
    }
    match previous {
        Some("COMPLETED" | "CANCELLED") => None,
        other => Some(format!("ends in {other:?}")),
    }
}

/// Waits until every consumer but the stall watch (which holds events on
/// purpose) has nothing pending and nothing unacked.
async fn quiesce(events: &EventStore, deadline: Instant) -> Result<(), ChorusError> {
    let busy_limit = deadline.max(Instant::now() + Duration::from_secs(30));
    loop {
        let mut busy = Vec::new();
        for worker in WorkerName::ALL.iter().copied().filter(|w| *w != WorkerName::StallWatch) {
            let mut consumer = events
                .stream()
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(worker.durable())
                .await
                .map_err(chaos_err)?;
            let info = consumer.info().await.map_err(chaos_err)?;
            if info.num_pending > 0 || info.num_ack_pending > 0 {
                busy.push(format!("{} ({} pending, {} unacked)", worker.durable(), info.num_pending, info.num_ack_pending));
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        if Instant::now() > busy_limit {
            return Err(chaos_err(format!("the workers never caught up: {}", busy.join(", "))));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// available + reserved + sold = stocked, nothing left reserved.
async fn stock(api: &Api, shelf: &Shelf, stocked: &HashMap<Uuid, i64>) -> Result<Invariant, ChorusError> {
    let data = api.gql("{ products { id stock reserved sold } }", json!({})).await.map_err(chaos_err)?;
    let mut violations = Vec::new();
    for p in data["products"].as_array().into_iter().flatten() {
        let Some(id) = p["id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) else { continue };
        let Some(initial) = stocked.get(&id) else { continue };
        let (available, reserved, sold) = (p["stock"].as_i64().unwrap_or(-1), p["reserved"].as_i64().unwrap_or(-1), p["sold"].as_i64().unwrap_or(-1));
        if available + reserved + sold != *initial || reserved != 0 || available < 0 || sold < 0 {
            violations.push(format!("product {id}: {available} available + {reserved} reserved + {sold} sold, {initial} stocked"));
        }
    }
    let listed = data["products"].as_array().map_or(0, Vec::len);
    if listed < shelf.plentiful.len() + 1 {
        violations.push(format!("only {listed} products listed"));
    }
    Ok(verdict("stock conserved, nothing left reserved", violations))
}

/// Each completed checkout has exactly one order, each failed one none, and
/// the units sold are the units of live orders (the orders database, read
/// directly).
async fn orders(
    cluster: &Cluster,
    config: &Config,
    accepted: &[Accepted],
    seen: &HashMap<Uuid, Seen>,
) -> Result<Invariant, ChorusError> {
    use chorus_orders::entity::{order, order_item};
    let db = chorus_runtime::db::connect(&cluster.database_url(config, ServiceDb::Orders)).await?;
    let all = order::Entity::find().all(&db).await.map_err(chaos_err)?;
    let mut live: HashMap<Uuid, Vec<&order::Model>> = HashMap::new();
    let mut rows: HashMap<Uuid, usize> = HashMap::new();
    for o in &all {
        *rows.entry(o.checkout_id.0).or_default() += usize::from(o.status != "VOID");
        if o.status == "CREATED" {
            live.entry(o.checkout_id.0).or_default().push(o);
        }
    }
    let mut violations = Vec::new();
    for (checkout, n) in &rows {
        if *n > 1 {
            violations.push(format!("checkout {checkout} has {n} orders"));
        }
    }
    for a in accepted {
        let n = live.get(&a.id).map_or(0, Vec::len);
        match seen.get(&a.id).and_then(|s| s.terminal) {
            Some(true) if n != 1 => violations.push(format!("completed checkout {} has {n} live orders", a.id)),
            Some(false) if n != 0 => violations.push(format!("failed checkout {} has {n} live orders", a.id)),
            _ => {}
        }
    }
    let items = order_item::Entity::find().all(&db).await.map_err(chaos_err)?;
    let live_ids: HashSet<Uuid> = all.iter().filter(|o| o.status == "CREATED").map(|o| o.id).collect();
    let mut ordered: HashMap<Uuid, i64> = HashMap::new();
    for item in items.iter().filter(|i| live_ids.contains(&i.order_id)) {
        *ordered.entry(item.product_id.0).or_default() += item.quantity;
    }
    let data = cluster.api.gql("{ products { id sold } }", json!({})).await.map_err(chaos_err)?;
    for p in data["products"].as_array().into_iter().flatten() {
        let Some(id) = p["id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) else { continue };
        let sold = p["sold"].as_i64().unwrap_or(-1);
        let in_orders = ordered.get(&id).copied().unwrap_or(0);
        if sold != in_orders {
            violations.push(format!("product {id}: {sold} sold but {in_orders} in live orders"));
        }
    }
    Ok(verdict("one order per completed checkout, none per failed one", violations))
}

/// The audit trail holds every event of the stream, each once. Only the
/// trail of this stream's checkouts is compared: a Postgres database given
/// to several runs keeps the trails of the others.
async fn audit(cluster: &Cluster, config: &Config, events: &EventStore) -> Result<Invariant, ChorusError> {
    use chorus_workers::audit::entry;
    let mut stream_ids = HashSet::new();
    let mut checkouts = HashSet::new();
    let mut from = 1;
    loop {
        let page = events.read_page(from, 1000).await?;
        stream_ids.extend(page.events.iter().map(|e| e.envelope.id));
        checkouts.extend(page.events.iter().map(|e| e.envelope.checkout_id));
        match page.next_sequence {
            Some(next) if !page.events.is_empty() => from = next,
            _ => break,
        }
    }
    let db = chorus_runtime::db::connect(&cluster.database_url(config, ServiceDb::Audit)).await?;
    let rows: Vec<_> = entry::Entity::find().all(&db).await.map_err(chaos_err)?.into_iter().filter(|r| checkouts.contains(&r.checkout_id)).collect();
    let mut violations = Vec::new();
    let audited: HashSet<Uuid> = rows.iter().map(|r| r.event_id).collect();
    if audited.len() != rows.len() {
        violations.push(format!("{} rows for {} events", rows.len(), audited.len()));
    }
    let missing = stream_ids.difference(&audited).count();
    let extra = audited.difference(&stream_ids).count();
    if missing > 0 || extra > 0 {
        violations.push(format!("{missing} stored events not audited, {extra} audited events not stored"));
    }
    Ok(verdict("the audit trail has each event once", violations))
}

/// Both read models equal a rebuild from the stream.
/// Every event the orchestrators' writes implied is in the store: their
/// outbox drains to empty (by the settle deadline).
async fn outbox(cluster: &Cluster, config: &Config, deadline: Instant) -> Result<Invariant, ChorusError> {
    let db = chorus_runtime::db::connect(&cluster.database_url(config, ServiceDb::Orchestrator)).await?;
    loop {
        let pending = chorus_orchestrator::outbox::pending_count(&db).await.map_err(chaos_err)?;
        if pending == 0 || Instant::now() >= deadline {
            let violations = if pending == 0 { Vec::new() } else { vec![format!("{pending} events still in the outbox")] };
            return Ok(verdict("the orchestrators' outbox is empty: every saga's events are stored", violations));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read_models(events: &EventStore, nats: async_nats::Client) -> Result<Invariant, ChorusError> {
    let projections = Projections::open(async_nats::jetstream::new(nats)).await?;
    let mut violations = Vec::new();
    for projection in Projection::ALL {
        let live = projections.dump(projection).await?;
        projections.rebuild(events, projection).await?;
        let rebuilt = projections.dump(projection).await?;
        if live != rebuilt {
            let live: HashMap<_, _> = live.into_iter().collect();
            let differing: Vec<_> = rebuilt
                .iter()
                .filter(|(k, v)| live.get(k) != Some(v))
                .map(|(k, _)| k.clone())
                .chain(live.keys().filter(|k| !rebuilt.iter().any(|(r, _)| r == *k)).cloned())
                .collect();
            violations.push(format!("{}: {} keys differ from a rebuild (first: {:?})", projection.name(), differing.len(), differing.first()));
        }
    }
    Ok(verdict("read models equal a rebuild from the stream", violations))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(steps: &[(Option<&str>, &str)]) -> Vec<(Option<String>, String)> {
        steps.iter().map(|(f, t)| (f.map(str::to_owned), (*t).to_owned())).collect()
    }

    #[test]
    fn a_saga_log_is_one_chain_to_an_end() {
        let good = log(&[(None, "PENDING"), (Some("PENDING"), "VERIFYING_STOCK"), (Some("VERIFYING_STOCK"), "FAILED_INSUFFICIENT_STOCK"),
            (Some("FAILED_INSUFFICIENT_STOCK"), "COMPENSATING"), (Some("COMPENSATING"), "CANCELLED")]);
        assert_eq!(saga_log_problem(&good), None);
        let gap = log(&[(None, "PENDING"), (Some("VERIFYING_STOCK"), "STOCK_VERIFIED")]);
        assert!(saga_log_problem(&gap).is_some());
        let twice = log(&[(None, "PENDING"), (Some("PENDING"), "PENDING")]);
        assert!(saga_log_problem(&twice).is_some_and(|p| p.contains("twice")));
        let unfinished = log(&[(None, "PENDING")]);
        assert!(saga_log_problem(&unfinished).is_some_and(|p| p.contains("ends in")));
    }
}
