//! The one typed configuration of a Chorus process (DESIGN §6).
//!
//! It is read once at start from environment variables, each with a default.
//! A value that does not parse, or a `CHORUS_*` variable that Chorus does not
//! know (a typo would otherwise be silently ignored), stops the process with
//! a message naming the variable. `CHORUS_TEST_*` is left to test harnesses.

use std::{
    collections::BTreeMap,
    fmt,
    io::IsTerminal,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

mod faults;
mod variables;

pub use faults::{FAULT_TARGETS, FaultMode, FaultSpec};
pub use variables::{Fallback, VARIABLES, Variable, markdown_table};

/// A Chorus configuration; build it with [`Config::from_env`] or, in tests,
/// [`Config::from_vars`].
#[derive(Clone, Debug)]
pub struct Config {
    /// The NATS server; `None` means `chorus up` starts its own.
    pub nats_url: Option<String>,
    /// Root of the embedded state: one SQLite file per service, and the
    /// store of a NATS server started by `chorus up`.
    pub data_dir: PathBuf,
    /// Per-service database URLs; a service without one uses SQLite.
    pub database_urls: BTreeMap<ServiceDb, String>,
    pub gateway_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub jwt_secret: Option<Secret>,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub stream_replicas: usize,
    pub stall_deadline: Duration,
    pub service_timeout: Duration,
    pub step_attempts: u32,
    pub step_backoff: Duration,
    pub saga_lease: Duration,
    pub ack_wait: Duration,
    /// Clock skew allowed on a token's `exp` and `nbf`.
    pub jwt_leeway: Duration,
    /// How long a WebSocket may take to send `connection_init`.
    pub ws_init_timeout: Duration,
    /// How long the gateway waits for a request's headers, and its body.
    pub http_read_timeout: Duration,
    /// How often the gateway pings a WebSocket.
    pub ws_ping_interval: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_response_bytes: usize,
    /// Operations per client (`CHORUS_RATE_LIMIT`); `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    pub faults: Vec<FaultSpec>,
    pub fault_injection: bool,
    /// Whether metrics are recorded (`CHORUS_METRICS`).
    pub metrics: bool,
    /// Whether every commit is fsynced (`CHORUS_DURABLE`).
    pub durable: bool,
    /// Connections per Postgres database (`CHORUS_DB_POOL`); `None`: as
    /// many as the machine has cores, at least 2.
    pub db_pool: Option<usize>,
    pub nats_server_bin: String,
}

/// The databases Chorus owns, one per service that keeps state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServiceDb {
    Catalogue,
    Inventory,
    Orders,
    Orchestrator,
    Audit,
}

impl ServiceDb {
    pub const ALL: [ServiceDb; 5] = [
        ServiceDb::Catalogue,
        ServiceDb::Inventory,
        ServiceDb::Orders,
        ServiceDb::Orchestrator,
        ServiceDb::Audit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceDb::Catalogue => "catalogue",
            ServiceDb::Inventory => "inventory",
            ServiceDb::Orders => "orders",
            ServiceDb::Orchestrator => "orchestrator",
            ServiceDb::Audit => "audit",
        }
    }

    pub fn env_var(self) -> &'static str {
        match self {
            ServiceDb::Catalogue => "CATALOGUE_DATABASE_URL",
            ServiceDb::Inventory => "INVENTORY_DATABASE_URL",
            ServiceDb::Orders => "ORDERS_DATABASE_URL",
            ServiceDb::Orchestrator => "ORCHESTRATOR_DATABASE_URL",
            ServiceDb::Audit => "AUDIT_DATABASE_URL",
        }
    }
}

/// `CHORUS_RATE_LIMIT`: at most `count` operations per `per`, as `100/s`,
/// `600/min` or `10000/h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub count: std::num::NonZeroU32,
    pub per: Duration,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || format!("expected a count per unit like 100/s, 600/min or 10000/h, not `{s}`");
        let (count, unit) = s.split_once('/').ok_or_else(expected)?;
        let count = count.trim().parse().map_err(|_| expected())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(expected()),
        };
        Ok(RateLimit { count, per })
    }
}

