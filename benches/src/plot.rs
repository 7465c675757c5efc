//! Draws the benchmark report as one SVG: GFLOP/s per backend and shape, and the batch sweep.

use std::fmt::Write;

use crate::harness::SHAPES;
use crate::results::{Peaks, Record, human};

const PANEL_WIDTH: f64 = 560.0;
const PANEL_HEIGHT: f64 = 360.0;
const MARGIN: f64 = 60.0;
const COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// Maps `value` on a log10 axis from `low..high` to pixels `bottom..top`.
fn log_scale(value: f64, low: f64, high: f64, bottom: f64, top: f64) -> f64 {
    let t = (value.log10() - low.log10()) / (high.log10() - low.log10());
    bottom + t * (top - bottom)
}

/// Decades covering every value.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    (
        10f64.powf(low.log10().floor()),
        10f64.powf(high.log10().ceil()),
    )
}

fn text(svg: &mut String, x: f64, y: f64, anchor: &str, size: u32, content: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" font-size="{size}" font-family="sans-serif">{content}</text>"#
    );
}

/// Horizontal grid lines and labels at each decade of a log axis.
fn log_axis(
    svg: &mut String,
    x0: f64,
    width: f64,
    (low, high): (f64, f64),
    bottom: f64,
    top: f64,
    label: impl Fn(f64) -> String,
) {
    let mut tick = low;
    while tick <= high * 1.0001 {
        let y = log_scale(tick, low, high, bottom, top);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            x0 + width
        );
        text(svg, x0 - 6.0, y + 4.0, "end", 11, &label(tick));
        tick *= 10.0;
    }
}

fn backends(steps: &[Record]) -> Vec<String> {
    let mut names: Vec<String> = steps.iter().map(|r| r.backend.clone()).collect();
    names.sort();
    names.dedup();
    names
}

fn legend(svg: &mut String, names: &[String], x: f64, y: f64) {
    for (i, name) in names.iter().enumerate() {
        let y = y + 16.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{}"/>"#,
            y - 9.0,
            COLOURS[i % COLOURS.len()]
        );
        text(svg, x + 14.0, y, "start", 11, name);
    }
}

/// GFLOP/s of every backend on each shape and dtype, log scale, with the GEMM peaks as lines.
fn throughput_panel(svg: &mut String, steps: &[Record], peaks: &Peaks, names: &[String]) {
    let main: Vec<&Record> = steps.iter().filter(|r| !r.shape.contains('@')).collect();
    if main.is_empty() {
        return;
    }
    let range = decades(
        main.iter()
            .map(|r| r.gflops())
            .chain(peaks.values().copied()),
    );
    let (x0, bottom, top) = (MARGIN, PANEL_HEIGHT - MARGIN, MARGIN);
    let width = PANEL_WIDTH - 2.0 * MARGIN;
    text(
        svg,
        PANEL_WIDTH / 2.0,
        24.0,
        "middle",
        14,
        "GFLOP/s per training step (log scale)",
    );
    log_axis(svg, x0, width, range, bottom, top, |v| format!("{v}"));
    let groups: Vec<(&str, &str)> = SHAPES
        .iter()
        .flat_map(|(shape, _, _)| [(*shape, "f32"), (*shape, "f64")])
        .collect();
    let group_width = width / groups.len() as f64;
    let bar = group_width * 0.8 / names.len().max(1) as f64;
    for (g, (shape, dtype)) in groups.iter().enumerate() {
        let gx = x0 + g as f64 * group_width + group_width * 0.1;
        text(
            svg,
            gx + group_width * 0.4,
            bottom + 16.0,
            "middle",
            11,
            &format!("{shape} {dtype}"),
        );
        for (b, name) in names.iter().enumerate() {
            let Some(record) = main
                .iter()
                .find(|r| r.shape == *shape && r.dtype == *dtype && &r.backend == name)
            else {
                continue;
            };
            let y = log_scale(record.gflops(), range.0, range.1, bottom, top);
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{y:.1}" width="{bar:.1}" height="{:.1}" fill="{}"><title>{name} {shape} {dtype}: {:.2} GFLOP/s</title></rect>"#,
                gx + b as f64 * bar,
                bottom - y,
                COLOURS[b % COLOURS.len()],
                record.gflops()
            );
        }
    }
    // The GEMM on every core and one core's FMA loop (the one-thread GEMM would crowd them).
    for (dtype, peak) in peaks.iter().filter(|(key, _)| !key.ends_with("gemm-1t")) {
        let y = log_scale(*peak, range.0, range.1, bottom, top);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#333" stroke-dasharray="4 3"/>"##,
            x0 + width
        );
        text(
            svg,
            x0 + width,
            y - 4.0,
            "end",
            10,
            &format!("peak {dtype} {peak:.0}"),
        );
    }
}

/// Time per step against batch size on M's widths, log-log, one line per backend.
fn sweep_panel(svg: &mut String, steps: &[Record], names: &[String]) {
    let sweep: Vec<&Record> = steps.iter().filter(|r| r.shape.contains('@')).collect();
    if sweep.is_empty() {
        return;
    }
    let times = decades(sweep.iter().map(|r| r.ns_per_step));
    let batches = decades(sweep.iter().map(|r| r.batch as f64));
    let (x0, bottom, top) = (PANEL_WIDTH + MARGIN, PANEL_HEIGHT - MARGIN, MARGIN);
    let width = PANEL_WIDTH - 2.0 * MARGIN;
    text(
        svg,
        PANEL_WIDTH * 1.5,
        24.0,
        "middle",
        14,
        "Time per step on 784-256-10, f32, by batch size",
    );
    log_axis(svg, x0, width, times, bottom, top, human);
    let mut batch = batches.0;
    while batch <= batches.1 * 1.0001 {
        let x = log_scale(batch, batches.0, batches.1, x0, x0 + width);
        text(svg, x, bottom + 16.0, "middle", 11, &format!("{batch}"));
        batch *= 10.0;
    }
    for (b, name) in names.iter().enumerate() {
        let mut points: Vec<&&Record> = sweep.iter().filter(|r| &r.backend == name).collect();
        points.sort_by_key(|r| r.batch);
        let coordinates: Vec<String> = points
            .iter()
            .map(|r| {
                let x = log_scale(r.batch as f64, batches.0, batches.1, x0, x0 + width);
                let y = log_scale(r.ns_per_step, times.0, times.1, bottom, top);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let colour = COLOURS[b % COLOURS.len()];
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            coordinates.join(" ")
        );
        for point in &coordinates {
            let (x, y) = point.split_once(',').unwrap_or_default();
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
        }
    }
}

/// The whole report as an SVG document.
pub fn svg(steps: &[Record], peaks: &Peaks) -> String {
    let names = backends(steps);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}">"#,
        2.0 * PANEL_WIDTH,
        PANEL_HEIGHT + 20.0,
        2.0 * PANEL_WIDTH,
        PANEL_HEIGHT + 20.0
    );
    svg.push('\n');
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    svg.push('\n');
    throughput_panel(&mut svg, steps, peaks, &names);
    sweep_panel(&mut svg, steps, &names);
    let legend_top = PANEL_HEIGHT - MARGIN - 16.0 * names.len() as f64;
    legend(
        &mut svg,
        &names,
        2.0 * PANEL_WIDTH - MARGIN - 110.0,
        legend_top,
    );
    svg.push_str("</svg>\n");
    svg
}
