//! The real binary: `chorus up` starts, restarts on its store, never leaves
//! its nats-server behind (even when SIGKILLed), runs as separate processes,
//! and refuses a bad configuration.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use chorus_runtime::nats_server::free_port;
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestNats, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_chorus");

/// A `chorus` process with its stdout lines collected.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

pub fn chorus(args: &[&str], env: &[(&str, String)]) -> Proc {
    let mut command = Command::new(BIN);
    // Each process logs to a file of its own, kept for a failed test's post-mortem.
    let log_dir = std::env::temp_dir().join("chorus-test-logs");
    let _ = std::fs::create_dir_all(&log_dir);
    let log = std::fs::File::create(log_dir.join(format!("{}-{}.log", args.join("-"), Uuid::new_v4().simple())))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    command.args(args).stdout(Stdio::piped()).stderr(log);
    for (key, _) in std::env::vars() {
        if key.starts_with("CHORUS_") || key.ends_with("_DATABASE_URL") || key == "NATS_URL" || key == "GATEWAY_ADDR" {
            command.env_remove(key);
        }
    }
    command.env("CHORUS_LOG_FORMAT", "json");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("chorus starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Proc { child, lines: rx, seen: Vec::new() }
}

impl Proc {
    /// The value after `prefix` on the first stdout line that has it.
    fn line_value(&mut self, prefix: &str) -> Option<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.iter().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.child.id().to_string()]).status();
        assert!(status.map(|s| s.success()).unwrap_or(false), "kill -s {signal}");
    }

    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "chorus did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Child pids of `pid` (Linux `/proc`).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Whether a process is alive (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

pub async fn healthy(http: &reqwest::Client, addr: &str) -> bool {
    matches!(http.get(format!("http://{addr}/health")).send().await, Ok(r) if r.status() == 200)
}

pub async fn gql(http: &reqwest::Client, addr: &str, query: &str) -> Value {
    http.post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json")
}

