//! GraphiQL and the example frontend in a real browser: headless Chromium,
//! driven by `tests/browser/checkout.mjs` (Playwright), runs one
//! choreographed and one orchestrated checkout through `/app` and checks the
//! page shows each one's terminal event. GraphiQL must render from the
//! gateway alone (every other origin is refused), under its
//! Content-Security-Policy, opened on the example operations; the script
//! saves a screenshot of each page.
//!
//! Needs Chromium at `/usr/bin/chromium` (or `$CHROMIUM`) and the script's
//! packages in `tests/browser/node_modules`; without them the test fails,
//! unless `CHORUS_TEST_SKIP_BROWSER=1` says to skip it, which is then
//! printed loudly.

use std::{path::PathBuf, time::Duration};

use crate::{
    choreographed::assert_conserved,
    support::{Backend, TestApp, node},
};

/// A bound for the whole script (browser start, GraphiQL, two checkouts).
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether the browser test is to be skipped (and says so loudly); panics
/// with how to install what is missing otherwise.
fn skip_browser(dir: &std::path::Path) -> bool {
    if std::env::var("CHORUS_TEST_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("\n*** SKIPPED the browser test: CHORUS_TEST_SKIP_BROWSER=1 ***\n");
        return true;
    }
    let mut missing = Vec::new();
    if !chromium().is_file() {
        missing.push(format!("Chromium at {} (apt-get install chromium)", chromium().display()));
    }
    if !dir.join("node_modules/playwright-core").is_dir() {
        missing.push(format!("{}/node_modules/playwright-core (npm ci --prefix tests/browser)", dir.display()));
    }
    assert!(
        missing.is_empty(),
        "the browser test needs {}; install it, or set CHORUS_TEST_SKIP_BROWSER=1 to skip this test",
        missing.join(" and ")
    );
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_and_the_example_app_check_out_in_chromium() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if skip_browser(&dir) {
        return;
    }
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Browser lamp", 1_999, 10).await;

    let url = format!("http://{}", app.addr);
    let started = std::time::Instant::now();
    let shots = tempfile::tempdir().expect("screenshot dir");
    let env = [("CHROMIUM", chromium().into()), ("SCREENSHOTS", shots.path().as_os_str().to_owned())];
    let output = node(&dir.join("checkout.mjs"), &[url], &env, SCRIPT_LIMIT).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!("--- checkout.mjs stdout\n{stdout}--- checkout.mjs stderr\n{stderr}---");
    assert!(output.status.success(), "checkout.mjs failed ({}) after {:?}:\n{report}", output.status, started.elapsed());
    eprintln!("checkout.mjs passed in {:?}\n{report}", started.elapsed());
    for page in ["graphiql", "app"] {
        let png = std::fs::read(shots.path().join(format!("{page}.png"))).unwrap_or_default();
        assert!(png.starts_with(b"\x89PNG"), "no screenshot of {page}");
    }

    // What the page showed happened: two units sold, nothing lost.
    let l = assert_conserved(&app, product, 10).await;
    assert_eq!((l.available, l.reserved, l.sold), (8, 0, 2), "{l:?}");
    app.stop().await;
}

/// `chorus bench --html` on its own platform, with failures so that every
/// chart has something to draw, then `tests/browser/report.mjs` opens the
/// page offline in Chromium and checks each chart rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_report_page_draws_every_chart_in_chromium() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if skip_browser(&dir) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let (html, charts) = (work.path().join("report.html"), work.path().join("charts"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["bench", "--pattern", "both", "--checkouts", "16", "--clients", "2", "--fail-rate", "0.5"])
        .arg("--html")
        .arg(&html)
        .arg("--charts")
        .arg(&charts)
        .env_remove("NATS_URL")
        .env("CHORUS_DATA_DIR", work.path())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("chorus bench runs");
    assert!(out.status.success(), "bench failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The same charts as files, for BENCHMARKS.md to embed.
    for chart in ["latency", "throughput", "percentiles", "cost", "compensation", "stock"] {
        let svg = std::fs::read_to_string(charts.join(format!("{chart}.svg"))).unwrap_or_default();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{chart}.svg is not an SVG: {svg:.200}");
    }

    let shots = tempfile::tempdir().expect("screenshot dir");
    let env = [("CHROMIUM", chromium().into()), ("SCREENSHOTS", shots.path().as_os_str().to_owned())];
    let output = node(&dir.join("report.mjs"), &[html.display().to_string()], &env, SCRIPT_LIMIT).await;
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "report.mjs failed ({}):\n{report}", output.status);
    let png = std::fs::read(shots.path().join("report.png")).unwrap_or_default();
    assert!(png.starts_with(b"\x89PNG"), "no screenshot of the report:\n{report}");
}
