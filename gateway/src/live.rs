//! Live events for GraphQL subscriptions (DESIGN §2): one ordered consumer
//! per gateway process, fanned out in memory by checkout id, and stitched to
//! the replay of a checkout's history by stream sequence, so a subscriber
//! sees every event once, in order, whenever it subscribes.
//!
//! Every subscriber has a bounded buffer: one that falls behind is dropped
//! (its subscription ends with an error) rather than growing memory or
//! slowing anyone else. A subscriber registers before it reads the history,
//! and the hub keeps the last few thousand events it dispatched, so an event
//! stored while the subscriber was reading is in one or the other.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chorus_event_store::{CheckoutId, EventPayload, EventStore, Pattern, RecordedEvent};
use chorus_runtime::shutdown::Shutdown;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::GatewayError;

/// Events buffered per subscriber before it counts as too slow.
pub const SUBSCRIBER_BUFFER: usize = 256;
/// Recent events kept to close the race between registering and replaying.
const RECENT: usize = 4_096;
/// Live subscriptions one caller (a client, an admin, or on an open
/// gateway one connection) may hold at once.
pub const MAX_SUBSCRIPTIONS_PER_CALLER: usize = 32;
/// Live subscriptions one gateway process holds at most.
pub const MAX_SUBSCRIPTIONS: usize = 20_000;
/// Pause before following the stream again after the consumer failed.
const REFOLLOW_AFTER: Duration = Duration::from_millis(500);

type Event = Arc<RecordedEvent>;

#[derive(Default)]
struct State {
    next_id: u64,
    by_checkout: HashMap<CheckoutId, Vec<(u64, mpsc::Sender<Event>)>>,
    firehose: Vec<(u64, mpsc::Sender<Event>)>,
    recent: VecDeque<Event>,
    per_caller: HashMap<String, usize>,
    total: usize,
}

/// The fan-out of the gateway's one live consumer; cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// What a subscription listens to.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    Checkout(CheckoutId),
    All,
}