fn up(data_dir: &Path, addr: &str) -> Proc {
    chorus(&["up"], &[("CHORUS_DATA_DIR", data_dir.display().to_string()), ("GATEWAY_ADDR", addr.to_owned())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chorus_up_keeps_its_state_and_never_leaves_nats_behind() {
    let data = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port().expect("port"));
    let http = reqwest::Client::new();

    let mut first = up(data.path(), &addr);
    assert!(eventually(Duration::from_secs(60), || healthy(&http, &addr)).await, "chorus up never became healthy");
    let printed = eventually(Duration::from_secs(10), || {
        let found = first.line_value("GraphiQL:").is_some_and(|v| v == format!("http://{addr}/"));
        async move { found }
    })
    .await;
    assert!(printed, "{:?}", first.seen);
    // A first start says what it does before the addresses.
    for step in ["Starting Chorus (first start: creating", "nats-server started with JetStream", "services migrated and serving", "seeded 5 demo products"] {
        assert!(first.seen.iter().any(|l| l.contains(step)), "no `{step}` in {:?}", first.seen);
    }
    let products = gql(&http, &addr, "{ products { id name stock } }").await;
    let espresso = products["data"]["products"][0].clone();
    assert_eq!(espresso["name"], "Espresso beans 1 kg", "{products}");
    let restock = format!("mutation {{ restock(productId: \"{}\", quantity: 7) {{ stock }} }}", espresso["id"].as_str().expect("id"));
    assert_eq!(gql(&http, &addr, &restock).await["data"]["restock"]["stock"], 107);

    let nats_pids: Vec<u32> = children(first.child.id());
    assert_eq!(nats_pids.len(), 1, "expected one nats-server child, got {nats_pids:?}");
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    let nats_pid = nats_pids[0];
    assert!(
        eventually(Duration::from_secs(15), || async move { !alive(nats_pid) }).await,
        "nats-server {nats_pid} outlived a SIGKILLed chorus up"
    );

    // The next start reuses the store: the same products, the restock kept, no second seed.
    let mut second = up(data.path(), &addr);
    assert!(eventually(Duration::from_secs(60), || healthy(&http, &addr)).await, "restart never became healthy");
    let products = gql(&http, &addr, "{ products { name stock } }").await;
    assert_eq!(products["data"]["products"].as_array().map(Vec::len), Some(chorus::seed::DEMO_PRODUCTS.len()));
    assert_eq!(products["data"]["products"][0]["stock"], 107, "{products}");

    // NATS: the services answer $SRV.PING and the stream is as DESIGN §2 says.
    let nats_url = second.line_value("NATS:").expect("NATS URL printed");
    assert!(second.seen.iter().any(|l| l.starts_with("Starting Chorus (data in")), "{:?}", second.seen);
    assert!(!second.seen.iter().any(|l| l.contains("seeded")), "seeded twice: {:?}", second.seen);
    let client = async_nats::connect(&nats_url).await.expect("connect");
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.expect("subscribe");
    client.publish_with_reply("$SRV.PING", inbox, "".into()).await.expect("ping");
    let mut names = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), replies.next()).await {
        let v: Value = serde_json::from_slice(&msg.payload).expect("ping reply");
        names.push(v["name"].as_str().unwrap_or_default().to_owned());
    }
    names.sort();
    assert_eq!(names, ["catalogue", "inventory", "orchestrator", "orders"]);
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream("CHECKOUT_EVENTS").await.expect("stream exists");
    let config = &stream.cached_info().config;
    assert_eq!(config.subjects, ["ecommerce.checkout.>"]);
    assert_eq!(config.max_age, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(config.storage, async_nats::jetstream::stream::StorageType::File);
    assert!(config.duplicate_window >= Duration::from_secs(120));
    drop(client);

    // SIGTERM: a clean exit, and the server goes with it.
    let nats_pid = children(second.child.id())[0];
    second.signal("TERM");
    assert!(second.wait_exit(Duration::from_secs(30)).success());
    assert!(eventually(Duration::from_secs(10), || async move { !alive(nats_pid) }).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_part_runs_as_its_own_process() {
    let nats = TestNats::start();
    let data = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port().expect("port"));
    let env = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut env = vec![("NATS_URL", nats.url()), ("CHORUS_DATA_DIR", data.path().display().to_string())];
        env.extend(extra.iter().cloned());
        env
    };
    let mut procs = [
        chorus(&["service", "catalogue"], &env(&[])),
        chorus(&["service", "inventory"], &env(&[])),
        chorus(&["service", "orders"], &env(&[])),
        chorus(&["service", "orchestrator"], &env(&[])),
        chorus(&["gateway"], &env(&[("GATEWAY_ADDR", addr.clone())])),
    ];
    let http = reqwest::Client::new();
    assert!(eventually(Duration::from_secs(60), || healthy(&http, &addr)).await, "separate processes never became healthy");
    let created = gql(&http, &addr, "mutation { createProduct(name: \"Apart\", priceCents: 100, stock: 3) { name stock } }").await;
    assert_eq!(created["data"]["createProduct"], json!({ "name": "Apart", "stock": 3 }), "{created}");

    // Without inventory the gateway is not healthy, and says which part is missing.
    procs[1].signal("TERM");
    assert!(procs[1].wait_exit(Duration::from_secs(30)).success());
    let health = http.get(format!("http://{addr}/health")).send().await.expect("health");
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.expect("json");
    assert_eq!(body["services"]["inventory"], "unavailable", "{body}");

    for (i, p) in procs.iter_mut().enumerate() {
        if i != 1 {
            p.signal("TERM");
            assert!(p.wait_exit(Duration::from_secs(30)).success(), "process {i} did not stop cleanly");
        }
    }
}

#[test]
fn a_bad_configuration_is_refused_with_the_variable_named() {
    for (var, value) in [("CHORUS_LOG_FORMAT", "xml"), ("CHORUS_STALL_DEADLINE", "soon"), ("CHORUS_TYPO", "1")] {
        let output = Command::new(BIN)
            .arg("up")
            .env(var, value)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

#[test]
fn unreachable_nats_is_a_clear_error() {
    let port = free_port().expect("port");
    let output = Command::new(BIN)
        .arg("gateway")
        .env("NATS_URL", format!("nats://127.0.0.1:{port}"))
        .env("GATEWAY_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NATS is unreachable"), "{stderr}");
}

#[test]
fn an_old_nats_server_is_refused_with_how_to_get_a_current_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Debian's 2.9, as far as `--version` tells.
    let old = dir.path().join("nats-server");
    std::fs::write(&old, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").expect("script");
    let mut permissions = std::fs::metadata(&old).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&old, permissions).expect("chmod");
    let output = Command::new(BIN)
        .args(["up", "--no-seed"])
        .env_remove("NATS_URL")
        .env("CHORUS_NATS_SERVER", &old)
        .env("CHORUS_DATA_DIR", dir.path().join("data"))
        .env("GATEWAY_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("2.9") && stderr.contains("2.11") && stderr.contains("scripts/install-nats.sh"), "{stderr}");
}

#[test]
fn a_cluster_url_list_is_accepted_and_a_bad_one_named() {
    let port = free_port().expect("port");
    let output = Command::new(BIN)
        .arg("gateway")
        .env("NATS_URL", format!("nats://127.0.0.1:{port},nats://u:secret@127.0.0.1:{port}"))
        .env("GATEWAY_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A list parses: what fails is reaching it, and no password is printed.
    assert!(stderr.contains("NATS is unreachable") && !stderr.contains("secret"), "{stderr}");

    let output = Command::new(BIN)
        .arg("gateway")
        .env("NATS_URL", "nats://a:4222,nats://b:notaport")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NATS_URL") && stderr.contains("nats://b:notaport"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_gateway_refuses_to_listen_beyond_loopback() {
    let nats = TestNats::start();
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("port");
    let env = |secret: Option<&str>| {
        let mut env = vec![
            ("NATS_URL", nats.url()),
            ("CHORUS_DATA_DIR", data.path().display().to_string()),
            ("GATEWAY_ADDR", format!("0.0.0.0:{port}")),
        ];
        if let Some(secret) = secret {
            env.push(("CHORUS_JWT_SECRET", secret.to_owned()));
        }
        env
    };
    let mut open = chorus(&["gateway"], &env(None));
    let status = open.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "an open gateway must not listen on 0.0.0.0");
    // With a secret it serves there, and asks for a token.
    let _guarded = chorus(&["gateway"], &env(Some("s3cret")));
    let http = reqwest::Client::new();
    let addr = format!("127.0.0.1:{port}");
    let answered = eventually(Duration::from_secs(30), || async {
        let Ok(response) = http.post(format!("http://{addr}/graphql")).json(&json!({ "query": "{ products { id } }" })).send().await else {
            return false;
        };
        response.json::<Value>().await.is_ok_and(|body| body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED")
    })
    .await;
    assert!(answered, "the guarded gateway never answered UNAUTHENTICATED");
}
