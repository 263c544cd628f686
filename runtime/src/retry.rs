//! Retrying what infrastructure makes fail for a while (a NATS leader
//! election, a node restarting, a database failing over): one policy, from
//! `backon`, for every loop that must not give up.

use std::{fmt::Display, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};

/// Exponential backoff with jitter from `first`, doubling up to `cap`, never
/// giving up: for work that must happen (a relay, an undo, provisioning).
pub fn forever(first: Duration, cap: Duration) -> ExponentialBuilder {
    ExponentialBuilder::new().with_min_delay(first).with_max_delay(cap).with_jitter().without_max_times()
}

/// The same backoff, giving up after `attempts` tries in all.
pub fn bounded(first: Duration, cap: Duration, attempts: u32) -> ExponentialBuilder {
    ExponentialBuilder::new().with_min_delay(first).with_max_delay(cap).with_jitter().with_max_times(attempts.saturating_sub(1) as usize)
}

/// [`forever`]'s waits one after the other, for a loop that must do more
/// between two tries than `until_ok` allows.
pub fn delays(first: Duration, cap: Duration) -> impl Iterator<Item = Duration> {
    forever(first, cap).build()
}

/// The wait after failed try `attempt` under [`forever`]'s backoff, for a
/// retry someone else schedules (a nak with a delay: the server redelivers).
pub fn delay(first: Duration, cap: Duration, attempt: u32) -> Duration {
    delays(first, cap).nth(attempt.saturating_sub(1) as usize).unwrap_or(cap)
}

/// Runs `op` under `policy` until it succeeds or fails with an error that
/// `retryable` says trying again cannot cure; every failure is logged as a
/// warning naming `what`, so a wait is never silent.
pub async fn until_ok<T, E, Fut>(
    what: &str,
    policy: ExponentialBuilder,
    retryable: impl FnMut(&E) -> bool,
    op: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    op.retry(policy)
        .when(retryable)
        .notify(|e: &E, after: Duration| tracing::warn!(error = %e, retry_in = ?after, "{what}: retrying"))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_from_the_first_and_stop_at_the_cap() {
        let (first, cap) = (Duration::from_millis(100), Duration::from_secs(2));
        // Jitter adds up to one more delay's worth; the cap holds throughout.
        let one = delay(first, cap, 1);
        assert!(one >= first && one <= 2 * first, "{one:?}");
        let four = delay(first, cap, 4);
        assert!(four >= 8 * first && four <= cap.max(16 * first), "{four:?}");
        assert!(delay(first, cap, 30) <= 2 * cap);
    }
}
