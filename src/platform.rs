//! Starting and stopping the parts of a process.
//!
//! `chorus up` runs every part in one process; `chorus gateway`,
//! `chorus service <name>` and `chorus worker <name>` run one part each
//! against `NATS_URL`. All go through [`Platform::start`], as do the
//! end-to-end tests.

use std::{net::SocketAddr, time::Duration};

use chorus_contracts::{ServiceClient, faults::{self, Faults}};
use chorus_event_store::{EventStore, Projections};
use chorus_workers::WorkerName;
use chorus_runtime::{
    Config,
    config::ServiceDb,
    nats_server::NatsServer,
    shutdown::Shutdown,
};
use sea_orm::DatabaseConnection;

use crate::{ChorusError, seed};

/// How long in-flight work may take to finish at shutdown.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);
/// How long an orchestrated checkout call waits for its saga to end.
pub const CHECKOUT_WAIT: Duration = Duration::from_secs(60);
/// Where `chorus gateway` and `chorus service` look for NATS by default.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// A domain service that owns a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    Catalogue,
    Inventory,
    Orders,
    Orchestrator,
}

impl ServiceName {
    pub const ALL: [ServiceName; 4] =
        [ServiceName::Catalogue, ServiceName::Inventory, ServiceName::Orders, ServiceName::Orchestrator];

    fn db(self) -> ServiceDb {
        match self {
            ServiceName::Catalogue => ServiceDb::Catalogue,
            ServiceName::Inventory => ServiceDb::Inventory,
            ServiceName::Orders => ServiceDb::Orders,
            ServiceName::Orchestrator => ServiceDb::Orchestrator,
        }
    }
}

/// Which parts a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything, with an embedded NATS server unless `NATS_URL` is set.
    All,
    Gateway,
    Service(ServiceName),
    Worker(WorkerName),
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub role: Role,
    /// Add demo products when the catalogue is empty (role `All` only).
    pub seed_demo: bool,
    /// Workers role `All` leaves out (tests: a stalled worker).
    pub except_workers: &'static [WorkerName],
    /// Say each step of the start on stdout (`chorus up`), before the
    /// addresses: a first start creates stores and seeds, and takes a moment.
    pub say_steps: bool,
}

impl Options {
    pub fn new(role: Role) -> Self {
        Options { role, seed_demo: false, except_workers: &[], say_steps: false }
    }
}

/// One step of a start, on stdout when asked (and in the log either way).
fn step(options: &Options, what: &str) {
    tracing::info!(step = what, "starting");
    if options.say_steps {
        println!("  {what}");
    }
}

/// A running process: its parts, and what [`stop`](Self::stop) must close.
#[derive(Debug)]
pub struct Platform {
    pub gateway_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub nats_url: String,
    pub nats: async_nats::Client,
    pub events: EventStore,
    pub projections: Projections,
    pub services: ServiceClient,
    shutdown: Shutdown,
    databases: Vec<DatabaseConnection>,
    embedded_nats: Option<NatsServer>,
}

