//! A sea-orm connection to a service's own database.
//!
//! SQLite is the embedded default: one file per service, WAL mode, and one
//! connection per pool, because SQLite takes one writer at a time anyway and
//! a single connection turns what would be `SQLITE_BUSY` races between
//! concurrent transactions into a plain queue. Postgres is used when the
//! service's `*_DATABASE_URL` says so.

use std::{str::FromStr, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, SqlxSqliteConnector,
    TransactionTrait,
    sqlx::{
        ConnectOptions as _,
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    },
};

use crate::RuntimeError;

/// How a database is opened ([`crate::Config::db_options`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Every commit waits for its fsync (`CHORUS_DURABLE`).
    pub durable: bool,
    /// Connections to a Postgres database (`CHORUS_DB_POOL`); `None`: the
    /// machine's cores, at least 2. Measured on 2 cores at 32 clients, 2
    /// connections per database ran about 1.4× the checkouts of 16: the
    /// backends only queued for the cores and for each other's row locks.
    pub pool: Option<usize>,
}

/// Opens `url` (`sqlite:` or `postgres://`) with the default [`Options`],
/// creating a SQLite file and its directory if needed.
pub async fn connect(url: &str) -> Result<DatabaseConnection, RuntimeError> {
    open(url, Options::default()).await
}

/// Opens `url`. `durable` makes every commit wait for its fsync, on either
/// backend: SQLite `synchronous=FULL`, Postgres `synchronous_commit=on`.
/// Otherwise both promise the same as JetStream's default sync interval: a
/// crash of the machine may lose the last commits, never corrupt the data
/// (SQLite `synchronous=NORMAL` in WAL mode, Postgres
/// `synchronous_commit=off`, which flushes its WAL within 3 ×
/// `wal_writer_delay`).
pub async fn open(url: &str, Options { durable, pool }: Options) -> Result<DatabaseConnection, RuntimeError> {
    let db_err = |source| RuntimeError::Database { url: redact(url), source };
    if url.starts_with("sqlite:") {
        if let Some(dir) = sqlite_dir(url) {
            std::fs::create_dir_all(&dir)
                .map_err(|source| RuntimeError::DataDir { path: dir.into(), source })?;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| db_err(sea_orm::DbErr::Custom(e.to_string())))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if durable { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .disable_statement_logging();
        // No ping before each use: a SQLite connection is a file handle
        // that cannot hang up, and the ping is a round trip to the
        // connection's worker thread, as dear as a statement. (sqlx pings
        // again when a connection is returned; that one cannot be turned
        // off.)
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| db_err(sea_orm::DbErr::Custom(e.to_string())))?;
        Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
    } else {
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(u32::try_from(pool.unwrap_or_else(cores)).unwrap_or(u32::MAX))
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false)
            .map_sqlx_postgres_opts(move |o| o.options([("synchronous_commit", if durable { "on" } else { "off" })]));
        Database::connect(options).await.map_err(db_err)
    }
}

/// The machine's cores, at least 2: the default Postgres pool.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get).max(2)
}

/// Counts every statement run on `db` in `db_statements_total{db}`, so
/// that `chorus bench` can say what a checkout costs each database. (The
/// transaction's `BEGIN` and `COMMIT` are not statements sea-orm meters.)
pub fn count_statements(db: &mut DatabaseConnection, name: &'static str) {
    db.set_metric_callback(move |_| metrics::counter!("db_statements_total", "db" => name).increment(1));
}

/// Runs `M`'s migrations, one process at a time. Replicas starting together
/// on one Postgres database would otherwise race on `CREATE TABLE IF NOT
/// EXISTS` (a duplicate key in `pg_type`); an advisory lock held by the
/// migrating transaction makes the others wait, then find nothing to do.
pub async fn migrate<M: sea_orm_migration::MigratorTrait>(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        // SQLite has no advisory lock: two processes migrating one file
        // (two orchestrator replicas starting together) race on the
        // migrations table, and the loser gets a unique violation. Its
        // retry finds the work done (found by `chorus chaos`).
        let mut attempt = 0u64;
        loop {
            match M::up(db, None).await {
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "migration raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                other => return other,
            }
        }
    }
    let key = lock_key(&M::migration_table_name().to_string());
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({key})")).await?;
    M::up(&txn, None).await?;
    txn.commit().await
}

/// A stable 64-bit key for a name (FNV-1a), for advisory locks.
fn lock_key(name: &str) -> i64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The directory of a `sqlite://path/file.db?…` URL, if it has one.
fn sqlite_dir(url: &str) -> Option<String> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let dir = std::path::Path::new(path).parent()?;
    (!dir.as_os_str().is_empty()).then(|| dir.display().to_string())
}

/// The URL without its password, for error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }

    #[test]
    fn sqlite_directories_are_found() {
        assert_eq!(sqlite_dir("sqlite://./data/x.db?mode=rwc").as_deref(), Some("./data"));
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_dir("sqlite://x.db"), None);
    }
}