/// A live registration; dropping it unregisters (the socket closed).
struct Registration {
    hub: Hub,
    id: u64,
    scope: Scope,
    caller: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        match self.scope {
            Scope::Checkout(checkout) => {
                if let Some(list) = state.by_checkout.get_mut(&checkout) {
                    list.retain(|(id, _)| *id != self.id);
                    if list.is_empty() {
                        state.by_checkout.remove(&checkout);
                    }
                }
            }
            Scope::All => state.firehose.retain(|(id, _)| *id != self.id),
        }
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per_caller.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per_caller.remove(&self.caller);
            }
        }
        metrics::gauge!("gateway_subscriptions").decrement(1.0);
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows the stream from its end until shutdown, dispatching each event.
    pub async fn start(events: EventStore, shutdown: &Shutdown) -> Result<Self, GatewayError> {
        let hub = Hub::default();
        let mut next = events.last_sequence().await? + 1;
        let this = hub.clone();
        let token = shutdown.token.clone();
        shutdown.tracker.spawn(async move {
            while !token.is_cancelled() {
                let mut live = match events.follow(next).await {
                    Ok(live) => live,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot follow the event stream; retrying");
                        tokio::time::sleep(REFOLLOW_AFTER).await;
                        continue;
                    }
                };
                loop {
                    let event = tokio::select! {
                        event = live.next() => event,
                        () = token.cancelled() => return,
                    };
                    match event {
                        Some(Ok(event)) => {
                            next = event.sequence + 1;
                            this.dispatch(Arc::new(event));
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "live event stream failed; following again");
                            break;
                        }
                        None => break,
                    }
                }
                tokio::time::sleep(REFOLLOW_AFTER).await;
            }
        });
        Ok(hub)
    }

    fn dispatch(&self, event: Event) {
        let mut state = self.lock();
        if state.recent.len() == RECENT {
            state.recent.pop_front();
        }
        state.recent.push_back(event.clone());
        let deliver = |list: &mut Vec<(u64, mpsc::Sender<Event>)>| {
            // A full buffer drops the subscriber: its stream ends with an error.
            list.retain(|(_, tx)| tx.try_send(event.clone()).is_ok());
        };
        let checkout = event.envelope.checkout_id;
        if let Some(list) = state.by_checkout.get_mut(&checkout) {
            deliver(list);
            if list.is_empty() {
                state.by_checkout.remove(&checkout);
            }
        }
        deliver(&mut state.firehose);
    }

    /// Registers a subscriber; returns its live receiver and the recent
    /// events in its scope (to stitch with a replay).
    fn register(&self, scope: Scope, caller: &str) -> Result<(Registration, mpsc::Receiver<Event>, Vec<Event>), GatewayError> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let mut state = self.lock();
        let held = state.per_caller.get(caller).copied().unwrap_or(0);
        if held >= MAX_SUBSCRIPTIONS_PER_CALLER {
            return Err(GatewayError::BadUserInput(format!(
                "at most {MAX_SUBSCRIPTIONS_PER_CALLER} live subscriptions per client; close one first"
            )));
        }
        if state.total >= MAX_SUBSCRIPTIONS {
            return Err(GatewayError::ServiceUnavailable(format!(
                "this gateway holds its maximum of {MAX_SUBSCRIPTIONS} live subscriptions; try another or later"
            )));
        }
        state.per_caller.insert(caller.to_owned(), held + 1);
        state.total += 1;
        state.next_id += 1;
        let id = state.next_id;
        let recent = match scope {
            Scope::Checkout(checkout) => {
                state.by_checkout.entry(checkout).or_default().push((id, tx));
                state.recent.iter().filter(|e| e.envelope.checkout_id == checkout).cloned().collect()
            }
            Scope::All => {
                state.firehose.push((id, tx));
                Vec::new()
            }
        };
        metrics::gauge!("gateway_subscriptions").increment(1.0);
        Ok((Registration { hub: self.clone(), id, scope, caller: caller.to_owned() }, rx, recent))
    }

    /// Every event of one checkout from its first, then live; ends after the
    /// event that ends the checkout (for an orchestrated saga, its terminal
    /// transition, which follows `CheckoutSucceeded`/`CheckoutFailed`).
    pub async fn checkout(
        &self,
        events: &EventStore,
        checkout: CheckoutId,
        caller: &str,
    ) -> Result<impl Stream<Item = Result<Event, GatewayError>> + use<>, GatewayError> {
        let (registration, rx, recent) = self.register(Scope::Checkout(checkout), caller)?;
        let mut backlog: Vec<Event> = events.read_checkout(checkout).await?.into_iter().map(Arc::new).collect();
        backlog.extend(recent);
        backlog.sort_by_key(|e| e.sequence);
        backlog.dedup_by_key(|e| e.sequence);
        Ok(stitched(registration, backlog.into(), rx, true))
    }

    /// Every event from now on (admin firehose); never ends by itself.
    pub fn all(&self, caller: &str) -> Result<impl Stream<Item = Result<Event, GatewayError>> + use<>, GatewayError> {
        let (registration, rx, _) = self.register(Scope::All, caller)?;
        Ok(stitched(registration, VecDeque::new(), rx, false))
    }
}

/// Whether nothing of this checkout follows `event`.
pub fn ends_checkout(event: &RecordedEvent) -> bool {
    match (&event.envelope.payload, event.envelope.pattern) {
        // `COMPLETED`, `CANCELLED` or `COMPENSATION_FAILED`.
        (EventPayload::SagaTransitioned { to, .. }, Pattern::Orchestrated) => to.is_terminal(),
        (payload, Pattern::Choreographed) => payload.is_terminal(),
        _ => false,
    }
}

struct Stitch {
    _registration: Registration,
    backlog: VecDeque<Event>,
    rx: mpsc::Receiver<Event>,
    last: u64,
    ends: bool,
    done: bool,
}

/// The backlog, then the live events past it, each sequence once.
fn stitched(
    registration: Registration,
    backlog: VecDeque<Event>,
    rx: mpsc::Receiver<Event>,
    ends: bool,
) -> impl Stream<Item = Result<Event, GatewayError>> {
    let state = Stitch { _registration: registration, backlog, rx, last: 0, ends, done: false };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let event = match s.backlog.pop_front() {
                Some(event) => event,
                None => match s.rx.recv().await {
                    Some(event) => event,
                    None => {
                        s.done = true;
                        let e = GatewayError::ServiceUnavailable(
                            "the live feed ended: this subscriber fell behind, or the gateway is stopping; subscribe again".into(),
                        );
                        return Some((Err(e), s));
                    }
                },
            };
            if event.sequence <= s.last {
                continue;
            }
            s.last = event.sequence;
            s.done = s.ends && ends_checkout(&event);
            return Some((Ok(event), s));
        }
    })
}
