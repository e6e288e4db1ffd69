//! The latency-over-time plot, drawn as Jepsen draws it: one dot per operation at
//! (invocation time, latency, log scale), coloured by outcome, over shaded nemesis
//! windows. Hand-written SVG, so the report needs no plotting library.

use std::fmt::Write;

use crate::{NemesisEvent, Outcome, Record};

const W: f64 = 1000.0;
const H: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
/// The y axis spans 0.1 ms to 100 s, in decades.
const MIN_LOG: f64 = -1.0;
const MAX_LOG: f64 = 5.0;

fn colour(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "#1f77b4",
        Outcome::Fail => "#d62728",
        Outcome::Info => "#ff7f0e",
    }
}

/// Renders the plot; `span_us` is the run's length (the x axis).
pub fn latency_plot(
    title: &str,
    history: &[Record],
    nemesis: &[NemesisEvent],
    span_us: u64,
) -> String {
    let span = span_us.max(1) as f64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |us: u64| LEFT + plot_w * (us as f64 / span).min(1.0);
    let y = |latency_us: u64| {
        let ms = (latency_us as f64 / 1000.0).max(10f64.powf(MIN_LOG));
        let frac = ((ms.log10() - MIN_LOG) / (MAX_LOG - MIN_LOG)).clamp(0.0, 1.0);
        TOP + plot_h * (1.0 - frac)
    };
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="13">{}</text>"#,
        escape(title)
    );
    for e in nemesis {
        let (x0, x1) = (x(e.start_us), x(e.end_us.max(e.start_us)));
        let _ = writeln!(
            s,
            r##"<rect class="nemesis" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#999" fill-opacity="0.2"><title>{}</title></rect>"##,
            (x1 - x0).max(1.0),
            escape(&e.detail)
        );
    }
    for decade in (MIN_LOG as i32)..=(MAX_LOG as i32) {
        let ms = 10f64.powi(decade);
        let yy = y((ms * 1000.0) as u64);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{ms} ms</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            yy + 4.0
        );
    }
    let secs = (span / 1e6).ceil() as u64;
    let step = (secs / 10).max(1);
    for t in (0..=secs).step_by(step as usize) {
        let xx = x(t * 1_000_000);
        let _ = writeln!(
            s,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{t} s</text>"#,
            H - BOTTOM + 16.0
        );
    }
    for r in history {
        let _ = writeln!(
            s,
            r#"<circle class="op" cx="{:.1}" cy="{:.1}" r="1.6" fill="{}"/>"#,
            x(r.invoke_us),
            y(r.complete_us.saturating_sub(r.invoke_us)),
            colour(r.outcome)
        );
    }
    for (i, (label, outcome)) in [
        ("ok", Outcome::Ok),
        ("fail", Outcome::Fail),
        ("info", Outcome::Info),
    ]
    .into_iter()
    .enumerate()
    {
        let lx = W - RIGHT - 180.0 + 60.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<circle cx="{lx}" cy="14" r="4" fill="{}"/><text x="{}" y="18">{label}</text>"#,
            colour(outcome),
            lx + 7.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{F, Fault};

    fn op(invoke_us: u64, complete_us: u64, outcome: Outcome) -> Record {
        let mut r = Record::new(1, "s", "r0", F::Read, invoke_us);
        r.complete_us = complete_us;
        r.outcome = outcome;
        r
    }

    #[test]
    fn one_dot_per_op_and_one_band_per_nemesis_window() {
        let history = vec![
            op(0, 1_000, Outcome::Ok),
            op(5_000_000, 5_100_000, Outcome::Fail),
            op(9_000_000, 12_000_000, Outcome::Info),
        ];
        let nemesis = vec![NemesisEvent {
            fault: Fault::KillLeader,
            detail: "kill -9 node 1 <leader>".into(),
            start_us: 2_000_000,
            end_us: 7_000_000,
        }];
        let svg = latency_plot("t & t", &history, &nemesis, 10_000_000);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="op""#).count(), 3);
        assert_eq!(svg.matches(r#"class="nemesis""#).count(), 1);
        assert!(svg.contains("t &amp; t") && svg.contains("&lt;leader&gt;"));
        // The slow info op is drawn higher (smaller y) than the 1 ms ok op.
        let cy = |colour: &str| -> f64 {
            let at = svg.find(&format!(r#"fill="{colour}"/>"#)).unwrap();
            let before = &svg[..at];
            let start = before.rfind("cy=\"").unwrap() + 4;
            before[start..].split('"').next().unwrap().parse().unwrap()
        };
        assert!(cy("#ff7f0e") < cy("#1f77b4"));
        // The band starts at 20 % of the plot width.
        assert!(svg.contains(&format!(r#"x="{:.1}""#, LEFT + (W - LEFT - RIGHT) * 0.2)));
    }
}
