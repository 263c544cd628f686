//! The `chorus` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use chorus_event_store::{EventType, Projection};
use strum::VariantArray;
use chorus_workers::WorkerName;

use crate::{
    bench::{BenchArgs, BenchMode},
    chaos::ChaosArgs,
    platform::{Options, Platform, Role, ServiceName},
    tools::{self, EventsQuery, Format, Replay},
};

#[derive(Debug, Parser)]
#[command(name = "chorus", version, about = "Checkout sagas, orchestrated and choreographed, side by side")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole platform in one process (embedded NATS unless NATS_URL is set).
    Up {
        /// Do not add demo products to an empty catalogue.
        #[arg(long)]
        no_seed: bool,
    },
    /// Run the GraphQL gateway alone, against NATS_URL.
    Gateway,
    /// Run one domain service alone, against NATS_URL.
    Service {
        #[arg(value_enum)]
        name: ServiceName,
    },
    /// Run one choreography worker alone, against NATS_URL (replicas share its consumer).
    Worker {
        #[arg(value_parser = clap::builder::ValueParser::new(parse_worker))]
        name: WorkerName,
    },
    /// List or tail the event stream (NATS_URL), by checkout or event type.
    Events {
        /// Only this checkout's events (read by its subject, no scan).
        #[arg(long)]
        checkout: Option<chorus_event_store::CheckoutId>,
        /// Only events of this type (CheckoutInitiated, StockReserved, …).
        #[arg(long = "type", value_parser = event_type)]
        event_type: Option<EventType>,
        /// First stream sequence to list.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most events to list (without --follow).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Keep printing events as they are appended.
        #[arg(long, short)]
        follow: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Replay one checkout, the whole stream, or rebuild a read model from it.
    Replay {
        /// Replay this checkout's events, in order.
        #[arg(long, conflicts_with = "rebuild")]
        checkout: Option<chorus_event_store::CheckoutId>,
        /// Drop and rebuild a read model: checkouts, orders_by_client or all.
        #[arg(long, value_parser = ["checkouts", "orders_by_client", "all"])]
        rebuild: Option<String>,
        /// Where a whole-stream replay starts.
        #[arg(long, default_value_t = 1)]
        from: u64,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Print the gateway's GraphQL schema (SDL).
    Schema,
    /// Is everything running, is anything stuck? Service replicas, consumer
    /// backlogs, stalled sagas, the outbox and the stream, from a gateway's
    /// `platform` query; exits 1 when it reports a problem.
    Status(crate::status::StatusArgs),
    /// Measure both saga styles through the GraphQL API (DESIGN §7), or
    /// with `events`, the event store alone.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        mode: Option<BenchMode>,
        #[command(flatten)]
        args: BenchArgs,
    },
    /// Break a platform of separate processes (kills, restarts, faults,
    /// duplicates) under load, then check that no checkout was lost, stock
    /// is conserved and nothing happened twice.
    Chaos(ChaosArgs),
}

