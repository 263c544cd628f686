/// Why a `chorus` command failed.
#[derive(Debug, thiserror::Error)]
pub enum ChorusError {
    #[error(transparent)]
    Runtime(#[from] chorus_runtime::RuntimeError),
    #[error(transparent)]
    Config(#[from] chorus_runtime::config::ConfigError),
    #[error(transparent)]
    NatsServer(#[from] chorus_runtime::nats_server::NatsServerError),
    #[error("event store: {0}")]
    EventStore(#[from] chorus_event_store::EventStoreError),
    #[error("{service}: {message}")]
    Service { service: &'static str, message: String },
    #[error("seeding demo products: {0}")]
    Seed(#[from] chorus_contracts::ServiceError),
    #[error(
        "refusing to serve {0} without auth: set CHORUS_JWT_SECRET, or listen on a loopback address"
    )]
    OpenWithoutAuth(std::net::SocketAddr),
    #[error("{0}")]
    Usage(String),
    #[error("bench: {0}")]
    Bench(String),
    #[error("chaos: {0}")]
    Chaos(String),
    /// The platform as separate processes (`chorus chaos`, `bench --crash`).
    #[error("the platform's processes: {0}")]
    Processes(String),
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("cannot bind the gateway to {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
