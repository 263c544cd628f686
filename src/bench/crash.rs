//! `chorus bench --crash`: the platform as separate processes (two
//! orchestrator replicas, two order-creation workers), one of which is
//! SIGKILLed halfway through its pattern's run: `orchestrator-1` for the
//! orchestrated run (its sagas wait for their lease to lapse and the other
//! replica to take them over), `order-creation` for the choreographed one
//! (its unacked events wait for their ack wait to lapse and go to the other
//! worker). What the clients saw of it is the recovery figure.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ChorusError, cluster::Cluster};

/// The process killed in each pattern's run.
pub fn victim(pattern: &str) -> &'static str {
    if pattern == "orchestrated" { "orchestrator-1" } else { "order-creation" }
}

/// The platform `--crash` runs on: every role its own process, with a
/// second order-creation worker beside the two orchestrator replicas, so
/// that each pattern has a replica to lose and one to carry on.
pub async fn platform(config: &chorus_runtime::Config) -> Result<Cluster, ChorusError> {
    let mut cluster = Cluster::start(config, 1, &[]).await?;
    cluster.add("order-creation-2", &["worker", "order-creation"])?;
    cluster.wait_healthy().await?;
    Ok(cluster)
}

/// What the clients saw of one kill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    /// The process killed (SIGKILL).
    pub killed: String,
    /// When, in seconds from the start of the run.
    pub at_s: f64,
    /// Checkouts sent before the kill that had not ended by then.
    pub in_flight: u64,
    /// Of those, the ones that took longer than the P99 of the checkouts
    /// that ended before the kill: the ones the killed process held.
    pub waited: u64,
    /// From the kill until the last of those ended (0 when none waited).
    pub recovered_ms: f64,
    /// The P99 before the kill that `waited` is measured against.
    pub p99_before_ms: f64,
}

impl Crash {
    /// From each checkout's `(sent, ended)`, both since the start of the run.
    pub fn measure(killed: &str, at: Duration, spans: &[(Duration, Duration)]) -> Crash {
        // The P99 the report's own percentiles use (its HDR histogram).
        let mut before = super::report::histogram();
        for (sent, end) in spans.iter().filter(|(_, end)| *end <= at) {
            super::report::record(&mut before, *end - *sent);
        }
        let p99 = if before.is_empty() { Duration::ZERO } else { Duration::from_micros(before.value_at_quantile(0.99)) };
        let in_flight: Vec<_> = spans.iter().filter(|(sent, end)| *sent < at && *end > at).collect();
        let waited: Vec<_> = in_flight.iter().filter(|(sent, end)| *end - *sent > p99).collect();
        let last = waited.iter().map(|(_, end)| *end).max().map_or(Duration::ZERO, |end| end - at);
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        Crash {
            killed: killed.to_owned(),
            at_s: (at.as_secs_f64() * 1000.0).round() / 1000.0,
            in_flight: in_flight.len() as u64,
            waited: waited.len() as u64,
            recovered_ms: ms(last),
            p99_before_ms: ms(p99),
        }
    }

    /// One sentence for the Markdown report and the page.
    pub fn describe(&self, pattern: &str) -> String {
        format!(
            "{pattern}: `{}` killed at {:.1} s with {} checkouts in flight; {} of them waited (took longer than the P99 before, \
             {:.1} ms), the last ended {:.0} ms after the kill",
            self.killed, self.at_s, self.in_flight, self.waited, self.p99_before_ms, self.recovered_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_checkouts_in_flight_at_the_kill_that_took_long_are_the_ones_that_waited() {
        // Before the kill: 10 ms each. At 1 s: two in flight, one held by
        // the killed process (ends 3 s later), one not (ends at once).
        let mut spans: Vec<_> = (0..90).map(|i| (ms(i * 10), ms(i * 10 + 10))).collect();
        spans.push((ms(995), ms(4_000)));
        spans.push((ms(998), ms(1_005)));
        spans.push((ms(1_100), ms(1_110)));
        let crash = Crash::measure("orchestrator-1", ms(1_000), &spans);
        assert_eq!((crash.in_flight, crash.waited), (2, 1), "{crash:?}");
        assert_eq!(crash.recovered_ms, 3_000.0);
        assert_eq!(crash.p99_before_ms, 10.0);
        assert!(crash.describe("orchestrated").contains("`orchestrator-1` killed at 1.0 s with 2 checkouts in flight"));
    }

    #[test]
    fn a_kill_nobody_felt_reports_nothing_waited() {
        let spans: Vec<_> = (0..10).map(|i| (ms(i * 10), ms(i * 10 + 5))).collect();
        let crash = Crash::measure("order-creation", ms(200), &spans);
        assert_eq!((crash.in_flight, crash.waited, crash.recovered_ms), (0, 0, 0.0));
    }
}