/// The process: a multi-threaded tokio runtime running [`main`]. Built
/// here rather than by `#[tokio::main]` in `main.rs`, so that the binary
/// crate instantiates nothing: its codegen was half a minute at the very
/// end of a cold release build, after every other crate.
pub fn process() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(main()),
        Err(e) => {
            eprintln!("chorus: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line and runs it; configuration errors exit with 2.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Schema = cli.command {
        print!("{}", schema_sdl());
        return ExitCode::SUCCESS;
    }
    if let Command::Status(args) = cli.command {
        return crate::status::run(args).await.unwrap_or_else(|e| {
            eprintln!("chorus status: {e}");
            ExitCode::from(2)
        });
    }
    let config = match chorus_runtime::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chorus: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let telemetry = chorus_runtime::telemetry::init(config.log_format, &cli.command.service_name());
    let nats_url = config.nats_url.clone().unwrap_or_else(|| crate::platform::DEFAULT_NATS_URL.to_owned());
    let options = match cli.command {
        Command::Events { checkout, event_type, from, limit, follow, format } => {
            return finish(tools::events(&nats_url, EventsQuery { checkout, event_type, from, limit, follow, format }).await);
        }
        Command::Replay { checkout, rebuild, from, format } => {
            let what = match (checkout, rebuild.as_deref()) {
                (Some(id), _) => Replay::Checkout(id, format),
                (None, Some("all")) => Replay::Rebuild(Projection::ALL.to_vec()),
                (None, Some(name)) => Replay::Rebuild(Projection::parse(name).into_iter().collect()),
                (None, None) => Replay::Stream { from },
            };
            return finish(tools::replay(&nats_url, what).await);
        }
        Command::Bench { mode: Some(BenchMode::Events(args)), .. } => {
            return finish(crate::bench::events::run(args, &config).await);
        }
        Command::Bench { mode: None, args } => return finish(crate::bench::run(args, &config).await),
        Command::Chaos(args) => return finish(crate::chaos::run(args, &config).await),
        Command::Up { no_seed } => Options { seed_demo: !no_seed, say_steps: true, ..Options::new(Role::All) },
        Command::Gateway => Options::new(Role::Gateway),
        Command::Service { name } => Options::new(Role::Service(name)),
        Command::Worker { name } => Options::new(Role::Worker(name)),
        Command::Schema | Command::Status(_) => unreachable!("handled above"),
    };
    let code = match run(&config, options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "chorus failed");
            eprintln!("chorus: {e}");
            ExitCode::FAILURE
        }
    };
    // Off the runtime's threads: the flush waits for the runtime's export task.
    let _ = tokio::task::spawn_blocking(move || telemetry.flush()).await;
    code
}

impl Command {
    /// The `service.name` of this process's exported spans.
    fn service_name(&self) -> String {
        match self {
            Command::Up { .. } => "chorus".to_owned(),
            Command::Gateway => "chorus-gateway".to_owned(),
            Command::Service { name } => format!("chorus-{}", format!("{name:?}").to_lowercase()),
            Command::Worker { name } => format!("chorus-worker-{name}"),
            Command::Events { .. }
            | Command::Replay { .. }
            | Command::Schema
            | Command::Status(_)
            | Command::Bench { .. }
            | Command::Chaos(_) => {
                "chorus-tool".to_owned()
            }
        }
    }
}

async fn run(config: &chorus_runtime::Config, options: Options) -> Result<(), crate::ChorusError> {
    let platform = Platform::start(config, options).await?;
    platform.stop_on_signal();
    match platform.gateway_addr {
        Some(addr) if options.role == Role::All => println!(
            "Chorus is up.\n  GraphiQL: http://{addr}/\n  GraphQL:  http://{addr}/graphql\n  health:   http://{addr}/health\n  metrics:  http://{addr}/metrics\n  NATS:     {}\n  data:     {}\nCtrl-C stops it.",
            platform.nats_url,
            config.data_dir.display()
        ),
        Some(addr) => println!("gateway listening on http://{addr}/ (NATS {})", platform.nats_url),
        None => println!("{:?} serving on {}", options.role, platform.nats_url),
    }
    platform.stopping().await;
    platform.stop().await;
    Ok(())
}

/// A tool's exit: its error on stderr.
fn finish(result: Result<(), crate::ChorusError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_worker(name: &str) -> Result<WorkerName, String> {
    name.parse()
}

/// The gateway's SDL, as `schema.graphql` holds it.
pub fn schema_sdl() -> String {
    chorus_gateway::schema::sdl()
}

/// An event type named on the command line, or the list of the known ones.
fn event_type(raw: &str) -> Result<EventType, String> {
    raw.parse().map_err(|_| {
        let known: Vec<&str> = EventType::VARIANTS.iter().map(|t| t.as_str()).collect();
        format!("unknown event type `{raw}`; one of: {}", known.join(", "))
    })
}
