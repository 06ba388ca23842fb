//! `--svg FILE`: the run as bar charts (requests/s, and CPU per request of the serving
//! processes, for each route at the loaded concurrency), drawn with plotters' SVG backend,
//! which lays text out without system fonts.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::report::Report;

/// One bar: a target and its value.
type Bar = (String, f64);

/// The bars of one chart: every target's figure for `scenario` at `connections`.
fn bars(report: &Report, scenario: &str, connections: usize, cpu: bool) -> Vec<Bar> {
    report
        .rows
        .iter()
        .filter(|r| r.scenario == scenario && r.connections == connections && r.requests > 0)
        .map(|r| {
            let value = if cpu {
                // The serving side only: the load generator is the same for every target.
                r.cpu
                    .iter()
                    .filter(|s| s.process != "load generator")
                    .map(|s| s.us_per_request)
                    .sum()
            } else {
                r.requests_per_second
            };
            (r.target.clone(), value)
        })
        .collect()
}

/// Draws the report's charts to `path`.
///
/// # Errors
/// Nothing to draw, or the file cannot be written.
pub(crate) fn draw(report: &Report, path: &Path) -> Result<()> {
    let connections = report.run.connections;
    let charts = [
        (
            "list",
            false,
            "GET /articles?page=1&page_size=10: requests/s",
        ),
        ("detail", false, "GET /articles/{pk}: requests/s"),
        ("list", true, "list: CPU µs per request (serving processes)"),
        (
            "detail",
            true,
            "detail: CPU µs per request (serving processes)",
        ),
    ];
    let panels: Vec<(Vec<Bar>, &str)> = charts
        .iter()
        .map(|&(scenario, cpu, title)| (bars(report, scenario, connections, cpu), title))
        .collect();
    let most = panels.iter().map(|(b, _)| b.len()).max().unwrap_or(0);
    if most == 0 {
        return Err(anyhow!(
            "no measured row at {connections} connections to draw"
        ));
    }
    let height = u32::try_from(most).unwrap_or(20) * 2 * 26 + 220;
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(
            &format!(
                "articles bench: {connections} connections, {} CPUs, loopback",
                report.run.cpus
            ),
            ("sans-serif", 20),
        )
        .map_err(|e| anyhow!("{e}"))?;
    for (area, (bars, title)) in root.split_evenly((2, 2)).iter().zip(&panels) {
        panel(area, bars, title)?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    bars: &[Bar],
    title: &str,
) -> Result<()> {
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0) * 1.15;
    let n = bars.len();
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(130)
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n.max(1))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (label, value))| {
            let color = if label.starts_with("grpc-gateway") {
                RGBColor(200, 90, 60)
            } else if label.starts_with("gateway") || label == "in-process" {
                RGBColor(40, 110, 190)
            } else {
                RGBColor(150, 150, 150)
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*value, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        }))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, value))| {
            Text::new(
                format!("{value:.0}"),
                (*value, SegmentValue::CenterOf(i)),
                ("sans-serif", 12),
            )
        }))
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
