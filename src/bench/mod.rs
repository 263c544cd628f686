//! `chorus bench` (DESIGN §7): both saga styles driven through the public
//! GraphQL API by N closed-loop clients, measured as a client sees them, with
//! stock conservation checked at the end; and `chorus bench events`, the
//! event store alone.
//!
//! Latency is the orchestrated mutation's round trip; for a choreographed
//! checkout, from sending the mutation to its terminal event reaching an
//! `allCheckoutEvents` subscription opened before the run.

pub mod breakdown;
mod calls;
pub mod charts;
pub mod crash;
mod cpu;
pub mod events;
pub mod html;
mod own;
pub mod report;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chorus_runtime::Config;
use futures::future::OptionFuture;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use uuid::Uuid;

use crate::ChorusError;
use crate::client::{Api, Feed, Outcome};
use calls::{choreographed_checkout, orchestrated_checkout, per_call_rate, set_order_fault, stock_checks};
use own::OwnPlatform;
use report::{Report, Run, StockCheck};

/// What each bench product is stocked with: more than any run sells.
const STOCK: i64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PatternArg {
    Orchestrated,
    Choreographed,
    Both,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A running gateway to measure; without it, a platform is started as
    /// `chorus up` in a temp dir (its databases from the usual variables).
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value = "both")]
    pub pattern: PatternArg,
    /// Concurrent clients, each sending its next checkout when the last ended.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub clients: u16,
    /// Seconds each pattern runs.
    #[arg(long, default_value_t = 10.0, conflicts_with = "checkouts")]
    pub duration: f64,
    /// Checkouts per pattern, instead of a duration.
    #[arg(long)]
    pub checkouts: Option<u64>,
    /// Lines per cart (one unit of as many fresh products).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub items: u16,
    /// Share of checkouts that fail at the order step and compensate (a
    /// fault on `orders.create`; the platform needs CHORUS_FAULT_INJECTION=1).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the Markdown table here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the report as one self-contained HTML page here: charts of
    /// latency, throughput, cost, compensation and stock, and the two
    /// styles compared.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Also write each chart as `<name>.svg` into this directory.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// NATS nodes of the self-started platform: 1 (the server `chorus up`
    /// starts) or 3 (a JetStream cluster on loopback, everything at R3).
    #[arg(long = "nats-cluster", default_value_t = 1)]
    pub nats_cluster: usize,
    /// Fsync every commit (`CHORUS_DURABLE=1`: SQLite `synchronous=FULL`,
    /// JetStream `sync_interval: always`), to see what power-loss safety costs.
    #[arg(long)]
    pub durable: bool,
    /// Also count every message by subject (a subscriber on `>` of the
    /// bench's own nats-server) and print messages per checkout by subject.
    #[arg(long)]
    pub breakdown: bool,
    /// Kill one replica mid-run (SIGKILL), on a platform of separate
    /// processes: an orchestrator (orchestrated), an order-creation worker
    /// (choreographed); the report says how many checkouts waited and when
    /// the last of them ended.
    #[arg(long)]
    pub crash: bool,
    /// Bearer token (an admin's) for a gateway with auth.
    #[arg(long, env = "CHORUS_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchMode {
    /// The event store alone, on its own nats-server: pipelined append,
    /// whole-stream replay and one checkout's replay.
    Events(events::EventsArgs),
}

