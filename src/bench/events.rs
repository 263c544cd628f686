//! `chorus bench events`: the event store alone, on its own nats-server in a
//! temp dir: one append at a time, pipelined appends, a whole-stream replay,
//! and one checkout's replay with the whole stream stored (DESIGN §2: an
//! index lookup and direct gets, never a scan).

use std::{path::PathBuf, time::Instant};

use chorus_event_store::{CartLine, CheckoutId, ClientId, Envelope, EventPayload, EventStore, OrderLine, Pattern, ProductId};
use chorus_runtime::{Config, nats_server::NatsServer};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::report::{self, Latency};
use crate::ChorusError;

/// Events one checkout of the bench stores, as a choreographed success does.
const PER_CHECKOUT: usize = 4;
/// Checkouts appended per pipelined batch.
const BATCH: usize = 1_000;

#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Events to store before the replays.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Checkouts read back one by one for the replay latency.
    #[arg(long, default_value_t = 2_000)]
    pub reads: usize,
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventsReport {
    pub events_stored: u64,
    /// One acked, indexed append at a time.
    pub append_one_ms: Latency,
    /// Appends with every publish of a batch in flight, indexes included.
    pub append_pipelined_per_s: f64,
    pub replay_whole_s: f64,
    pub replay_per_s: f64,
    /// Reading one checkout's events back, the whole stream stored.
    pub replay_checkout_ms: Latency,
    pub machine: String,
    pub version: String,
}

impl EventsReport {
    pub fn markdown(&self) -> String {
        format!(
            "Chorus {} event store on {}, its own nats-server (file storage), {} events stored.\n\n\
             | figure | value |\n| --- | ---: |\n\
             | append, one at a time (acked + indexed) | P50 {:.2} ms, P95 {:.2} ms |\n\
             | append, pipelined (acked + indexed) | {:.0} events/s |\n\
             | replay, whole stream | {:.2} s ({:.0} events/s) |\n\
             | one checkout's replay | P50 {:.2} ms, P95 {:.2} ms, P99 {:.2} ms |\n",
            self.version,
            self.machine,
            self.events_stored,
            self.append_one_ms.p50,
            self.append_one_ms.p95,
            self.append_pipelined_per_s,
            self.replay_whole_s,
            self.replay_per_s,
            self.replay_checkout_ms.p50,
            self.replay_checkout_ms.p95,
            self.replay_checkout_ms.p99,
        )
    }
}

/// A choreographed success's four events.
fn checkout_events() -> Vec<Envelope> {
    let checkout = CheckoutId::now_v7();
    let client_id = ClientId::new_v4();
    let product_id = ProductId::new_v4();
    let order_id = Uuid::new_v4();
    let items = vec![CartLine { product_id, quantity: 1 }];
    [
        EventPayload::CheckoutInitiated { client_id, items: items.clone(), idempotency_key: None },
        EventPayload::StockReserved { reservation_id: Uuid::new_v4(), items, priced: Vec::new(), client_id: None, initiated_at: None },
        EventPayload::OrderCreated {
            order_id,
            client_id,
            total_cents: 2_500,
            items: vec![OrderLine { product_id, quantity: 1, unit_price_cents: 2_500 }],
        },
        EventPayload::CheckoutSucceeded { order_id, client_id: Some(client_id) },
    ]
    .into_iter()
    .map(|payload| Envelope::new(checkout, Pattern::Choreographed, payload))
    .collect()
}

fn bar(len: u64, prefix: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>13} [{bar:30}] {pos}/{len} {per_sec}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix);
    bar
}

pub async fn run(args: EventsArgs, config: &Config) -> Result<(), ChorusError> {
    let dir = tempfile::Builder::new().prefix("chorus-bench-events-").tempdir().map_err(ChorusError::Output)?;
    let server = NatsServer::start(&config.nats_server_bin, &dir.path().join("nats"))?;
    let client = chorus_runtime::nats::connect(&server.url(), "chorus-bench").await?;
    let store = EventStore::provision(client, 1).await?;
    let failed = |e: chorus_event_store::EventStoreError| ChorusError::EventStore(e);

    // One at a time: what a saga step waits for when it appends.
    let mut one = report::histogram();
    let mut checkouts = Vec::new();
    for _ in 0..(args.reads.max(1) / 4).max(100) {
        let events = checkout_events();
        for event in &events {
            let t = Instant::now();
            store.append(event, None).await.map_err(failed)?;
            report::record(&mut one, t.elapsed());
        }
        checkouts.push(events[0].checkout_id);
    }
    let mut stored = (checkouts.len() * PER_CHECKOUT) as u64;

    // Pipelined: a batch of checkouts' events in flight at once.
    let target = args.events.max(stored);
    let progress = bar(target, "append");
    progress.set_position(stored);
    let started = Instant::now();
    let first_pipelined = stored;
    while stored < target {
        let n = ((target - stored) as usize).div_ceil(PER_CHECKOUT).min(BATCH);
        let batch: Vec<Envelope> = (0..n).flat_map(|_| checkout_events()).collect();
        store.append_all(&batch, None).await.map_err(failed)?;
        checkouts.extend(batch.iter().step_by(PER_CHECKOUT).map(|e| e.checkout_id));
        stored += batch.len() as u64;
        progress.set_position(stored);
    }
    let append_rate = (stored - first_pipelined) as f64 / started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    // The whole stream through one ordered consumer, every event decoded.
    let progress = bar(stored, "replay");
    let started = Instant::now();
    let mut replayed = 0u64;
    let mut stream = store.follow(1).await.map_err(failed)?;
    while replayed < stored {
        match stream.next().await {
            Some(event) => {
                event.map_err(failed)?;
                replayed += 1;
                if replayed.is_multiple_of(10_000) {
                    progress.set_position(replayed);
                }
            }
            None => break,
        }
    }
    let replay_s = started.elapsed().as_secs_f64();
    drop(stream);
    progress.finish_and_clear();

    // One checkout at a time, spread over the whole stream.
    let mut read = report::histogram();
    let step = (checkouts.len() / args.reads.max(1)).max(1);
    for id in checkouts.iter().step_by(step).take(args.reads) {
        let t = Instant::now();
        let events = store.read_checkout(*id).await.map_err(failed)?;
        report::record(&mut read, t.elapsed());
        if events.len() != PER_CHECKOUT {
            return Err(ChorusError::Bench(format!("checkout {id} read back {} events, not {PER_CHECKOUT}", events.len())));
        }
    }

    let report = EventsReport {
        events_stored: stored,
        append_one_ms: Latency::from_micros(&one),
        append_pipelined_per_s: append_rate.round(),
        replay_whole_s: (replay_s * 1000.0).round() / 1000.0,
        replay_per_s: (replayed as f64 / replay_s).round(),
        replay_checkout_ms: Latency::from_micros(&read),
        machine: report::machine(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let markdown = report.markdown();
    println!("{markdown}");
    if let Some(path) = &args.markdown {
        super::write(path, &markdown)?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| ChorusError::Bench(e.to_string()))?;
        super::write(path, &json)?;
    }
    Ok(())
}
