//! The bench report: the JSON of DESIGN §7 (plus a few fields a reader of
//! the figures needs), its Markdown table, and the stock-conservation check.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Everything one `chorus bench` run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub runs: Vec<Run>,
    /// Every product's stock adds up (see [`StockCheck`]).
    pub stock_conserved: bool,
    pub machine: String,
    pub version: String,
    /// What was measured: `self-started (sqlite)`, or the `--url` given.
    pub target: String,
    /// Share of checkouts asked to fail at the order step (`--fail-rate`).
    pub fail_rate: f64,
    /// How the self-started platform writes to disk, beside its figures
    /// (`None` for a gateway given with `--url`: the bench cannot tell).
    #[serde(default)]
    pub durability: Option<String>,
    pub stock: Vec<StockCheck>,
}

/// One pattern's run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub pattern: String,
    pub clients: usize,
    pub duration_s: f64,
    /// Checkouts the gateway accepted.
    pub checkouts: u64,
    pub succeeded: u64,
    /// Ended failed (compensated or not).
    pub failed: u64,
    /// Failed after stock was reserved, and given it back.
    pub compensated: u64,
    /// Requests the gateway refused or that never ended (not in `checkouts`).
    pub errors: u64,
    pub throughput_per_s: f64,
    pub latency_ms: Latency,
    pub events_per_checkout: f64,
    /// From the order step failing for good to the stock being released.
    pub stock_freed_ms: Option<Latency>,
    /// CPU time the platform's process spent per checkout (self-started only).
    pub platform_cpu_ms_per_checkout: Option<f64>,
    /// What the NATS server counted per checkout (self-started single
    /// server only; the bench's own event feed included).
    #[serde(default)]
    pub nats: Option<NatsCost>,
    /// Statements per checkout on each database, by name (self-started
    /// only; from `db_statements_total{db}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_statements: Option<std::collections::BTreeMap<String, f64>>,
    /// CPU ms per checkout by where it was spent (self-started only):
    /// `chorus up`'s tokio threads (`runtime`), its SQLite connection
    /// threads (`sqlite`), its other threads, and nats-server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_by_thread: Option<std::collections::BTreeMap<String, f64>>,
    /// `--breakdown`: messages per checkout by subject shape, most first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_subject: Option<Vec<SubjectCost>>,
    /// The latency distribution: `[ms, share of checkouts at or below it]`,
    /// for the report's chart (empty in reports written before it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_cdf: Vec<[f64; 2]>,
    /// Checkouts ended per second over the run, as `[seconds from the
    /// start, checkouts/s in the bucket ending there]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<[f64; 2]>,
    /// `--crash`: the process killed mid-run and what the clients saw of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<super::crash::Crash>,
}

/// Messages per checkout on one subject shape (`checkout.*.StockReserved`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectCost {
    pub subject: String,
    pub messages: f64,
}

/// Per checkout, from the self-started nats-server's monitoring counters
/// (`/varz`) and its process's CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NatsCost {
    /// Messages the server received from its clients (`in_msgs`):
    /// publishes, requests, replies, acks, JetStream API calls.
    pub messages_in: f64,
    /// Messages it delivered (`out_msgs`): one per subscriber reached,
    /// JetStream deliveries to consumers included.
    pub messages_out: f64,
    /// CPU time of nats-server alone (also inside `platform_cpu_ms_per_checkout`).
    pub cpu_ms: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram recorded in microseconds.
    pub fn from_micros(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// `[ms, share]` points of `h`'s cumulative distribution: every percent,
/// then the tail at finer steps (where the patterns differ most).
pub fn cdf(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let quantiles = (0..100).map(|p| f64::from(p) / 100.0).chain([0.995, 0.999, 1.0]);
    quantiles.map(|q| [h.value_at_quantile(q) as f64 / 1000.0, q]).collect()
}

/// Checkouts per second in whole buckets of `width` over `span`, from
/// each checkout's end (time since the run began). The partial bucket at
/// the end (the last clients finishing) is left out: it would read as a
/// drop in throughput that did not happen.
pub fn timeline(ends: &[Duration], span: Duration, width: Duration) -> Vec<[f64; 2]> {
    let width_s = width.as_secs_f64().max(1e-3);
    let buckets = (span.as_secs_f64() / width_s).floor().max(1.0) as usize;
    let mut counts = vec![0u64; buckets];
    for end in ends {
        if let Some(n) = counts.get_mut((end.as_secs_f64() / width_s) as usize) {
            *n += 1;
        }
    }
    counts.iter().enumerate().map(|(i, &n)| [((i + 1) as f64 * width_s * 1000.0).round() / 1000.0, n as f64 / width_s]).collect()
}

/// A histogram of latencies, 1 µs to 10 min, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant bounds, valid for hdrhistogram
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_micros().clamp(1, u64::MAX as u128) as u64);
}

