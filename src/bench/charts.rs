//! The bench report's charts, drawn as SVG with `plotters` (its SVG backend
//! only: the text is `<text>` the browser lays out, so no font crate is
//! linked). Both patterns share each chart's axes, each in its own colour.

use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::report::{Report, Run};
use crate::ChorusError;

/// One chart of the report: a file name stem, a caption, its SVG.
#[derive(Clone, Debug)]
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    pub svg: String,
}

const SIZE: (u32, u32) = (720, 380);
const ORCHESTRATED: RGBColor = RGBColor(37, 99, 235);
const CHOREOGRAPHED: RGBColor = RGBColor(5, 150, 105);
const COMPENSATION: RGBColor = RGBColor(234, 88, 12);
const GREY: RGBColor = RGBColor(120, 120, 120);
const FONT: &str = "sans-serif";

/// Every chart of `report`, in the order the page shows them.
pub fn all(report: &Report) -> Result<Vec<Chart>, ChorusError> {
    let chart = |id, title, draw: &dyn Fn(&Area) -> Result<(), DrawError>| -> Result<Chart, ChorusError> {
        Ok(Chart { id, title, svg: svg(draw).map_err(|e| ChorusError::Bench(format!("drawing the {id} chart: {e}")))? })
    };
    Ok(vec![
        chart("latency", "Latency distribution", &|a| latency(a, &report.runs))?,
        chart("throughput", "Throughput over the run", &|a| throughput(a, &report.runs))?,
        chart("percentiles", "Latency percentiles", &|a| percentiles(a, &report.runs))?,
        chart("cost", "Cost per checkout", &|a| cost(a, &report.runs))?,
        chart("compensation", "Compensation timing", &|a| compensation(a, &report.runs))?,
        chart("stock", "Stock check", &|a| stock(a, report))?,
    ])
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawError = Box<dyn std::error::Error>;

fn svg(draw: &dyn Fn(&Area) -> Result<(), DrawError>) -> Result<String, DrawError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

fn colour(pattern: &str) -> RGBColor {
    if pattern == "orchestrated" { ORCHESTRATED } else { CHOREOGRAPHED }
}

/// The share of checkouts that ended within x ms: both patterns' curves,
/// cut at one and a half times the larger P99 so that a few slow outliers
/// (a killed replica's checkouts) do not flatten them.
fn latency(area: &Area, runs: &[Run]) -> Result<(), DrawError> {
    let x_max = runs.iter().map(|r| r.latency_ms.p99).fold(1.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..100.0)?;
    chart.configure_mesh().x_desc("latency (ms)").y_desc("% of checkouts ended").label_style((FONT, 13)).draw()?;
    for run in runs {
        let points = run.latency_cdf.iter().filter(|p| p[0] <= x_max).map(|p| (p[0], p[1] * 100.0));
        let c = colour(&run.pattern);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))?
            .label(format!("{} (P50 {:.1} ms, P99 {:.1} ms)", run.pattern, run.latency_ms.p50, run.latency_ms.p99))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// Checkouts ended per second, bucket by bucket, from each pattern's start.
fn throughput(area: &Area, runs: &[Run]) -> Result<(), DrawError> {
    let x_max = runs.iter().flat_map(|r| r.timeline.last()).map(|p| p[0]).fold(1.0, f64::max);
    let y_max = runs.iter().flat_map(|r| &r.timeline).map(|p| p[1]).fold(1.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart.configure_mesh().x_desc("seconds into the run").y_desc("checkouts/s").label_style((FONT, 13)).draw()?;
    for (i, run) in runs.iter().enumerate() {
        let c = colour(&run.pattern);
        chart
            .draw_series(LineSeries::new(run.timeline.iter().map(|p| (p[0], p[1])), c.stroke_width(2)))?
            .label(format!("{} ({:.0}/s over the run)", run.pattern, run.throughput_per_s))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        // `--crash`: where the replica died, in the pattern's colour.
        if let Some(crash) = &run.crash {
            let at = crash.at_s;
            chart.draw_series(DashedLineSeries::new([(at, 0.0), (at, y_max)], 6, 4, COMPENSATION.stroke_width(2)))?;
            let style = TextStyle::from((FONT, 12).into_font()).color(&c);
            let y = y_max * (0.95 - 0.07 * i as f64);
            chart.draw_series([Text::new(format!(" {} killed", crash.killed), (at, y), style)])?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

fn percentiles(area: &Area, runs: &[Run]) -> Result<(), DrawError> {
    let series: Vec<_> = runs
        .iter()
        .map(|r| (r.pattern.as_str(), colour(&r.pattern), vec![Some(r.latency_ms.p50), Some(r.latency_ms.p95), Some(r.latency_ms.p99)]))
        .collect();
    bars(area, "ms", &["P50", "P95", "P99"], &series, Some(SeriesLabelPosition::UpperLeft))
}

/// Four panels, one per unit: NATS messages, platform CPU, events and
/// database statements per checkout.
fn cost(area: &Area, runs: &[Run]) -> Result<(), DrawError> {
    type Figure = fn(&Run) -> Option<f64>;
    let figures: [(&str, Figure); 4] = [
        ("NATS messages in", |r| r.nats.map(|n| n.messages_in)),
        ("platform CPU (ms)", |r| r.platform_cpu_ms_per_checkout),
        ("events stored", |r| Some(r.events_per_checkout)),
        ("database statements", |r| r.db_statements.as_ref().map(|s| s.values().sum())),
    ];
    for (panel, (name, figure)) in area.split_evenly((2, 2)).iter().zip(figures) {
        if runs.iter().all(|r| figure(r).is_none()) {
            note(panel, &format!("{name}: measured only on the bench's own `chorus up`"))?;
            continue;
        }
        let series: Vec<_> = runs.iter().map(|r| (r.pattern.as_str(), colour(&r.pattern), vec![figure(r)])).collect();
        bars(panel, "per checkout", &[name], &series, None)?;
    }
    Ok(())
}

/// A line of grey text in the middle of `area`, where a chart has nothing to draw.
fn note(area: &Area, text: &str) -> Result<(), DrawError> {
    let style = TextStyle::from((FONT, 14).into_font()).color(&GREY).pos(Pos::new(HPos::Center, VPos::Center));
    let (w, h) = area.dim_in_pixel();
    let middle = (i32::try_from(w / 2).unwrap_or(0), i32::try_from(h / 2).unwrap_or(0));
    area.draw(&Text::new(text, middle, style))?;
    Ok(())
}

/// From the order step failing for good to the stock being released, when
/// the run had failures (`--fail-rate`); otherwise says so.
fn compensation(area: &Area, runs: &[Run]) -> Result<(), DrawError> {
    if runs.iter().all(|r| r.stock_freed_ms.is_none()) {
        return note(area, "No checkout failed in this run: run with --fail-rate 0.2 to time compensation");
    }
    let series: Vec<_> = runs
        .iter()
        .map(|r| (r.pattern.as_str(), colour(&r.pattern), vec![r.stock_freed_ms.map(|l| l.p50), r.stock_freed_ms.map(|l| l.p95)]))
        .collect();
    bars(area, "ms from the failure to the stock freed", &["P50", "P95"], &series, Some(SeriesLabelPosition::UpperLeft))
}

/// Per pattern: checkouts that succeeded, units sold, units still reserved
/// (none, when stock was conserved).
fn stock(area: &Area, report: &Report) -> Result<(), DrawError> {
    let sum = |pattern: &str, f: fn(&super::report::StockCheck) -> i64| -> f64 {
        report.stock.iter().filter(|s| s.pattern == pattern).map(f).sum::<i64>() as f64
    };
    let groups = ["succeeded", "units sold", "still reserved"];
    let series: Vec<_> = report
        .runs
        .iter()
        .map(|r| {
            let p = r.pattern.as_str();
            (p, colour(p), vec![Some(r.succeeded as f64), Some(sum(p, |s| s.sold)), Some(sum(p, |s| s.reserved))])
        })
        .collect();
    let verdict = if report.stock_conserved { "available + reserved + sold = stocked: yes" } else { "stock NOT conserved" };
    let (top, rest) = area.split_vertically(28);
    let style = TextStyle::from((FONT, 15).into_font()).color(if report.stock_conserved { &BLACK } else { &COMPENSATION });
    top.draw(&Text::new(verdict, (60, 8), style))?;
    bars(&rest, "per run", &groups, &series, Some(SeriesLabelPosition::UpperRight))
}

/// Grouped bars: one group per `groups` entry, one bar per series in it,
/// each labelled with its value ("–" when the run could not measure it).
/// `legend_at` is `None` where the colours are named elsewhere (the cost
/// panels, too small for a legend beside the bars).
fn bars(
    area: &Area,
    unit: &str,
    groups: &[&str],
    series: &[(&str, RGBColor, Vec<Option<f64>>)],
    legend_at: Option<SeriesLabelPosition>,
) -> Result<(), DrawError> {
    let y_max = series.iter().flat_map(|s| s.2.iter().flatten()).fold(0.0, |a: f64, &b| a.max(b)).max(1e-9) * 1.25;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..groups.len() as f64, 0.0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(0)
        .y_desc(unit)
        .label_style((FONT, 12))
        .draw()?;
    let width = 0.7 / series.len().max(1) as f64;
    let label = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, (name, c, values)) in series.iter().enumerate() {
        let c = *c;
        let x = |g: usize| g as f64 + 0.15 + i as f64 * width;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(g, v)| v.map(|v| Rectangle::new([(x(g), 0.0), (x(g) + width * 0.92, v)], c.filled()))))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        chart.draw_series(values.iter().enumerate().map(|(g, v)| {
            let text = v.map_or_else(|| "–".to_owned(), |v| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") });
            Text::new(text, (x(g) + width * 0.46, v.unwrap_or(0.0)), label.clone())
        }))?;
    }
    let below = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    chart.draw_series(groups.iter().enumerate().map(|(g, name)| Text::new((*name).to_owned(), (g as f64 + 0.5, 0.0), below.clone())))?;
    match legend_at {
        Some(at) => legend(&mut chart, at),
        None => Ok(()),
    }
}

fn legend<'a, X, Y>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>, at: SeriesLabelPosition) -> Result<(), DrawError>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}
