//! `chorus bench --html`: the report as one self-contained page (its charts
//! inline SVG, its style inline, nothing fetched), ending with the two saga
//! styles compared in words generated from the run's own figures.

use std::fmt::Write as _;

use super::{charts::Chart, report::{Report, Run}};

/// The page for `report` with `charts` (from [`super::charts::all`]).
pub fn page(report: &Report, charts: &[Chart]) -> String {
    let mut out = String::with_capacity(64 * 1024 + charts.iter().map(|c| c.svg.len()).sum::<usize>());
    out.push_str(HEAD);
    let _ = write!(
        out,
        "<h1>Chorus bench: orchestrated and choreographed checkouts</h1>\n<p class=meta>{} · Chorus {} · {} · {}{}</p>\n",
        escape(&report.machine),
        escape(&report.version),
        escape(&report.target),
        report.durability.as_deref().map(escape).unwrap_or_else(|| "durability unknown (a gateway given with --url)".into()),
        if report.fail_rate > 0.0 { format!(" · {:.0}% of checkouts made to fail", report.fail_rate * 100.0) } else { String::new() },
    );
    out.push_str(&table(&report.runs));
    for chart in charts {
        let _ = write!(out, "<figure class=chart id={}><figcaption>{}</figcaption>\n{}\n</figure>\n", chart.id, chart.title, chart.svg);
    }
    out.push_str("<h2>The two styles compared, on this machine</h2>\n<ul class=comparison>\n");
    for line in comparison(report) {
        let _ = writeln!(out, "<li>{line}</li>");
    }
    out.push_str("</ul>\n</body>\n</html>\n");
    out
}

const HEAD: &str = r#"<!doctype html>
<html lang=en>
<head>
<meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>Chorus bench report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1560px; padding: 0 1rem; color: #111; }
.meta { color: #555; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure.chart { display: inline-block; margin: .5rem; border: 1px solid #eee; }
figcaption { font-weight: 600; padding: .4rem .6rem; }
.comparison li { margin: .4rem 0; max-width: 70rem; }
</style>
</head>
<body>
"#;

fn table(runs: &[Run]) -> String {
    let mut out = String::from(
        "<table><tr><th>pattern</th><th>clients</th><th>checkouts</th><th>succeeded</th><th>compensated</th><th>throughput</th>\
         <th>P50</th><th>P95</th><th>P99</th><th>NATS msgs/checkout</th><th>CPU/checkout</th></tr>\n",
    );
    for r in runs {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}/s</td><td>{:.2} ms</td><td>{:.2} ms</td><td>{:.2} ms</td><td>{}</td><td>{}</td></tr>",
            escape(&r.pattern),
            r.clients,
            r.checkouts,
            r.succeeded,
            r.compensated,
            r.throughput_per_s,
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.latency_ms.p99,
            r.nats.map_or_else(|| "–".into(), |n| format!("{:.1}", n.messages_in)),
            r.platform_cpu_ms_per_checkout.map_or_else(|| "–".into(), |c| format!("{c:.2} ms")),
        );
    }
    out.push_str("</table>\n");
    out
}

/// The comparison a reader came for, in sentences built from the figures:
/// throughput, latency, failures, messages, and what each style couples.
pub fn comparison(report: &Report) -> Vec<String> {
    let find = |p: &str| report.runs.iter().find(|r| r.pattern == p);
    let (Some(o), Some(c)) = (find("orchestrated"), find("choreographed")) else {
        return vec!["Only one pattern ran: run with <code>--pattern both</code> to compare them.".into()];
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let (fast, slow) = if c.throughput_per_s >= o.throughput_per_s { (c, o) } else { (o, c) };
    let mut lines = vec![
        format!(
            "<b>Throughput.</b> With {} clients, {} ran {:.0} checkouts/s and {} {:.0}/s: {:.2}× as many.",
            o.clients, fast.pattern, fast.throughput_per_s, slow.pattern, slow.throughput_per_s, ratio(fast.throughput_per_s, slow.throughput_per_s)
        ),
        format!(
            "<b>Latency.</b> Median {:.1} ms orchestrated (the mutation's round trip, the answer final) against {:.1} ms choreographed \
             (from the mutation to the terminal event on a subscription); P95 {:.1} against {:.1} ms.",
            o.latency_ms.p50, c.latency_ms.p50, o.latency_ms.p95, c.latency_ms.p95
        ),
    ];
    if let (Some(on), Some(cn)) = (o.nats, c.nats) {
        lines.push(format!(
            "<b>Messages.</b> {:.1} NATS messages per orchestrated checkout against {:.1} choreographed; platform CPU {} against {}.",
            on.messages_in,
            cn.messages_in,
            o.platform_cpu_ms_per_checkout.map_or_else(|| "–".into(), |v| format!("{v:.2} ms")),
            c.platform_cpu_ms_per_checkout.map_or_else(|| "–".into(), |v| format!("{v:.2} ms")),
        ));
    }
    let freed = |r: &Run| r.stock_freed_ms.map_or_else(|| "–".into(), |l| format!("{:.1} ms", l.p95));
    lines.push(if o.failed + c.failed > 0 {
        format!(
            "<b>Failures.</b> {} of {} orchestrated checkouts failed and {} were compensated; {} of {} choreographed failed and {} were \
             compensated. Stock came back (P95) {} after the failure orchestrated, {} choreographed. Stock conserved: {}.",
            o.failed, o.checkouts, o.compensated, c.failed, c.checkouts, c.compensated, freed(o), freed(c),
            if report.stock_conserved { "yes" } else { "NO" }
        )
    } else {
        format!(
            "<b>Failures.</b> None in this run (run with <code>--fail-rate 0.2</code> to time compensation). Stock conserved: {}.",
            if report.stock_conserved { "yes" } else { "NO" }
        )
    });
    if o.crash.is_some() || c.crash.is_some() {
        let told: Vec<String> = [o, c].iter().filter_map(|r| r.crash.as_ref().map(|k| escape(&k.describe(&r.pattern)))).collect();
        lines.push(format!(
            "<b>Recovery.</b> {}. An orchestrator's sagas wait for their lease to lapse before another replica takes them over; a \
             worker's events wait for their ack wait before another replica gets them: neither loses a checkout, both make some wait.",
            told.join("; ")
        ));
    }
    lines.push(
        "<b>Coupling.</b> Orchestrated: one orchestrator knows every step and calls each service; its saga log says where any \
         checkout is and why, and compensation is one place's code, at the price of its database writes on every step and a \
         component every checkout depends on. Choreographed: each worker knows only the events it consumes and emits, and \
         none knows another; there is no central state to ask (progress is the events), so a stall watch must notice a \
         checkout nobody moves."
            .into(),
    );
    lines
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
