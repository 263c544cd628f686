//! Retrying what infrastructure makes fail for a while (a NATS leader
//! election, a node restarting, a database failing over): one policy, from
//! `backon`, for every loop that must not give up.

use std::{fmt::Display, time::Duration};

use backon::{ExponentialBuilder, Retryable};

/// Exponential backoff with jitter from `first`, doubling up to `cap`, never
/// giving up: for work that must happen (a relay, an undo, provisioning).
pub fn forever(first: Duration, cap: Duration) -> ExponentialBuilder {
    ExponentialBuilder::new().with_min_delay(first).with_max_delay(cap).with_jitter().without_max_times()
}

/// The same backoff, giving up after `attempts` tries in all.
pub fn bounded(first: Duration, cap: Duration, attempts: u32) -> ExponentialBuilder {
    ExponentialBuilder::new().with_min_delay(first).with_max_delay(cap).with_jitter().with_max_times(attempts.saturating_sub(1) as usize)
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