/// Runs the bench, prints and writes its report; `Err` also when stock was
/// not conserved.
pub async fn run(args: BenchArgs, config: &Config) -> Result<(), ChorusError> {
    if !(0.0..=1.0).contains(&args.fail_rate) {
        return Err(ChorusError::Usage(format!("--fail-rate must be from 0 to 1, not {}", args.fail_rate)));
    }
    if args.nats_cluster != 1 && args.nats_cluster != 3 {
        return Err(ChorusError::Usage("--nats-cluster takes 1 or 3".into()));
    }
    if args.durable && (args.url.is_some() || args.nats_cluster != 1) {
        return Err(ChorusError::Usage("--durable applies to the bench's own platform on one nats-server: no --url, no --nats-cluster".into()));
    }
    if args.breakdown && (args.url.is_some() || args.nats_cluster != 1) {
        return Err(ChorusError::Usage("--breakdown counts on the bench's own single nats-server: no --url, no --nats-cluster".into()));
    }
    if args.crash && (args.url.is_some() || args.nats_cluster != 1 || args.durable || args.breakdown) {
        return Err(ChorusError::Usage("--crash runs its own platform of separate processes: no --url, --nats-cluster, --durable or --breakdown".into()));
    }
    if args.checkouts.is_none() && !(args.duration > 0.0 && args.duration.is_finite()) {
        return Err(ChorusError::Usage(format!("--duration must be a positive number of seconds, not {}", args.duration)));
    }
    let mut processes = if args.crash { Some(crash::platform(config).await?) } else { None };
    let own = match (&args.url, &processes) {
        (None, None) => Some(OwnPlatform::start(config, args.nats_cluster, args.durable).await?),
        _ => None,
    };
    let (base, target) = match (&args.url, &own, &processes) {
        (Some(url), _, _) => (url.clone(), url.clone()),
        (None, Some(own), _) => (own.url.clone(), format!("a self-started `chorus up` ({})", own.backend)),
        (None, None, Some(p)) => {
            (p.api.base().to_owned(), "every role its own process, two orchestrators and two order-creation workers (`--crash`)".to_owned())
        }
        (None, None, None) => unreachable!("one of them is set"),
    };
    let api = Api::new(&base, args.token.clone())?;
    api.wait_healthy(Duration::from_secs(60)).await?;
    let feed = Feed::open(&api).await?;

    if args.fail_rate > 0.0 {
        set_order_fault(&api, per_call_rate(args.fail_rate, config.step_attempts)).await?;
    }
    let patterns: &[&str] = match args.pattern {
        PatternArg::Orchestrated => &["orchestrated"],
        PatternArg::Choreographed => &["choreographed"],
        PatternArg::Both => &["orchestrated", "choreographed"],
    };
    let mut runs = Vec::new();
    let mut stock = Vec::new();
    let mut outcome = Ok(());
    for pattern in patterns {
        match run_pattern(pattern, &args, &api, &feed, own.as_ref(), processes.as_mut()).await {
            Ok((run, checks)) => {
                runs.push(run);
                stock.extend(checks);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if args.fail_rate > 0.0 {
        set_order_fault(&api, 0.0).await?;
    }
    outcome?;
    let mut report = Report::new(runs, stock, target, args.fail_rate);
    report.durability = match (&own, &processes) {
        (Some(own), _) => Some(own.durability()),
        (None, Some(_)) => Some(own::durability(own::backend(config), false, false)),
        (None, None) => None,
    };
    let markdown = report.markdown();
    println!("{markdown}");
    if let Some(path) = &args.markdown {
        write(path, &markdown)?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| ChorusError::Bench(e.to_string()))?;
        write(path, &json)?;
    }
    if args.html.is_some() || args.charts.is_some() {
        let charts = charts::all(&report)?;
        if let Some(path) = &args.html {
            write(path, &html::page(&report, &charts))?;
        }
        if let Some(dir) = &args.charts {
            std::fs::create_dir_all(dir).map_err(ChorusError::Output)?;
            for chart in &charts {
                write(&dir.join(format!("{}.svg", chart.id)), &chart.svg)?;
            }
        }
    }
    if let Some(own) = own {
        own.stop().await;
    }
    if let Some(processes) = processes {
        processes.stop();
    }
    if report.stock_conserved { Ok(()) } else { Err(ChorusError::Bench("stock was not conserved".into())) }
}

pub(super) fn write(path: &Path, text: &str) -> Result<(), ChorusError> {
    std::fs::write(path, text).map_err(ChorusError::Output)
}

/// What one client measured.
struct ClientRun {
    latency: Histogram<u64>,
    ended: Vec<(Uuid, Outcome)>,
    /// When each was sent and ended, from the start of the run (the
    /// throughput chart, `--crash`).
    spans: Vec<(Duration, Duration)>,
    errors: u64,
    first_error: Option<String>,
}

async fn run_pattern(
    pattern: &'static str,
    args: &BenchArgs,
    api: &Api,
    feed: &Feed,
    own: Option<&OwnPlatform>,
    processes: Option<&mut crate::cluster::Cluster>,
) -> Result<(Run, Vec<StockCheck>), ChorusError> {
    let mut products = Vec::new();
    for i in 0..args.items {
        let data = api
            .gql(
                "mutation($n: String!, $s: Int!) { createProduct(name: $n, priceCents: 100, stock: $s) { id } }",
                json!({ "n": format!("bench {pattern} {i}"), "s": STOCK }),
            )
            .await
            .map_err(|e| ChorusError::Bench(format!("cannot create the bench's products: {e}")))?;
        let id: Uuid = data["createProduct"]["id"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| ChorusError::Bench("createProduct returned no id".into()))?;
        products.push(id);
    }
    let items: Vec<_> = products.iter().map(|p| json!({ "productId": p, "quantity": 1 })).collect();

    let progress = progress_bar(pattern, args);
    let issued = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(args.duration);
    let cpu_before = own.map(OwnPlatform::cpu_seconds);
    let threads_before = own.map(OwnPlatform::threads);
    let tally = match own.and_then(|own| own.server.as_ref()) {
        Some((server, _)) if args.breakdown => Some(breakdown::Tally::start(&server.url()).await?),
        _ => None,
    };
    let nats_before = OptionFuture::from(own.map(OwnPlatform::nats_counters)).await.flatten();
    let statements_before = OptionFuture::from(own.map(|_| api.statements())).await.flatten();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (api, feed, items, issued, progress) = (api.clone(), feed.clone(), items.clone(), issued.clone(), progress.clone());
        let (limit, choreographed) = (args.checkouts, pattern == "choreographed");
        tasks.push(tokio::spawn(async move {
            let client = Uuid::new_v4();
            let mut run = ClientRun { latency: report::histogram(), ended: Vec::new(), spans: Vec::new(), errors: 0, first_error: None };
            loop {
                let more = match limit {
                    Some(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                    None => Instant::now() < end,
                };
                if !more {
                    break;
                }
                let input = json!({ "i": { "clientId": client, "items": items } });
                let sent = Instant::now();
                let result = if choreographed {
                    choreographed_checkout(&api, &feed, input).await.map(|(id, at, outcome)| (id, at - sent, outcome))
                } else {
                    orchestrated_checkout(&api, input).await.map(|(id, outcome)| (id, sent.elapsed(), outcome))
                };
                match result {
                    Ok((id, latency, outcome)) => {
                        report::record(&mut run.latency, latency);
                        run.ended.push((id, outcome));
                        let since = |at: Instant| at.saturating_duration_since(started);
                        run.spans.push((since(sent), since(sent + latency)));
                    }
                    Err(e) => {
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                    }
                }
                progress.inc(1);
            }
            run
        }));
    }
    let ticker = tokio::spawn({
        let progress = progress.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let done = progress.position();
                let rate = done as f64 / started.elapsed().as_secs_f64();
                progress.set_message(format!("{done} checkouts, {rate:.0}/s"));
            }
        }
    });
    // `--crash`: halfway through (in time, or in checkouts sent), one replica dies.
    let killed = match processes {
        Some(processes) => {
            match args.checkouts {
                Some(n) => {
                    while progress.position() < n / 2 && !tasks.iter().all(|t| t.is_finished()) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                None => tokio::time::sleep(Duration::from_secs_f64(args.duration / 2.0)).await,
            }
            processes.kill(crash::victim(pattern))?;
            Some(started.elapsed())
        }
        None => None,
    };
    let mut latency = report::histogram();
    let mut ended = Vec::new();
    let mut spans = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for task in tasks {
        let run = task.await.map_err(|e| ChorusError::Bench(format!("a bench client failed: {e}")))?;
        latency.add(&run.latency).map_err(|e| ChorusError::Bench(e.to_string()))?;
        ended.extend(run.ended);
        spans.extend(run.spans);
        errors += run.errors;
        first_error = first_error.or(run.first_error);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    progress.finish_and_clear();
    if let Some(e) = &first_error {
        eprintln!("{pattern}: {errors} requests failed; the first: {e}");
    }

    // Compensations and the orchestrator's last transitions land after the
    // client has its answer: wait until the stream is quiet and nothing is held.
    feed.settle(Duration::from_millis(500), Duration::from_secs(30)).await;
    let cpu = match (own, cpu_before) {
        (Some(own), Some(before)) if !ended.is_empty() => Some((own.cpu_seconds() - before) * 1000.0 / ended.len() as f64),
        _ => None,
    };
    let cpu_by_thread = own.zip(threads_before).filter(|_| !ended.is_empty()).map(|(own, before)| {
        let per = |after: f64, before: f64| ((after - before) * 1000.0 / ended.len() as f64 * 100.0).round() / 100.0;
        own.threads().into_iter().map(|(kind, after)| (kind.to_owned(), per(after, before.get(kind).copied().unwrap_or(0.0)))).collect()
    });
    let nats_after = OptionFuture::from(own.map(OwnPlatform::nats_counters)).await.flatten().map(|mut after| {
        // The tally's own deliveries are the bench's, not the platform's.
        after.messages_out = after.messages_out.saturating_sub(tally.as_ref().map_or(0, breakdown::Tally::total));
        after
    });
    let nats = nats_before.zip(nats_after).and_then(|(before, after)| before.per_checkout(after, ended.len() as u64));
    let statements_after = OptionFuture::from(statements_before.as_ref().map(|_| api.statements())).await.flatten();
    let db_statements = statements_before.zip(statements_after).filter(|_| !ended.is_empty()).map(|(before, after)| {
        let per = |db: &String, n: &u64| (db.clone(), (n.saturating_sub(before.get(db).copied().unwrap_or(0)) as f64 / ended.len() as f64 * 100.0).round() / 100.0);
        after.iter().map(|(db, n)| per(db, n)).collect()
    });
    let by_subject = tally.map(|tally| {
        tally.per_checkout(ended.len() as u64).into_iter().map(|(subject, messages)| report::SubjectCost { subject, messages }).collect()
    });
    if !feed.is_open() {
        return Err(ChorusError::Bench("the gateway ended the bench's event subscription (too slow a reader?)".into()));
    }
    let succeeded = ended.iter().filter(|(_, o)| *o == Outcome::Succeeded).count() as u64;
    let checks = stock_checks(api, pattern, &products, succeeded as i64).await?;

    let mut freed = report::histogram();
    let (mut events, mut compensated) = (0u64, 0u64);
    for (id, _) in &ended {
        let seen = feed.seen(*id);
        events += u64::from(seen.events);
        compensated += u64::from(seen.compensated);
        if let Some(d) = seen.freed_after {
            report::record(&mut freed, d);
        }
    }
    let checkouts = ended.len() as u64;
    let run = Run {
        pattern: pattern.to_owned(),
        clients: usize::from(args.clients),
        duration_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        checkouts,
        succeeded,
        failed: checkouts - succeeded,
        compensated,
        errors,
        throughput_per_s: (checkouts as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
        latency_ms: report::Latency::from_micros(&latency),
        events_per_checkout: if checkouts == 0 { 0.0 } else { (events as f64 / checkouts as f64 * 100.0).round() / 100.0 },
        stock_freed_ms: (!freed.is_empty()).then(|| report::Latency::from_micros(&freed)),
        platform_cpu_ms_per_checkout: cpu.map(|c| (c * 100.0).round() / 100.0),
        nats,
        db_statements,
        cpu_by_thread,
        by_subject,
        latency_cdf: report::cdf(&latency),
        // About forty points whatever the length of the run.
        timeline: report::timeline(&spans.iter().map(|s| s.1).collect::<Vec<_>>(), elapsed, (elapsed / 40).max(Duration::from_millis(100))),
        crash: killed.map(|at| crash::Crash::measure(crash::victim(pattern), at, &spans)),
    };
    Ok((run, checks))
}


fn progress_bar(pattern: &str, args: &BenchArgs) -> ProgressBar {
    let (bar, template) = match args.checkouts {
        Some(n) => (ProgressBar::new(n), "{prefix:>13} [{bar:30}] {pos}/{len} {msg}"),
        None => (ProgressBar::new_spinner(), "{prefix:>13} {spinner} {elapsed} {msg}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(pattern.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