/// One product's stock after a run: `available + reserved + sold` must be
/// what was stocked, nothing may stay reserved, and exactly one unit per
/// succeeded checkout must be sold.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StockCheck {
    pub pattern: String,
    pub product_id: Uuid,
    pub stocked: i64,
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
    pub expected_sold: i64,
}

impl StockCheck {
    pub fn conserved(&self) -> bool {
        self.available + self.reserved + self.sold == self.stocked && self.reserved == 0 && self.sold == self.expected_sold
    }

    fn describe(&self) -> String {
        format!(
            "{} product {}: available {} + reserved {} + sold {} = {} (stocked {}), sold {} for {} succeeded",
            self.pattern,
            self.product_id,
            self.available,
            self.reserved,
            self.sold,
            self.available + self.reserved + self.sold,
            self.stocked,
            self.sold,
            self.expected_sold
        )
    }
}

impl Report {
    pub fn new(runs: Vec<Run>, stock: Vec<StockCheck>, target: String, fail_rate: f64) -> Report {
        Report {
            stock_conserved: stock.iter().all(StockCheck::conserved),
            runs,
            stock,
            machine: machine(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            target,
            fail_rate,
            durability: None,
        }
    }

    /// The table a person reads; the same figures as the JSON.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Chorus {} on {}, against {}{}.\n\n",
            self.version,
            self.machine,
            self.target,
            if self.fail_rate > 0.0 { format!(", fail rate {:.0}% at the order step", self.fail_rate * 100.0) } else { String::new() }
        ));
        if let Some(durability) = &self.durability {
            out.push_str(&format!("Durability: {durability}.\n\n"));
        }
        out.push_str("| pattern | clients | checkouts | succeeded | failed | compensated | errors | throughput | P50 | P95 | P99 | max | events/checkout | stock freed P50 | CPU/checkout | of it nats-server | NATS msgs in/checkout | NATS msgs out/checkout |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for r in &self.runs {
            let freed = r.stock_freed_ms.map(|l| format!("{:.1} ms", l.p50)).unwrap_or_else(|| "–".into());
            let cpu = r.platform_cpu_ms_per_checkout.map(|c| format!("{c:.2} ms")).unwrap_or_else(|| "–".into());
            let nats = |f: fn(&NatsCost) -> String| r.nats.as_ref().map(f).unwrap_or_else(|| "–".into());
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0}/s | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} | {} | {} | {} | {} | {} |\n",
                r.pattern,
                r.clients,
                r.checkouts,
                r.succeeded,
                r.failed,
                r.compensated,
                r.errors,
                r.throughput_per_s,
                r.latency_ms.p50,
                r.latency_ms.p95,
                r.latency_ms.p99,
                r.latency_ms.max,
                r.events_per_checkout,
                freed,
                cpu,
                nats(|n| format!("{:.2} ms", n.cpu_ms)),
                nats(|n| format!("{:.1}", n.messages_in)),
                nats(|n| format!("{:.1}", n.messages_out)),
            ));
        }
        out.push('\n');
        for r in &self.runs {
            if let Some(crash) = &r.crash {
                out.push_str(&format!("Crash: {}.\n", crash.describe(&r.pattern)));
            }
        }
        for r in &self.runs {
            let Some(per_db) = &r.db_statements else { continue };
            let total: f64 = per_db.values().sum();
            let each: Vec<String> = per_db.iter().map(|(db, n)| format!("{db} {n:.1}")).collect();
            out.push_str(&format!("Database statements per {} checkout: {total:.1} ({}).\n", r.pattern, each.join(", ")));
        }
        for r in &self.runs {
            let Some(split) = &r.cpu_by_thread else { continue };
            let each: Vec<String> = split.iter().map(|(kind, ms)| format!("{kind} {ms:.2} ms")).collect();
            out.push_str(&format!("CPU per {} checkout by thread: {}.\n", r.pattern, each.join(", ")));
        }
        if self.runs.iter().any(|r| r.db_statements.is_some() || r.cpu_by_thread.is_some()) {
            out.push('\n');
        }
        for r in &self.runs {
            let Some(rows) = &r.by_subject else { continue };
            let total: f64 = rows.iter().map(|c| c.messages).sum();
            out.push_str(&format!("Messages per {} checkout by subject ({total:.1} in all, as a subscriber on `>` sees them):\n\n", r.pattern));
            out.push_str("| subject | messages/checkout |\n| --- | ---: |\n");
            for c in rows {
                out.push_str(&format!("| `{}` | {:.2} |\n", c.subject, c.messages));
            }
            out.push('\n');
        }
        if self.stock_conserved {
            out.push_str(&format!(
                "Stock conserved: yes ({} products: available + reserved + sold = stocked, nothing left reserved, one sold per succeeded checkout).\n",
                self.stock.len()
            ));
        } else {
            out.push_str("Stock conserved: **NO**\n\n");
            for check in self.stock.iter().filter(|c| !c.conserved()) {
                out.push_str(&format!("- {}\n", check.describe()));
            }
        }
        out
    }
}

