//! Appending without waiting: a caller that must not stall on the event
//! store (the orchestrator between two saga steps) hands events to a
//! [`Publisher`], whose one task appends whatever has queued up as one
//! pipelined batch ([`EventStore::append_traced`]), in the order handed
//! over. [`Publisher::flush`] waits until everything handed over before it
//! is stored and indexed.

use std::time::Duration;

use chorus_runtime::trace::TraceParent;
use tokio::sync::{mpsc, oneshot};

use crate::{Envelope, EventStore};

/// Most events appended as one batch.
const MAX_BATCH: usize = 512;
/// Attempts at a batch before its events are given up (logged).
const ATTEMPTS: u32 = 5;

enum Job {
    Append(Box<Envelope>, Option<TraceParent>),
    Flush(oneshot::Sender<()>),
}

/// A handle on the background appender; cheap to clone. The task ends once
/// every handle is dropped and the queue is drained.
#[derive(Clone, Debug)]
pub struct Publisher {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Publisher {
    pub fn start(store: EventStore, retry_after: Duration) -> Publisher {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(store, queue, retry_after));
        Publisher { jobs }
    }

    /// Queues an event; it is stored after every event queued before it.
    pub fn append(&self, event: Envelope, trace: Option<TraceParent>) {
        if self.jobs.send(Job::Append(Box::new(event), trace)).is_err() {
            tracing::error!("the event publisher has stopped; event not published");
        }
    }

    /// Resolves once every event queued before this call is stored and
    /// indexed (or, after its retries, given up and logged).
    pub async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).is_ok() {
            let _ = stored.await;
        }
    }
}

async fn run(store: EventStore, mut queue: mpsc::UnboundedReceiver<Job>, retry_after: Duration) {
    let mut batch: Vec<(Envelope, Option<TraceParent>)> = Vec::new();
    let mut flushes = Vec::new();
    while let Some(job) = queue.recv().await {
        let mut next = Some(job);
        // Whatever else is already queued goes in the same batch.
        while let Some(job) = next.take().or_else(|| (batch.len() < MAX_BATCH).then(|| queue.try_recv().ok()).flatten()) {
            match job {
                Job::Append(event, trace) => batch.push((*event, trace)),
                Job::Flush(done) => flushes.push(done),
            }
        }
        if !batch.is_empty() {
            append(&store, &batch, retry_after).await;
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn append(store: &EventStore, batch: &[(Envelope, Option<TraceParent>)], retry_after: Duration) {
    for attempt in 1..=ATTEMPTS {
        // A retry re-sends the whole batch: ids already stored are dropped
        // by the stream's dedupe and indexed again, harmlessly.
        let events: Vec<_> = batch.iter().map(|(e, t)| (e, t.as_ref())).collect();
        match store.append_traced(&events).await {
            Ok(_) => return,
            Err(e) if attempt == ATTEMPTS => {
                tracing::error!(error = %e, events = batch.len(), "events not published");
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "appending a batch failed; retrying");
                tokio::time::sleep(retry_after * attempt).await;
            }
        }
    }
}
