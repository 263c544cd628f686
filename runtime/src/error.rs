use std::path::PathBuf;

/// Why a process could not get its shared infrastructure ready.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(
        "NATS is unreachable at {url} after {attempts} attempts ({source}); \
         start nats-server with JetStream (`nats-server -js`) or unset NATS_URL so that `chorus up` starts one"
    )]
    NatsUnreachable {
        url: String,
        attempts: u32,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("invalid NATS_URL: {0}")]
    NatsUrl(String),
    #[cfg(feature = "db")]
    #[error("cannot open database {url}: {source}")]
    Database {
        url: String,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the Prometheus recorder: {0}")]
    Metrics(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