impl Platform {
    /// Starts every part of `options.role`; returns once each is serving.
    pub async fn start(config: &Config, options: Options) -> Result<Self, ChorusError> {
        let metrics = chorus_runtime::metrics::install(config.metrics)?;
        let shutdown = Shutdown::new();

        if options.say_steps {
            let first = !config.data_dir.join("nats").exists();
            let what = if first { format!("first start: creating {}", config.data_dir.display()) } else { format!("data in {}", config.data_dir.display()) };
            println!("Starting Chorus ({what})");
        }
        let embedded_nats = match (&config.nats_url, options.role) {
            (None, Role::All) => {
                let store = config.data_dir.join("nats");
                let extra = if config.durable { NatsServer::sync_always(&store)? } else { Vec::new() };
                let server = NatsServer::start_free(&config.nats_server_bin, &store, extra)?;
                step(&options, &format!("nats-server started with JetStream ({}, store {})", server.url(), store.display()));
                Some(server)
            }
            _ => None,
        };
        let nats_url = match (&embedded_nats, &config.nats_url) {
            (Some(server), _) => server.url(),
            (None, Some(url)) => url.clone(),
            (None, None) => DEFAULT_NATS_URL.to_owned(),
        };
        let nats = chorus_runtime::nats::connect(&nats_url, &format!("chorus-{:?}", options.role).to_lowercase()).await?;
        let events = EventStore::provision(nats.clone(), config.stream_replicas).await?;
        let projections = Projections::provision(events.jetstream().clone(), config.stream_replicas).await?;
        step(&options, "event stream CHECKOUT_EVENTS and read models CHECKOUTS, ORDERS_BY_CLIENT ready");
        let services = ServiceClient::new(nats.clone(), config.service_timeout);

        let service_names: &[ServiceName] = match options.role {
            Role::All => &ServiceName::ALL,
            Role::Service(name) => match name {
                ServiceName::Catalogue => &[ServiceName::Catalogue],
                ServiceName::Inventory => &[ServiceName::Inventory],
                ServiceName::Orders => &[ServiceName::Orders],
                ServiceName::Orchestrator => &[ServiceName::Orchestrator],
            },
            Role::Gateway | Role::Worker(_) => &[],
        };
        let service_faults = Faults::new(&config.faults);
        if config.fault_injection && !service_names.is_empty() {
            faults::listen(nats.clone(), service_faults.clone(), shutdown.token.clone())
                .await
                .map_err(|e| ChorusError::Service { service: "faults", message: e.to_string() })?;
        }
        let mut databases = Vec::new();
        for name in service_names {
            let mut db = chorus_runtime::db::open(&config.database_url(name.db()), config.db_options()).await?;
            chorus_runtime::db::count_statements(&mut db, name.db().name());
            databases.push(db.clone());
            let parts = Parts { nats: nats.clone(), services: services.clone(), events: events.clone(), faults: service_faults.clone() };
            start_service(*name, db, parts, config, &shutdown).await?;
        }
        if !service_names.is_empty() {
            let names: Vec<&str> = service_names.iter().map(|n| n.db().name()).collect();
            let backend = if config.database_url(ServiceDb::Inventory).starts_with("postgres") { "Postgres" } else { "SQLite" };
            step(&options, &format!("services migrated and serving: {} ({backend})", names.join(", ")));
        }

        let worker_names: Vec<WorkerName> = match options.role {
            Role::All => WorkerName::ALL.iter().copied().filter(|w| !options.except_workers.contains(w)).collect(),
            Role::Worker(name) => vec![name],
            _ => Vec::new(),
        };
        if !worker_names.is_empty() {
            let audit = if worker_names.contains(&WorkerName::Audit) {
                let mut db = chorus_runtime::db::open(&config.database_url(ServiceDb::Audit), config.db_options()).await?;
                chorus_runtime::db::count_statements(&mut db, ServiceDb::Audit.name());
                chorus_workers::audit::migrate(&db)
                    .await
                    .map_err(|e| ChorusError::Service { service: "audit", message: e.to_string() })?;
                databases.push(db.clone());
                Some(db)
            } else {
                None
            };
            let workers = chorus_workers::Workers {
                services: services.clone(),
                events: events.clone(),
                projections: projections.clone(),
                nats: nats.clone(),
                settings: chorus_workers::Settings {
                    attempts: config.step_attempts,
                    backoff: config.step_backoff,
                    stall_deadline: config.stall_deadline,
                    ack_wait: config.ack_wait,
                    crash_before_ack: crash_before_ack(),
                    drop_acks: drop_acks(),
                },
                audit,
                consumer_infos: Default::default(),
            };
            let count = worker_names.len();
            for name in worker_names {
                chorus_workers::consumer::start(name, workers.clone(), &shutdown)
                    .await
                    .map_err(|e| ChorusError::Service { service: "workers", message: format!("{name}: {e}") })?;
            }
            step(&options, &format!("{count} workers pulling from their consumers"));
        }

        // Before the gateway listens: a healthy gateway serves the demo products.
        if options.role == Role::All && options.seed_demo {
            let seeded = seed::seed_if_empty(&services).await?;
            if seeded > 0 {
                step(&options, &format!("seeded {seeded} demo products (an empty catalogue)"));
            }
        }
        let gateway_addr = match options.role {
            Role::All | Role::Gateway => {
                let addr = config.gateway_addr;
                if config.jwt_secret.is_none() {
                    if !addr.ip().is_loopback() {
                        return Err(ChorusError::OpenWithoutAuth(addr));
                    }
                    tracing::warn!(%addr, "no CHORUS_JWT_SECRET: serving without auth, on loopback only");
                }
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ChorusError::Bind { addr, source })?;
                let state = chorus_gateway::GatewayState {
                    services: services.clone(),
                    events: events.clone(),
                    projections: projections.clone(),
                    hub: chorus_gateway::live::Hub::start(events.clone(), &shutdown)
                        .await
                        .map_err(|e| ChorusError::Service { service: "gateway", message: e.to_string() })?,
                    auth: chorus_gateway::auth::Auth::with_leeway(config.jwt_secret.as_ref().map(|s| s.expose()), config.jwt_leeway),
                    checkouts: services.with_timeout(CHECKOUT_WAIT + Duration::from_secs(15)),
                    fault_injection: config.fault_injection,
                    limits: chorus_gateway::limits::Limits::from_config(config),
                };
                let state_limits = state.limits.clone();
                let router = chorus_gateway::router(state, metrics.clone(), &config.cors_origins);
                let bound = chorus_gateway::serve(listener, router, &state_limits, &shutdown)
                    .map_err(|source| ChorusError::Bind { addr, source })?;
                Some(bound)
            }
            Role::Service(_) | Role::Worker(_) => None,
        };
        let metrics_addr = match (options.role, config.metrics_addr) {
            (Role::Service(_) | Role::Worker(_), Some(addr)) => {
                Some(chorus_runtime::metrics::serve(addr, metrics, shutdown.token.clone()).await?)
            }
            _ => None,
        };

