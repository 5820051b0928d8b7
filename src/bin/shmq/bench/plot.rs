// SPDX-License-Identifier: MIT OR Apache-2.0
//! `--plot FILE.svg`: the round-trip latency percentile distribution of every measured
//! mechanism, on log-log axes. The x axis counts nines (50%, 90%, 99%, 99.9%, ...), the y axis is
//! the round trip in nanoseconds, so a line's height at the right end is its tail latency.

use super::report::{Machine, Row};
use super::Outcome;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use std::path::Path;

/// Line colours (Tableau 10), distinct on white; the floor is black.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Percentile `q` as a distance in nines: 0.9 → 1, 0.99 → 2, ...
fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

fn quantile(nines: f64) -> f64 {
    1.0 - 10f64.powf(-nines)
}

/// Points of one line: from p50 to the last percentile its sample count resolves (at most
/// 99.999%).
fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let last = (h.len() as f64).log10().min(5.0);
    let first = nines(0.5);
    let steps = 200;
    (0..=steps)
        .map(|i| first + (last - first) * f64::from(i) / f64::from(steps))
        .map(|x| (x, h.value_at_quantile(quantile(x)).max(1) as f64))
        .collect()
}

fn duration_label(ns: f64) -> String {
    match ns {
        n if n >= 1e6 => format!("{} ms", n / 1e6),
        n if n >= 1e3 => format!("{} µs", n / 1e3),
        n => format!("{n} ns"),
    }
}

fn percent_label(x: f64) -> String {
    let p = 100.0 * quantile(x);
    let s = format!("{p:.5}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Draws the percentile lines of every round-trip row of `rows` into an SVG at `path`.
pub fn draw(path: &Path, machine: &Machine, rows: &[Row]) -> Result<(), String> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = rows
        .iter()
        .filter_map(|r| match &r.outcome {
            Ok(Outcome::Rtt(h)) if !h.is_empty() => Some((r.name, points(h))),
            _ => None,
        })
        .collect();
    if lines.is_empty() {
        return Err("--plot: no round-trip row was measured".into());
    }
    let all = lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let y_range = (lo / 1.5).max(1.0)..hi * 1.5;
    let x_range = nines(0.5)..5.0;

    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| format!("--plot {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Round-trip latency percentiles, {}", machine.summary()),
            ("sans-serif", 14),
        )
        .margin(16)
        .margin_right(48)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range.log_scale())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("round trip")
        .x_labels(6)
        .x_label_formatter(&|x| percent_label(*x))
        .y_label_formatter(&|y| duration_label(*y))
        .draw()
        .map_err(|e| fail(&e))?;
    let mut others = PALETTE.iter().cycle();
    for (name, points) in lines {
        let color = match name {
            "floor" => BLACK,
            _ => *others.next().unwrap_or(&BLACK),
        };
        // shmq's own lines are drawn thicker.
        let width = if name.starts_with("shmq") { 3 } else { 2 };
        let style = color.stroke_width(width);
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(|e| fail(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}
