//! `chorus bench --breakdown`: which messages a checkout costs, by subject.
//! A subscriber on `>` of the bench's own nats-server counts every message
//! routed, grouped by the subject's shape (ids and inbox tokens replaced by
//! `*`), so that the service calls, events, acks, JetStream API calls and
//! key-value reads and writes each show; the subject names the role that
//! sent it (a worker's acks carry its durable's name).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::StreamExt;

use crate::ChorusError;

/// Messages per checkout below which a subject is not listed on its own.
const FOLD_BELOW: f64 = 0.5;

/// Counting, from [`Tally::start`] until dropped.
pub struct Tally {
    counts: Arc<Mutex<HashMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tally {
    pub async fn start(nats_url: &str) -> Result<Self, ChorusError> {
        let client = chorus_runtime::nats::connect(nats_url, "chorus-bench-breakdown").await?;
        let mut messages = client
            .subscribe(">")
            .await
            .map_err(|e| ChorusError::Bench(format!("cannot subscribe to every subject: {e}")))?;
        // The subscription is in place once the server has it.
        client.flush().await.map_err(|e| ChorusError::Bench(format!("cannot reach NATS: {e}")))?;
        let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let tally = counts.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Some(message) = messages.next().await {
                let shape = shape(message.subject.as_str());
                *tally.lock().unwrap_or_else(|p| p.into_inner()).entry(shape).or_default() += 1;
            }
        });
        Ok(Tally { counts, task })
    }

    /// Messages per checkout by subject shape, most first; shapes under
    /// [`FOLD_BELOW`] per checkout (polls, advisories) are one row.
    pub fn per_checkout(&self, checkouts: u64) -> Vec<(String, f64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = checkouts.max(1) as f64;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let per: Vec<(String, f64)> = counts.iter().map(|(s, c)| (s.clone(), *c as f64 / n)).collect();
        let (mut rows, small): (Vec<_>, Vec<_>) = per.into_iter().partition(|(_, per)| *per >= FOLD_BELOW);
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if !small.is_empty() {
            rows.push((format!("({} other subjects)", small.len()), small.iter().map(|(_, per)| per).sum()));
        }
        rows.into_iter().map(|(s, per)| (s, round(per))).collect()
    }

    /// Everything counted.
    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A subject with its varying tokens (uuids, inbox and NUID tokens,
/// numbers) replaced by `*`: `checkout.<uuid>.StockReserved` →
/// `checkout.*.StockReserved`; an inbox keeps only `_INBOX.*`.
pub fn shape(subject: &str) -> String {
    if subject.starts_with("_INBOX.") {
        return "_INBOX.* (replies)".into();
    }
    // An ack's tail is delivery bookkeeping (counts, sequences, time).
    let tokens: Vec<&str> = subject.split('.').collect();
    let keep = if subject.starts_with("$JS.ACK.") { tokens.len().min(4) } else { tokens.len() };
    let mut out: Vec<&str> = tokens[..keep].iter().map(|t| if varies(t) { "*" } else { t }).collect();
    if keep < tokens.len() {
        out.push("…");
    }
    out.join(".")
}

fn varies(token: &str) -> bool {
    uuid::Uuid::parse_str(token).is_ok()
        || token.chars().all(|c| c.is_ascii_digit())
        || (token.len() >= 16 && token.chars().all(|c| c.is_ascii_alphanumeric()) && token.chars().any(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::shape;

    #[test]
    fn ids_and_bookkeeping_are_folded() {
        assert_eq!(shape("checkout.0191e0a2-7b1c-7cc3-9a4e-2f1d8c3b4a5e.StockReserved"), "checkout.*.StockReserved");
        assert_eq!(shape("_INBOX.abc.def"), "_INBOX.* (replies)");
        assert_eq!(shape("$JS.ACK.CHECKOUT_EVENTS.audit.1.2044.2044.1733200000000000000.0"), "$JS.ACK.CHECKOUT_EVENTS.audit.…");
        assert_eq!(shape("$JS.API.DIRECT.GET.CHECKOUT_EVENTS"), "$JS.API.DIRECT.GET.CHECKOUT_EVENTS");
        assert_eq!(shape("inventory.reserve"), "inventory.reserve");
    }
}
