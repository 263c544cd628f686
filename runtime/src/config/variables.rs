//! Every variable Chorus reads, written once: its name, its default and its
//! meaning. [`Config::from_vars`](super::Config::from_vars) takes defaults
//! from here, and the README's configuration table is [`markdown_table`]
//! (a test holds the two equal).

/// What a variable is when it is unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// This value, parsed like a set one.
    Value(&'static str),
    /// No value; what that means.
    Unset(&'static str),
}

/// One variable Chorus reads.
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    pub name: &'static str,
    pub default: Fallback,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: Fallback, meaning: &'static str) -> Variable {
    Variable { name, default, meaning }
}

use Fallback::{Unset, Value};

pub const VARIABLES: &[Variable] = &[
    var(
        "NATS_URL",
        Unset("unset: `chorus up` starts nats-server (other roles: `nats://127.0.0.1:4222`)"),
        "NATS server to use, or a comma-separated list of a cluster's servers (`nats://user:password@host:4222` for credentials)",
    ),
    var("CHORUS_DATA_DIR", Value("./data"), "SQLite files and the embedded NATS store"),
    var("CATALOGUE_DATABASE_URL", Unset("SQLite under `CHORUS_DATA_DIR`"), "catalogue database (`postgres://…` switches to Postgres)"),
    var("INVENTORY_DATABASE_URL", Unset("SQLite under `CHORUS_DATA_DIR`"), "inventory database"),
    var("ORDERS_DATABASE_URL", Unset("SQLite under `CHORUS_DATA_DIR`"), "orders database"),
    var("ORCHESTRATOR_DATABASE_URL", Unset("SQLite under `CHORUS_DATA_DIR`"), "orchestrator database"),
    var("AUDIT_DATABASE_URL", Unset("SQLite under `CHORUS_DATA_DIR`"), "audit trail database"),
    var("GATEWAY_ADDR", Value("127.0.0.1:8080"), "where the gateway listens"),
    var("CHORUS_METRICS_ADDR", Unset("unset"), "where a role other than the gateway serves `/metrics`"),
    var("CHORUS_JWT_SECRET", Unset("unset: no auth, loopback only"), "HS256 secret for bearer tokens"),
    var("CHORUS_JWT_LEEWAY", Value("5s"), "clock skew allowed on a token's `exp` and `nbf`"),
    var(
        "CHORUS_HTTP_READ_TIMEOUT",
        Value("10s"),
        "how long the gateway waits for a request's headers, and for its body (then the connection is closed)",
    ),
    var(
        "CHORUS_WS_INIT_TIMEOUT",
        Value("10s"),
        "how long a WebSocket may take to send `connection_init` (then it is closed with 4408)",
    ),
    var(
        "CHORUS_WS_PING_INTERVAL",
        Value("15s"),
        "how often the gateway pings a WebSocket; one that answers nothing for two intervals is closed (1001)",
    ),
    var("CHORUS_MAX_CONNECTIONS", Value("10000"), "open connections the gateway holds at once (beyond: 503 and closed)"),
    var("CHORUS_MAX_CONNECTIONS_PER_IP", Value("512"), "open connections from one IP address (beyond: 503 and closed)"),
    var("CHORUS_MAX_RESPONSE_BYTES", Value("1048576"), "largest GraphQL response over HTTP (beyond: `BAD_USER_INPUT`)"),
    var(
        "CHORUS_RATE_LIMIT",
        Unset("unset: no limit"),
        "operations per client: `100/s`, `600/min` or `10000/h`, per token `sub` (per IP address without a token); beyond: `RATE_LIMITED`, HTTP 429 with `Retry-After`",
    ),
    var(
        "CHORUS_CORS_ORIGINS",
        Unset("unset: no CORS"),
        "origins browsers may call the gateway from: `*` or `https://a.example,https://b.example`",
    ),
    var("CHORUS_LOG_FORMAT", Unset("`json` when stderr is not a terminal, else `pretty`"), "log format: `json` or `pretty`"),
    var("CHORUS_STREAM_REPLICAS", Value("1"), "replicas of the JetStream streams, 1 to 5 (3 on a cluster)"),
    var("CHORUS_STALL_DEADLINE", Value("30s"), "how long a choreographed checkout may wait between two events"),
    var("CHORUS_SERVICE_TIMEOUT", Value("2s"), "timeout of one call to a service"),
    var("CHORUS_STEP_ATTEMPTS", Value("3"), "attempts of one saga step's call before the step fails (1 to 100)"),
    var("CHORUS_STEP_BACKOFF", Value("100ms"), "first retry delay of a saga step (doubled each attempt, with jitter)"),
    var("CHORUS_SAGA_LEASE", Value("10s"), "how long an orchestrator replica's claim on a saga lasts without renewal"),
    var("CHORUS_ACK_WAIT", Value("10s"), "how long a worker may hold an event unacked before it is redelivered to another"),
    var("CHORUS_FAULTS", Unset("none"), "faults at start: `orders.create=error:1.0,inventory.reserve=timeout:0.2`"),
    var("CHORUS_FAULT_INJECTION", Value("0"), "`1` lets admins change faults at run time (`setFault`)"),
    var("CHORUS_METRICS", Value("1"), "`0` records no metrics (`/metrics` is empty): only to measure what they cost"),
    var(
        "CHORUS_DURABLE",
        Value("0"),
        "`1` fsyncs every commit: SQLite `synchronous=FULL` (else `NORMAL`, WAL), Postgres `synchronous_commit=on` (else `off`), and the nats-server `chorus up` starts syncs every JetStream write (`sync_interval: always`; else every 2 min); `chorus bench --durable` measures what it costs",
    ),
    var(
        "CHORUS_DB_POOL",
        Unset("the machine's cores, at least 2"),
        "connections to each Postgres database a process opens (SQLite always takes one): more than the cores only queue the backends for them",
    ),
    var("CHORUS_NATS_SERVER", Value("nats-server"), "the nats-server binary `chorus up` starts"),
    var("RUST_LOG", Unset("`info`"), "log filter (tracing-subscriber syntax)"),
    var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        Unset("unset: no export"),
        "export spans over OTLP/HTTP to this collector (e.g. `http://jaeger:4318`); the other standard `OTEL_*` variables apply",
    ),
];

/// The value `name` has when it is unset, if it has one.
pub(super) fn default_value(name: &str) -> Option<&'static str> {
    VARIABLES.iter().find(|v| v.name == name).and_then(|v| match v.default {
        Value(value) => Some(value),
        Unset(_) => None,
    })
}

/// The README's configuration table.
pub fn markdown_table() -> String {
    let mut table = String::from("| variable | default | meaning |\n| --- | --- | --- |\n");
    for v in VARIABLES {
        let default = match v.default {
            Value(value) => format!("`{value}`"),
            Unset(meaning) => meaning.to_owned(),
        };
        table.push_str(&format!("| `{}` | {default} | {} |\n", v.name, v.meaning));
    }
    table
}
