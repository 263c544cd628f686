//! Test support: isolated NATS, per-test databases on SQLite or Postgres,
//! the platform started in-process on a free port, and a GraphQL client.
//!
//! Every test gets its own `nats-server` (free port, temp store) and its
//! own databases, so tests never share state. Postgres databases are made
//! from `CHORUS_TEST_POSTGRES_URL` (default: the local server as `postgres`)
//! and dropped afterwards. Without a reachable Postgres the Postgres half of
//! a test fails, unless `CHORUS_TEST_SKIP_POSTGRES=1` says to skip it, which
//! is then printed loudly.

#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use chorus::platform::{Options, Platform, Role};
use chorus_runtime::{Config, nats_server::NatsServer};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a scenario once on SQLite and once on Postgres, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::support::skip_postgres() {
                        return;
                    }
                    super::$name($crate::support::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// Whether the Postgres half is to be skipped (and says so loudly).
pub fn skip_postgres() -> bool {
    if std::env::var("CHORUS_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
        eprintln!("\n*** SKIPPED on Postgres: CHORUS_TEST_SKIP_POSTGRES=1 ***\n");
        return true;
    }
    false
}

pub fn admin_url() -> String {
    std::env::var("CHORUS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A NATS server of the test's own.
pub struct TestNats {
    pub server: NatsServer,
    _dir: TempDir,
}

impl TestNats {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = NatsServer::start("nats-server", &dir.path().join("nats")).expect("nats-server starts");
        TestNats { server, _dir: dir }
    }
    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// The databases of one test: SQLite files in a temp dir, or fresh
/// Postgres databases dropped at the end.
pub struct TestDatabases {
    pub backend: Backend,
    pub urls: Vec<(&'static str, String)>,
    postgres_names: Vec<String>,
}

impl TestDatabases {
    pub async fn create(backend: Backend, data_dir: &std::path::Path) -> Self {
        let services = ["CATALOGUE", "INVENTORY", "ORDERS", "ORCHESTRATOR", "AUDIT"];
        match backend {
            Backend::Sqlite => TestDatabases {
                backend,
                urls: services
                    .iter()
                    .map(|s| {
                        let path = data_dir.join(format!("{}.db", s.to_lowercase()));
                        (*s, format!("sqlite://{}?mode=rwc", path.display()))
                    })
                    .collect(),
                postgres_names: Vec::new(),
            },
            Backend::Postgres => {
                let admin = admin_url();
                let conn = Database::connect(admin.as_str()).await.unwrap_or_else(|e| {
                    panic!(
                        "Postgres is not reachable at {admin} ({e}). Start it, point CHORUS_TEST_POSTGRES_URL \
                         at one, or set CHORUS_TEST_SKIP_POSTGRES=1 to skip the Postgres half"
                    )
                });
                let tag = Uuid::new_v4().simple().to_string();
                let mut urls = Vec::new();
                let mut names = Vec::new();
                for s in services {
                    let name = format!("chorus_t_{}_{}", &tag[..12], s.to_lowercase());
                    conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create database");
                    urls.push((s, replace_db(&admin, &name)));
                    names.push(name);
                }
                TestDatabases { backend, urls, postgres_names: names }
            }
        }
    }

    /// `<SERVICE>_DATABASE_URL` for each database, ready for a process's env.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        self.urls
            .iter()
            .map(|(service, url)| {
                let var = match *service {
                    "CATALOGUE" => "CATALOGUE_DATABASE_URL",
                    "INVENTORY" => "INVENTORY_DATABASE_URL",
                    "ORDERS" => "ORDERS_DATABASE_URL",
                    "ORCHESTRATOR" => "ORCHESTRATOR_DATABASE_URL",
                    _ => "AUDIT_DATABASE_URL",
                };
                (var, url.clone())
            })
            .collect()
    }
}

impl Drop for TestDatabases {
    fn drop(&mut self) {
        if self.postgres_names.is_empty() {
            return;
        }
        let names = std::mem::take(&mut self.postgres_names);
        // Drop runs outside any runtime guarantee: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(conn) = Database::connect(admin_url().as_str()).await {
                    for name in names {
                        let _ = conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    }
                }
            });
        })
        .join();
    }
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("admin URL ends with a database name");
    format!("{base}/{db}")
}

/// Starts every part in-process against `nats_url` (one server or a
/// cluster's list), on `dbs`, the gateway on a free port.
pub async fn launch(
    nats_url: &str,
    dbs: &TestDatabases,
    data_dir: &std::path::Path,
    extra: &[(&str, &str)],
    seed_demo: bool,
    except_workers: &'static [chorus_workers::WorkerName],
) -> Platform {
    let mut vars: Vec<(String, String)> = dbs.vars().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    vars.push(("NATS_URL".into(), nats_url.to_owned()));
    vars.push(("CHORUS_DATA_DIR".into(), data_dir.display().to_string()));
    vars.push(("GATEWAY_ADDR".into(), "127.0.0.1:0".into()));
    vars.push(("CHORUS_SERVICE_TIMEOUT".into(), "1s".into()));
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_vars(vars).expect("valid test config");
    Platform::start(&config, Options { role: Role::All, seed_demo, except_workers, say_steps: false }).await.expect("platform starts")
}

