//! `chorus bench` from the outside: the reports it writes and the checks in
//! them (never its timings: this machine is too noisy to assert those).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chorus");

fn bench(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .env_remove("NATS_URL")
        .env("CHORUS_DATA_DIR", dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("chorus bench runs")
}

#[test]
fn both_patterns_compensate_a_share_and_conserve_stock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (json, md) = (dir.path().join("report.json"), dir.path().join("report.md"));
    let out = bench(
        &[
            "--pattern", "both", "--checkouts", "24", "--clients", "3", "--items", "2", "--fail-rate", "0.5", "--breakdown",
            "--json", json.to_str().expect("utf-8"), "--markdown", md.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(report["stock_conserved"], true, "{report:#}");
    assert!(report["machine"].as_str().is_some_and(|m| m.contains("cores")), "{report:#}");
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    let runs = report["runs"].as_array().expect("runs");
    let patterns: Vec<&str> = runs.iter().map(|r| r["pattern"].as_str().expect("pattern")).collect();
    assert_eq!(patterns, ["orchestrated", "choreographed"]);
    for run in runs {
        let n = |k: &str| run[k].as_u64().unwrap_or_else(|| panic!("runs[].{k} in {run:#}"));
        assert_eq!(n("checkouts"), 24, "{run:#}");
        assert_eq!(n("errors"), 0, "{run:#}");
        assert_eq!(n("succeeded") + n("failed"), 24, "{run:#}");
        // Every failure here comes from the order step, after stock was
        // reserved: each one compensated. Half of 24 failing none or all
        // would take odds of 1 in 16 million.
        assert_eq!(n("compensated"), n("failed"), "{run:#}");
        assert!(n("failed") > 0 && n("succeeded") > 0, "{run:#}");
        assert_eq!(run["clients"], 3);
        let l = &run["latency_ms"];
        assert!(l["p50"].as_f64().expect("p50") > 0.0 && l["p50"].as_f64() <= l["p95"].as_f64() && l["p95"].as_f64() <= l["max"].as_f64(), "{l}");
        assert!(run["throughput_per_s"].as_f64().expect("throughput") > 0.0);
        assert!(run["stock_freed_ms"]["p50"].as_f64().is_some(), "{run:#}");
    }
    // Per checkout: a choreographed success stores 4 events, a compensated
    // failure 5; an orchestrated success 7 (4 transition events, one per
    // write of the saga log), a failed order 7 too (5 transition events).
    let per = |i: usize| runs[i]["events_per_checkout"].as_f64().expect("events_per_checkout");
    assert!((4.0..=5.0).contains(&per(1)), "choreographed events per checkout {}", per(1));
    assert!((6.9..=7.1).contains(&per(0)), "orchestrated events per checkout {}", per(0));
    // What the bench's own nats-server counted, and by subject: every
    // service call of a checkout is there, and the counts add up.
    for run in runs {
        let nats = &run["nats"];
        let (sent, delivered) = (nats["messages_in"].as_f64().expect("messages_in"), nats["messages_out"].as_f64().expect("messages_out"));
        assert!(sent > 4.0 && delivered > 4.0, "{nats}");
        let subjects = run["by_subject"].as_array().expect("by_subject");
        let names: Vec<&str> = subjects.iter().filter_map(|c| c["subject"].as_str()).collect();
        for call in ["inventory.reserve", "orders.create"] {
            assert!(names.contains(&call), "{} has no {call}: {names:?}", run["pattern"]);
        }
        // Where the CPU went: the platform's threads by kind, and nats-server.
        let split = &run["cpu_by_thread"];
        for kind in ["runtime", "sqlite", "nats-server"] {
            assert!(split[kind].as_f64().is_some_and(|ms| ms >= 0.0), "{}: {split}", run["pattern"]);
        }
        assert!(split["runtime"].as_f64().unwrap_or(0.0) > 0.0, "{split}");
        // Statements per checkout on each database that a checkout writes.
        let statements = &run["db_statements"];
        for db in ["inventory", "orders", "audit"] {
            assert!(statements[db].as_f64().is_some_and(|n| n > 0.0), "{}: {statements}", run["pattern"]);
        }
        if run["pattern"] == "orchestrated" {
            assert!(statements["orchestrator"].as_f64().is_some_and(|n| n > 0.0), "{statements}");
        }
        let counted: f64 = subjects.iter().filter_map(|c| c["messages"].as_f64()).sum();
        assert!(counted >= sent * 0.9, "{counted} by subject, {sent} sent");
    }
    // Two products per run, each sold once per succeeded checkout.
    let stock = report["stock"].as_array().expect("stock");
    assert_eq!(stock.len(), 4);
    for check in stock {
        let pattern = check["pattern"].as_str().expect("pattern");
        let run = runs.iter().find(|r| r["pattern"] == pattern).expect("its run");
        assert_eq!(check["sold"], run["succeeded"], "{check}");
        assert_eq!(check["reserved"], 0, "{check}");
    }

    let table = std::fs::read_to_string(&md).expect("markdown written");
    assert!(stdout.contains(&table), "the table is printed too");
    assert!(table.contains("| pattern | clients | checkouts | succeeded | failed | compensated |"), "{table}");
    assert!(table.contains("\n| orchestrated | 3 | 24 |") && table.contains("\n| choreographed | 3 | 24 |"), "{table}");
    assert!(table.contains("Stock conserved: yes"), "{table}");
    assert!(table.contains("Messages per orchestrated checkout by subject"), "{table}");
    assert!(report["durability"].as_str().is_some_and(|d| d.contains("synchronous=NORMAL")), "{report:#}");
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (args, expected) in [
        (&["--fail-rate", "1.5"][..], "--fail-rate must be from 0 to 1"),
        (&["--duration", "0"][..], "--duration must be a positive"),
        (&["--pattern", "sideways"][..], "invalid value 'sideways'"),
        (&["--clients", "0"][..], "--clients"),
        (&["--duration", "5", "--checkouts", "10"][..], "cannot be used with"),
        (&["--breakdown", "--nats-cluster", "3"][..], "--breakdown counts on the bench's own single nats-server"),
        (&["--durable", "--url", "http://127.0.0.1:9"][..], "--durable applies to the bench's own platform"),
        (&["--crash", "--url", "http://127.0.0.1:9"][..], "--crash runs its own platform of separate processes"),
    ] {
        let out = bench(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none(), "nothing was started or written");
}

/// `--crash`: a replica of each pattern killed halfway through, on a
/// platform of separate processes. Nothing is lost: every checkout ends,
/// and the report says how many were in flight, how many waited, and when
/// the last of them ended.
#[test]
fn a_crash_run_kills_a_replica_of_each_pattern_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let out = bench(&["--crash", "--pattern", "both", "--checkouts", "80", "--clients", "4", "--json", json.to_str().expect("utf-8")], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(report["stock_conserved"], true, "{report:#}");
    for (run, killed) in report["runs"].as_array().expect("runs").iter().zip(["orchestrator-1", "order-creation"]) {
        assert_eq!((run["checkouts"].as_u64(), run["errors"].as_u64()), (Some(80), Some(0)), "{run:#}");
        assert_eq!(run["succeeded"], 80, "{run:#}");
        let crash = &run["crash"];
        assert_eq!(crash["killed"], killed, "{crash}");
        let (in_flight, waited) = (crash["in_flight"].as_u64().expect("in_flight"), crash["waited"].as_u64().expect("waited"));
        assert!(waited <= in_flight && in_flight <= 4, "{crash}");
        assert!(crash["recovered_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{crash}");
    }
    assert!(stdout.contains("Crash: orchestrated: `orchestrator-1` killed at"), "{stdout}");
}

#[test]
fn a_durable_run_fsyncs_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let out = bench(&["--durable", "--pattern", "choreographed", "--checkouts", "10", "--clients", "2", "--json", json.to_str().expect("utf-8")], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    let durability = report["durability"].as_str().expect("durability");
    assert!(durability.contains("synchronous=FULL") && durability.contains("sync_interval: always"), "{durability}");
    assert_eq!(report["stock_conserved"], true);
    assert_eq!(report["runs"][0]["succeeded"], 10);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Durability: "), "the table says it too");
}

#[test]
fn the_event_store_bench_reads_back_what_it_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("events.json");
    let out = bench(&["events", "--events", "4000", "--reads", "100", "--json", json.to_str().expect("utf-8")], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(report["events_stored"], 4000, "{report:#}");
    for key in ["append_pipelined_per_s", "replay_whole_s", "replay_per_s"] {
        assert!(report[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {report:#}");
    }
    for key in ["append_one_ms", "replay_checkout_ms"] {
        assert!(report[key]["p95"].as_f64().is_some_and(|v| v > 0.0), "{key}: {report:#}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("| one checkout's replay |"));
}
