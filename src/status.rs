//! `chorus status`: the gateway's `platform` query (admin), as a table on a
//! terminal or as JSON. It exits with 1 when the platform reports a problem
//! (a service no replica answers for, a consumer no worker pulls from, a
//! saga that stopped moving), so a script can act on it.

use std::{io::Write, process::ExitCode};

use serde_json::{Value, json};

use crate::{ChorusError, client::Api};

const QUERY: &str = "{ platform {
    natsVersion
    stream { name messages bytes firstSequence lastSequence }
    services { name replicas }
    consumers { durable pending ackPending redelivered waiting }
    sagas { stalled oldestStalledSince outboxPending }
    problems
} }";

/// What `chorus status` was asked.
#[derive(Clone, Debug, clap::Args)]
pub struct StatusArgs {
    /// The gateway to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An admin's bearer token, for a gateway with auth.
    #[arg(long)]
    pub token: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs) -> Result<ExitCode, ChorusError> {
    let api = Api::new(&args.url, args.token.clone())?;
    let data = api
        .gql(QUERY, json!({}))
        .await
        .map_err(|e| ChorusError::Usage(format!("{}: {} ({})", args.url, e.message, e.code)))?;
    let platform = &data["platform"];
    let mut out = std::io::stdout().lock();
    let text = if args.json { format!("{:#}\n", platform) } else { table(platform) };
    out.write_all(text.as_bytes()).map_err(ChorusError::Output)?;
    let healthy = platform["problems"].as_array().is_some_and(Vec::is_empty);
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn table(p: &Value) -> String {
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let s = &p["stream"];
    let mut out = format!(
        "NATS {} · stream {}: {} events, {:.1} MB, sequences {}..{}\n\n",
        p["natsVersion"].as_str().unwrap_or("?"),
        s["name"].as_str().unwrap_or("?"),
        n(&s["messages"]),
        n(&s["bytes"]) as f64 / 1e6,
        n(&s["firstSequence"]),
        n(&s["lastSequence"]),
    );
    out.push_str(&format!("{:<16} {:>8}\n", "service", "replicas"));
    for service in p["services"].as_array().into_iter().flatten() {
        out.push_str(&format!("{:<16} {:>8}\n", service["name"].as_str().unwrap_or("?"), n(&service["replicas"])));
    }
    out.push_str(&format!("\n{:<22} {:>8} {:>12} {:>12} {:>8}\n", "consumer", "pending", "ack pending", "redelivered", "waiting"));
    for c in p["consumers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<22} {:>8} {:>12} {:>12} {:>8}\n",
            c["durable"].as_str().unwrap_or("?"),
            n(&c["pending"]),
            n(&c["ackPending"]),
            n(&c["redelivered"]),
            n(&c["waiting"]),
        ));
    }
    let sagas = &p["sagas"];
    out.push_str(&format!("\nsagas stalled: {}", n(&sagas["stalled"])));
    if let Some(since) = sagas["oldestStalledSince"].as_str() {
        out.push_str(&format!(" (oldest since {since})"));
    }
    out.push_str(&format!(" · outbox: {} event(s) waiting\n", n(&sagas["outboxPending"])));
    match p["problems"].as_array().filter(|a| !a.is_empty()) {
        None => out.push_str("\nno problem found\n"),
        Some(problems) => {
            out.push_str("\nproblems:\n");
            for problem in problems {
                out.push_str(&format!("  - {}\n", problem.as_str().unwrap_or("?")));
            }
        }
    }
    out
}