/// A value that must never reach a log line.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A variable whose value Chorus cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds a configuration from `(name, value)` pairs, as the environment
    /// would give them; unknown `CHORUS_*` names are refused.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> =
            vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        for (name, value) in &vars {
            let known = VARIABLES.iter().any(|v| v.name == name);
            if name.starts_with("CHORUS_") && !name.starts_with("CHORUS_TEST_") && !known {
                let names: Vec<&str> = VARIABLES.iter().map(|v| v.name).filter(|n| n.starts_with("CHORUS_")).collect();
                return Err(ConfigError {
                    var: name.clone(),
                    value: value.clone(),
                    reason: format!("unknown variable (Chorus reads {})", names.join(", ")),
                });
            }
        }
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        // Set, or else the default the table gives (written only there).
        let value = |name: &str| get(name).or_else(|| variables::default_value(name)).unwrap_or_default();
        let err = |name: &str, reason: String| ConfigError {
            var: name.to_owned(),
            value: vars.get(name).cloned().unwrap_or_default(),
            reason,
        };

        let mut database_urls = BTreeMap::new();
        for db in ServiceDb::ALL {
            if let Some(url) = get(db.env_var()) {
                if !(url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.starts_with("sqlite:"))
                {
                    return Err(err(db.env_var(), "expected a postgres:// or sqlite: URL".into()));
                }
                database_urls.insert(db, url.to_owned());
            }
        }
        let parse_addr = |name: &str| -> Result<SocketAddr, ConfigError> {
            value(name)
                .parse()
                .map_err(|e| err(name, format!("not a socket address like 127.0.0.1:8080 ({e})")))
        };
        let parse_duration = |name: &str| -> Result<Duration, ConfigError> {
            let d = humantime::parse_duration(value(name))
                .map_err(|e| err(name, format!("not a duration like 30s or 2m ({e})")))?;
            if d.is_zero() {
                return Err(err(name, "must be longer than zero".into()));
            }
            Ok(d)
        };
        let parse_count = |name: &str| -> Result<usize, ConfigError> {
            match value(name).parse() {
                Ok(n @ 1..) => Ok(n),
                _ => Err(err(name, "expected a whole number above zero".into())),
            }
        };
        let log_format = match get("CHORUS_LOG_FORMAT") {
            None if std::io::stderr().is_terminal() => LogFormat::Pretty,
            None => LogFormat::Json,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(_) => {
                return Err(err("CHORUS_LOG_FORMAT", "expected `json` or `pretty`".into()));
            }
        };
        let stream_replicas = match value("CHORUS_STREAM_REPLICAS").parse() {
            Ok(n @ 1..=5) => n,
            _ => {
                return Err(err("CHORUS_STREAM_REPLICAS", "expected a number from 1 to 5".into()));
            }
        };
        let faults = match get("CHORUS_FAULTS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(str::parse)
                .collect::<Result<_, String>>()
                .map_err(|reason| err("CHORUS_FAULTS", reason))?,
        };
        let fault_injection = match value("CHORUS_FAULT_INJECTION") {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(err("CHORUS_FAULT_INJECTION", "expected 0 or 1".into())),
        };
        let metrics = match value("CHORUS_METRICS") {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(err("CHORUS_METRICS", "expected 0 or 1".into())),
        };
        let durable = match value("CHORUS_DURABLE") {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(err("CHORUS_DURABLE", "expected 0 or 1".into())),
        };
        if let Some(urls) = get("NATS_URL") {
            crate::nats::server_addrs(urls).map_err(|m| err("NATS_URL", m))?;
        }

        Ok(Config {
            nats_url: get("NATS_URL").map(str::to_owned),
            data_dir: PathBuf::from(value("CHORUS_DATA_DIR")),
            database_urls,
            gateway_addr: parse_addr("GATEWAY_ADDR")?,
            metrics_addr: match get("CHORUS_METRICS_ADDR") {
                None => None,
                Some(_) => Some(parse_addr("CHORUS_METRICS_ADDR")?),
            },
            jwt_secret: get("CHORUS_JWT_SECRET").map(Secret::new),
            cors_origins: get("CHORUS_CORS_ORIGINS")
                .map(|v| v.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            log_format,
            stream_replicas,
            stall_deadline: parse_duration("CHORUS_STALL_DEADLINE")?,
            service_timeout: parse_duration("CHORUS_SERVICE_TIMEOUT")?,
            step_attempts: match value("CHORUS_STEP_ATTEMPTS").parse() {
                Ok(n @ 1..=100) => n,
                _ => {
                    return Err(err("CHORUS_STEP_ATTEMPTS", "expected a number from 1 to 100".into()));
                }
            },
            step_backoff: parse_duration("CHORUS_STEP_BACKOFF")?,
            saga_lease: parse_duration("CHORUS_SAGA_LEASE")?,
            ack_wait: parse_duration("CHORUS_ACK_WAIT")?,
            jwt_leeway: parse_duration("CHORUS_JWT_LEEWAY")?,
            ws_init_timeout: parse_duration("CHORUS_WS_INIT_TIMEOUT")?,
            http_read_timeout: parse_duration("CHORUS_HTTP_READ_TIMEOUT")?,
            ws_ping_interval: parse_duration("CHORUS_WS_PING_INTERVAL")?,
            max_connections: parse_count("CHORUS_MAX_CONNECTIONS")?,
            max_connections_per_ip: parse_count("CHORUS_MAX_CONNECTIONS_PER_IP")?,
            max_response_bytes: parse_count("CHORUS_MAX_RESPONSE_BYTES")?,
            rate_limit: get("CHORUS_RATE_LIMIT").map(str::parse).transpose().map_err(|reason| err("CHORUS_RATE_LIMIT", reason))?,
            faults,
            fault_injection,
            metrics,
            durable,
            db_pool: get("CHORUS_DB_POOL").map(|_| parse_count("CHORUS_DB_POOL")).transpose()?,
            nats_server_bin: value("CHORUS_NATS_SERVER").to_owned(),
        })
    }

    /// How this process opens a service's database.
    #[cfg(feature = "db")]
    pub fn db_options(&self) -> crate::db::Options {
        crate::db::Options { durable: self.durable, pool: self.db_pool }
    }

    /// The database a service uses: its `*_DATABASE_URL`, else a SQLite file
    /// under the data directory.
    pub fn database_url(&self, db: ServiceDb) -> String {
        match self.database_urls.get(&db) {
            Some(url) => url.clone(),
            None => sqlite_url(&self.data_dir.join(format!("{}.db", db.name()))),
        }
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().copied())
    }

    #[test]
    fn defaults_need_no_variable() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.nats_url, None);
        assert_eq!(c.gateway_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.stream_replicas, 1);
        assert_eq!(c.stall_deadline, Duration::from_secs(30));
        assert!(!c.fault_injection);
        assert_eq!(c.database_url(ServiceDb::Orders), "sqlite://./data/orders.db?mode=rwc");
    }

    #[test]
    fn a_database_url_switches_that_service_only() {
        let c = config(&[("INVENTORY_DATABASE_URL", "postgres://u@h/inv")]).expect("valid");
        assert_eq!(c.database_url(ServiceDb::Inventory), "postgres://u@h/inv");
        assert!(c.database_url(ServiceDb::Orders).starts_with("sqlite://"));
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        let cases = [
            ("CHORUS_LOG_FORMAT", "xml", "expected `json` or `pretty`"),
            ("CHORUS_STREAM_REPLICAS", "0", "expected a number from 1 to 5"),
            ("CHORUS_STALL_DEADLINE", "soon", "not a duration"),
            ("GATEWAY_ADDR", "localhost", "not a socket address"),
            ("CHORUS_FAULTS", "orders.create=explode:1", "unknown fault mode `explode`"),
            ("CHORUS_FAULTS", "orders.delete=error:1", "unknown fault target `orders.delete`"),
            ("CHORUS_FAULTS", "orders.create=error:2", "outside 0..=1"),
            ("CHORUS_FAULT_INJECTION", "yes", "expected 0 or 1"),
            ("CHORUS_DURABLE", "always", "expected 0 or 1"),
            ("CHORUS_DB_POOL", "0", "expected a whole number above zero"),
            ("ORDERS_DATABASE_URL", "mysql://x", "postgres:// or sqlite:"),
            ("CHORUS_LOG_FROMAT", "json", "unknown variable"),
            ("CHORUS_RATE_LIMIT", "100", "expected a count per unit"),
            ("CHORUS_RATE_LIMIT", "0/s", "expected a count per unit"),
            ("CHORUS_RATE_LIMIT", "5/day", "expected a count per unit"),
            ("CHORUS_MAX_CONNECTIONS", "0", "above zero"),
            ("CHORUS_MAX_RESPONSE_BYTES", "1MB", "above zero"),
        ];
        for (var, value, reason) in cases {
            let e = config(&[(var, value)]).expect_err(var);
            let text = e.to_string();
            assert!(text.starts_with(&format!("{var}=")), "{text}");
            assert!(text.contains(reason), "{var}={value}: {text}");
        }
    }

    #[test]
    fn a_rate_limit_is_a_count_per_unit() {
        let c = config(&[("CHORUS_RATE_LIMIT", "600/min")]).expect("valid");
        let limit = c.rate_limit.expect("set");
        assert_eq!((limit.count.get(), limit.per), (600, Duration::from_secs(60)));
        assert_eq!(config(&[]).expect("defaults").rate_limit, None);
    }

    #[test]
    fn every_default_the_table_gives_parses() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.step_attempts, 3);
        assert_eq!(c.nats_server_bin, "nats-server");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.max_connections_per_ip, 512);
    }

    #[test]
    fn faults_parse_as_a_list() {
        let c = config(&[("CHORUS_FAULTS", "orders.create=error:1.0, inventory.reserve=timeout:0.2")])
            .expect("valid");
        assert_eq!(
            c.faults,
            vec![
                FaultSpec::new("orders.create", FaultMode::Error, 1.0).expect("valid"),
                FaultSpec::new("inventory.reserve", FaultMode::Timeout, 0.2).expect("valid"),
            ]
        );
    }

    #[test]
    fn test_harness_variables_are_left_alone_and_secrets_do_not_print() {
        let c = config(&[("CHORUS_TEST_POSTGRES_URL", "x"), ("CHORUS_JWT_SECRET", "hunter2")])
            .expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