/// `cpu model, N cores, M GiB` from /proc (empty parts left out).
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|v| v.split_once(':')).map(|(_, m)| m.trim().to_owned()));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches("kB").trim().to_owned())))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| format!(", {:.0} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{}{cores} cores{memory}", model.map(|m| format!("{m}, ")).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pattern: &str) -> Run {
        Run {
            pattern: pattern.into(),
            clients: 16,
            duration_s: 10.0,
            checkouts: 100,
            succeeded: 90,
            failed: 10,
            compensated: 8,
            errors: 0,
            throughput_per_s: 10.0,
            latency_ms: Latency { p50: 1.0, p95: 2.0, p99: 3.0, max: 4.0 },
            events_per_checkout: 4.2,
            stock_freed_ms: None,
            platform_cpu_ms_per_checkout: Some(1.5),
            nats: Some(NatsCost { messages_in: 61.0, messages_out: 80.5, cpu_ms: 0.5 }),
            db_statements: None,
            cpu_by_thread: None,
            by_subject: None,
            latency_cdf: Vec::new(),
            timeline: Vec::new(),
            crash: None,
        }
    }

    fn check(available: i64, reserved: i64, sold: i64) -> StockCheck {
        StockCheck { pattern: "choreographed".into(), product_id: Uuid::nil(), stocked: 100, available, reserved, sold, expected_sold: 90 }
    }

    #[test]
    fn the_json_has_the_fields_design_names() {
        let report = Report::new(vec![run("orchestrated")], vec![check(10, 0, 90)], "self-started (sqlite)".into(), 0.0);
        let json = serde_json::to_value(&report).expect("json");
        for key in ["runs", "stock_conserved", "machine", "version"] {
            assert!(json.get(key).is_some(), "no {key}");
        }
        let run = &json["runs"][0];
        for key in ["pattern", "clients", "duration_s", "checkouts", "succeeded", "failed", "compensated", "throughput_per_s", "events_per_checkout"] {
            assert!(run.get(key).is_some(), "no runs[].{key}");
        }
        for key in ["p50", "p95", "p99", "max"] {
            assert!(run["latency_ms"][key].is_f64(), "no latency_ms.{key}");
        }
        assert_eq!(json["stock_conserved"], true);
    }

    #[test]
    fn stock_is_conserved_only_when_it_all_adds_up() {
        assert!(check(10, 0, 90).conserved());
        // A unit lost, a unit still held, a unit sold twice.
        assert!(!check(9, 0, 90).conserved());
        assert!(!check(9, 1, 90).conserved());
        assert!(!check(9, 0, 91).conserved());
        let report = Report::new(vec![run("choreographed")], vec![check(10, 0, 90), check(9, 1, 90)], "x".into(), 0.0);
        assert!(!report.stock_conserved);
        let md = report.markdown();
        assert!(md.contains("Stock conserved: **NO**"), "{md}");
        assert!(md.contains("reserved 1"), "{md}");
    }

    #[test]
    fn the_markdown_table_has_a_row_per_pattern() {
        let report = Report::new(vec![run("orchestrated"), run("choreographed")], vec![check(10, 0, 90)], "x".into(), 0.1);
        let md = report.markdown();
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), 4, "{md}");
        assert!(rows[2].starts_with("| orchestrated | 16 | 100 | 90 | 10 | 8 | 0 | 10/s | 1.00 ms | 2.00 ms"), "{}", rows[2]);
        assert!(md.contains("fail rate 10%"));
        assert!(md.contains("Stock conserved: yes (1 products"));
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = histogram();
        for ms in 1..=100u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let l = Latency::from_micros(&h);
        assert!((l.p50 - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.p99 - 99.0).abs() < 0.1, "{l:?}");
        assert!((l.max - 100.0).abs() < 0.1, "{l:?}");
        let cdf = cdf(&h);
        assert_eq!(cdf.first().map(|p| p[1]), Some(0.0));
        assert_eq!(cdf.last().map(|p| p[1]), Some(1.0));
        assert!(cdf.windows(2).all(|w| w[0][0] <= w[1][0] && w[0][1] < w[1][1]), "{cdf:?}");
    }

    #[test]
    fn the_timeline_counts_each_end_in_its_whole_bucket() {
        let ends: Vec<Duration> = [0.1, 0.2, 0.6, 1.4, 5.0].iter().map(|&s| Duration::from_secs_f64(s)).collect();
        let t = timeline(&ends, Duration::from_millis(2200), Duration::from_millis(500));
        assert_eq!(t, vec![[0.5, 4.0], [1.0, 2.0], [1.5, 2.0], [2.0, 0.0]]);
    }
}
