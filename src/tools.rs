//! `chorus events` and `chorus replay`: the operator's view of the event
//! store. Both bind to what exists on `NATS_URL` and reconfigure nothing.

use std::{io::Write, time::Instant};

use chorus_event_store::{CheckoutId, EventStore, EventType, Projection, Projections, RecordedEvent, event::micros_rfc3339, subjects};
use futures::StreamExt;

use crate::ChorusError;

/// How events are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One aligned line per event.
    Table,
    /// One JSON object per line: the stored envelope plus `sequence`.
    Json,
}

/// What `chorus events` lists.
#[derive(Clone, Debug)]
pub struct EventsQuery {
    pub checkout: Option<CheckoutId>,
    pub event_type: Option<EventType>,
    pub from: u64,
    pub limit: usize,
    pub follow: bool,
    pub format: Format,
}

/// What `chorus replay` does.
#[derive(Clone, Debug)]
pub enum Replay {
    /// One checkout's events, read by its subject (no scan).
    Checkout(CheckoutId, Format),
    /// Drop and rebuild read models from the stream.
    Rebuild(Vec<Projection>),
    /// Read the whole stream from a sequence and report the rate.
    Stream { from: u64 },
}

async fn open(nats_url: &str) -> Result<EventStore, ChorusError> {
    let client = chorus_runtime::nats::connect(nats_url, "chorus-tool").await?;
    Ok(EventStore::open(client).await?)
}

pub async fn events(nats_url: &str, query: EventsQuery) -> Result<(), ChorusError> {
    let store = open(nats_url).await?;
    let wanted = |e: &RecordedEvent| query.event_type.is_none_or(|t| e.envelope.event_type() == t);
    let mut out = std::io::stdout().lock();
    if query.format == Format::Table {
        header(&mut out)?;
    }
    if let Some(id) = query.checkout {
        for event in store.read_checkout(id).await?.iter().filter(|e| wanted(e)) {
            print(&mut out, event, query.format)?;
        }
        if !query.follow {
            return Ok(());
        }
    }
    if query.follow {
        drop(out);
        let from = match query.checkout {
            Some(_) => store.last_sequence().await? + 1,
            None => query.from,
        };
        let mut live = store.follow(from).await?;
        while let Some(event) = live.next().await {
            let event = event?;
            if query.checkout.is_none_or(|c| event.envelope.checkout_id == c) && wanted(&event) {
                print(&mut std::io::stdout().lock(), &event, query.format)?;
            }
        }
        return Ok(());
    }
    let filter = query.event_type.map(subjects::event_type);
    let mut from = query.from;
    let mut left = query.limit;
    while left > 0 {
        let page = store.read_page_filtered(from, left.min(1_000), filter.clone()).await?;
        for event in &page.events {
            print(&mut out, event, query.format)?;
        }
        left = left.saturating_sub(page.events.len());
        match page.next_sequence {
            Some(next) if !page.events.is_empty() => from = next,
            _ => break,
        }
    }
    Ok(())
}

pub async fn replay(nats_url: &str, what: Replay) -> Result<(), ChorusError> {
    let store = open(nats_url).await?;
    match what {
        Replay::Checkout(id, format) => {
            let started = Instant::now();
            let events = store.read_checkout(id).await?;
            let elapsed = started.elapsed();
            let mut out = std::io::stdout().lock();
            if format == Format::Table {
                header(&mut out)?;
            }
            for event in &events {
                print(&mut out, event, format)?;
            }
            eprintln!("replayed {} events of checkout {id} in {:.2} ms", events.len(), elapsed.as_secs_f64() * 1e3);
        }
        Replay::Rebuild(projections) => {
            let models = Projections::open(store.jetstream().clone()).await?;
            for projection in projections {
                let report = models.rebuild(&store, projection).await?;
                println!(
                    "rebuilt {}: {} events into {} keys in {:.2} s ({:.0} events/s)",
                    projection.name(),
                    report.events,
                    report.keys,
                    report.elapsed.as_secs_f64(),
                    report.events_per_second()
                );
            }
        }
        Replay::Stream { from } => {
            let last = store.last_sequence().await?;
            let started = Instant::now();
            let mut count = 0u64;
            if last >= from.max(1) {
                let mut all = store.follow(from).await?;
                while let Some(event) = all.next().await {
                    count += 1;
                    if event?.sequence >= last {
                        break;
                    }
                }
            }
            let elapsed = started.elapsed().as_secs_f64();
            println!("replayed {count} events (to sequence {last}) in {elapsed:.2} s ({:.0} events/s)", count as f64 / elapsed.max(1e-9));
        }
    }
    Ok(())
}

fn header(out: &mut impl Write) -> Result<(), ChorusError> {
    writeln!(out, "{:>8}  {:<27}  {:<36}  {:<13}  {:<22}  detail", "seq", "emitted_at", "checkout", "pattern", "type")
        .map_err(ChorusError::Output)
}

fn print(out: &mut impl Write, event: &RecordedEvent, format: Format) -> Result<(), ChorusError> {
    let e = &event.envelope;
    let line = match format {
        Format::Json => {
            let mut value = serde_json::to_value(e).map_err(chorus_event_store::EventStoreError::from)?;
            value["sequence"] = event.sequence.into();
            value.to_string()
        }
        Format::Table => {
            let payload = serde_json::to_value(&e.payload).map_err(chorus_event_store::EventStoreError::from)?;
            let detail = payload.get("payload").map(|p| p.to_string()).unwrap_or_default();
            let detail: String = detail.chars().take(100).collect();
            format!(
                "{:>8}  {:<27}  {:<36}  {:<13}  {:<22}  {detail}",
                event.sequence,
                micros_rfc3339::format(e.emitted_at).unwrap_or_default(),
                e.checkout_id,
                e.pattern.as_str(),
                e.event_type(),
            )
        }
    };
    writeln!(out, "{line}").map_err(ChorusError::Output)
}
