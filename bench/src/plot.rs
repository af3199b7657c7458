//! An SVG plot of a run: attempts per second and p99 latency over time, one line per scenario,
//! from the gateway's metrics sampled every second.

use std::fmt::Write;

use crate::report::{thousands, Report};

const WIDTH: f64 = 900.0;
const PANEL: f64 = 230.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 50.0;
const GAP: f64 = 60.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// Two stacked panels sharing the time axis.
pub fn svg(report: &Report) -> String {
    let height = TOP + 2.0 * PANEL + GAP + 50.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"15\">seckill bench {} — {} cores, wrk -t{} -c{}</text>\n",
        report.started_at, report.machine.cores, report.threads, report.connections
    );
    let t_max = report
        .scenarios
        .iter()
        .flat_map(|s| s.timeline.iter().map(|p| p.t_s))
        .fold(1.0_f64, f64::max);
    let series = |value: fn(&crate::report::Sample) -> Option<f64>| -> Vec<Vec<(f64, f64)>> {
        report
            .scenarios
            .iter()
            .map(|s| {
                s.timeline
                    .iter()
                    .filter_map(|p| Some((p.t_s, value(p)?)))
                    .collect()
            })
            .collect()
    };
    panel(
        &mut svg,
        TOP,
        "attempts/s",
        t_max,
        &series(|p| Some(p.attempts_per_s)),
        thousands,
    );
    panel(
        &mut svg,
        TOP + PANEL + GAP,
        "p99 (ms)",
        t_max,
        &series(|p| p.p99_ms),
        |v| format!("{v:.1}"),
    );
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">seconds into the scenario's load</text>",
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 12.0
    );
    for (i, s) in report.scenarios.iter().enumerate() {
        let y = TOP + 20.0 * i as f64;
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"3\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            WIDTH - RIGHT + 45.0,
            WIDTH - RIGHT + 52.0,
            y + 4.0,
            s.name,
            x = WIDTH - RIGHT + 25.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn panel(
    svg: &mut String,
    top: f64,
    title: &str,
    t_max: f64,
    series: &[Vec<(f64, f64)>],
    label: impl Fn(f64) -> String,
) {
    let width = WIDTH - LEFT - RIGHT;
    let highest = series
        .iter()
        .flatten()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max);
    let step = nice_step(highest / 4.0);
    let ticks = (highest / step).ceil().max(1.0) as u32;
    let v_max = step * f64::from(ticks);
    let x = |t: f64| LEFT + t / t_max * width;
    let y = |v: f64| top + PANEL - v / v_max * PANEL;
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{width}\" height=\"{PANEL}\" fill=\"none\" stroke=\"#999\"/>\
         <text x=\"{LEFT}\" y=\"{}\" font-weight=\"bold\">{title}</text>",
        top - 6.0
    );
    for i in 0..=ticks {
        let v = step * f64::from(i);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            LEFT + width,
            LEFT - 6.0,
            y(v) + 4.0,
            label(v),
            yy = y(v)
        );
    }
    for i in 0..=5 {
        let t = t_max * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{t:.0}</text>",
            x(t),
            top + PANEL + 16.0
        );
    }
    for (i, points) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            COLORS[i % COLORS.len()],
            path.join(" ")
        );
    }
}

/// The smallest 1, 2 or 5 × 10^k at least `raw`: axis ticks a reader can add up.
fn nice_step(raw: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::nice_step;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(13_000.0), 20_000.0);
        assert_eq!(nice_step(4.2), 5.0);
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1000.0), 1000.0);
    }
}