/// The platform, started in-process on a free port, with its own NATS and
/// databases.
pub struct TestApp {
    pub platform: Option<Platform>,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub nats: TestNats,
    pub dbs: TestDatabases,
    pub data_dir: TempDir,
}

impl TestApp {
    /// Starts everything on `backend`, with the demo products.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[], true).await
    }

    /// Starts with extra configuration variables.
    pub async fn start_with(backend: Backend, extra: &[(&str, &str)], seed_demo: bool) -> Self {
        Self::start_without(backend, extra, seed_demo, &[]).await
    }

    /// Starts every part except the workers named.
    pub async fn start_without(
        backend: Backend,
        extra: &[(&str, &str)],
        seed_demo: bool,
        except_workers: &'static [chorus_workers::WorkerName],
    ) -> Self {
        let nats = TestNats::start();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let dbs = TestDatabases::create(backend, data_dir.path()).await;
        let platform = launch(&nats.url(), &dbs, data_dir.path(), extra, seed_demo, except_workers).await;
        let addr = platform.gateway_addr.expect("gateway runs");
        TestApp { platform: Some(platform), addr, http: reqwest::Client::new(), nats, dbs, data_dir }
    }

    /// Stops the platform and starts it again on the same NATS and databases.
    pub async fn restart(&mut self, extra: &[(&str, &str)]) {
        if let Some(platform) = self.platform.take() {
            platform.stop().await;
        }
        let platform = launch(&self.nats.url(), &self.dbs, self.data_dir.path(), extra, false, &[]).await;
        self.addr = platform.gateway_addr.expect("gateway runs");
        self.platform = Some(platform);
    }

    pub fn platform(&self) -> &Platform {
        self.platform.as_ref().expect("running")
    }

    /// POSTs a GraphQL operation and returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.http
            .post(format!("http://{}/graphql", self.addr))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("gateway answers")
            .json()
            .await
            .expect("JSON body")
    }

    /// POSTs a GraphQL operation with `Authorization: Bearer <token>`.
    pub async fn gql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self.http.post(format!("http://{}/graphql", self.addr));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("gateway answers")
            .json()
            .await
            .expect("JSON body")
    }

    /// The data of a response that must have no error.
    pub async fn gql_ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn products(&self) -> Value {
        self.gql_ok("{ products { id name priceCents active stock reserved } }", json!({})).await["products"]
            .clone()
    }

    pub async fn create_product(&self, name: &str, price_cents: i64, stock: i64) -> Uuid {
        let data = self
            .gql_ok(
                "mutation($n: String!, $p: Int!, $s: Int!) { createProduct(name: $n, priceCents: $p, stock: $s) { id } }",
                json!({ "n": name, "p": price_cents, "s": stock }),
            )
            .await;
        Uuid::parse_str(data["createProduct"]["id"].as_str().expect("id")).expect("uuid")
    }

    /// `db_statements_total{db}` as the gateway's `/metrics` says now.
    pub async fn statements(&self, db: &str) -> f64 {
        let url = format!("http://{}/metrics", self.addr);
        let text = self.http.get(url).send().await.expect("metrics").text().await.expect("text");
        let series = format!("db_statements_total{{db=\"{db}\"}}");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
    }

    pub async fn stop(mut self) {
        if let Some(platform) = self.platform.take() {
            platform.stop().await;
        }
    }
}

/// The `extensions.code` of a response's first error.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// Waits until the gateway holds at least `n` live subscriptions (its
/// `gateway_subscriptions` gauge, set once a subscription is registered
/// and receives what is published), rather than sleeping on the chance.
pub async fn subscribed(app: &TestApp, n: u64) {
    let registered = eventually(Duration::from_secs(30), || async {
        let Ok(response) = app.http.get(format!("http://{}/metrics", app.addr)).send().await else {
            return false;
        };
        let text = response.text().await.unwrap_or_default();
        let held = text.lines().find_map(|l| l.strip_prefix("gateway_subscriptions ")).and_then(|v| v.trim().parse::<f64>().ok());
        held.is_some_and(|held| held >= n as f64)
    })
    .await;
    assert!(registered, "the gateway never held {n} subscriptions");
}

/// Polls `check` until it holds, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Runs `node <script> <args>`: a script of the project's (Playwright, the
/// GraphQL over HTTP audit) against the real gateway. Killed after `limit`.
pub async fn node(script: &std::path::Path, args: &[String], env: &[(&str, std::ffi::OsString)], limit: Duration) -> std::process::Output {
    let mut command = tokio::process::Command::new("node");
    command.arg(script).args(args).envs(env.iter().map(|(k, v)| (k, v)));
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (is Node.js installed?): {e}"));
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {limit:?} (killed)", script.display()))
        .unwrap_or_else(|e| panic!("{} runs: {e}", script.display()))
}