        Ok(Platform {
            gateway_addr,
            metrics_addr,
            nats_url,
            nats,
            events,
            projections,
            services,
            shutdown,
            databases,
            embedded_nats,
        })
    }

    /// Resolves when the process is asked to stop (signal or [`Self::stop`]).
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.shutdown.token.clone().cancelled_owned()
    }

    /// Stops in order: take no new work, finish in-flight requests (bounded),
    /// drain NATS, close databases, stop the embedded NATS server.
    pub async fn stop(mut self) {
        self.shutdown.token.cancel();
        if !self.shutdown.wait(DRAIN_LIMIT).await {
            tracing::warn!(limit = ?DRAIN_LIMIT, "in-flight work did not finish in time");
        }
        if let Err(e) = self.nats.drain().await {
            tracing::warn!(error = %e, "NATS drain failed");
        }
        for db in self.databases.drain(..) {
            if let Err(e) = db.close().await {
                tracing::warn!(error = %e, "database did not close cleanly");
            }
        }
        if let Some(mut server) = self.embedded_nats.take() {
            server.stop();
        }
        tracing::info!("stopped");
    }

    /// Cancels on SIGINT/SIGTERM.
    pub fn stop_on_signal(&self) {
        self.shutdown.cancel_on_signal();
    }
}

/// What every service is started with.
struct Parts {
    nats: async_nats::Client,
    services: ServiceClient,
    events: EventStore,
    faults: Faults,
}

async fn start_service(
    name: ServiceName,
    db: DatabaseConnection,
    parts: Parts,
    config: &Config,
    shutdown: &Shutdown,
) -> Result<(), ChorusError> {
    let err = |service: &'static str| move |e: &dyn std::fmt::Display| ChorusError::Service { service, message: e.to_string() };
    let Parts { nats, services, events, faults } = parts;
    match name {
        ServiceName::Catalogue => chorus_catalogue::start(db, nats, faults, shutdown).await.map_err(|e| err("catalogue")(&e)),
        ServiceName::Inventory => chorus_inventory::start(db, nats, faults, shutdown).await.map_err(|e| err("inventory")(&e)),
        ServiceName::Orders => chorus_orders::start(db, nats, faults, shutdown).await.map_err(|e| err("orders")(&e)),
        ServiceName::Orchestrator => {
            let settings = chorus_orchestrator::Settings {
                lease: config.saga_lease,
                step_attempts: config.step_attempts,
                backoff: config.step_backoff,
                wait_limit: CHECKOUT_WAIT,
            };
            chorus_orchestrator::start(db, nats, services, events, settings, faults, shutdown)
                .await
                .map(drop)
                .map_err(|e| err("orchestrator")(&e))
        }
    }
}

/// `CHORUS_TEST_DROP_ACKS=<share>`: workers leave that share of handled
/// events unacked, to be redelivered (the chaos suite; never in production).
fn drop_acks() -> f64 {
    std::env::var("CHORUS_TEST_DROP_ACKS").ok().and_then(|s| s.parse::<f64>().ok()).map_or(0.0, |r| r.clamp(0.0, 1.0))
}

/// `CHORUS_TEST_CRASH_BEFORE_ACK=<worker>`: that worker aborts the process
/// after an event's effects and before its ack (the redelivery test).
fn crash_before_ack() -> Option<WorkerName> {
    std::env::var("CHORUS_TEST_CRASH_BEFORE_ACK").ok()?.parse().ok()
}
