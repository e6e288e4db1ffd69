//! The results of a run as rows (one per topology, cell and metric, with every
//! repetition of both systems), and their rendering: a markdown table of
//! median [min-max] and the ratio Rookery/ZooKeeper against issue 7's goal, and JSON.
//! Pure: the numbers come in, text goes out.

use serde::Serialize;

/// Which way a metric improves; it decides how a ratio is judged against its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// How a metric's values are printed (the unit itself is in the metric's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Operations or notifications per second: whole numbers with thousands separators.
    Rate,
    /// Milliseconds, three significant digits.
    Millis,
    /// Seconds, three significant digits.
    Seconds,
    /// MiB, three significant digits.
    Mib,
}

/// Every repetition's value for one system, and what went wrong in the ones that failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Samples {
    pub values: Vec<f64>,
    pub errors: Vec<String>,
}

/// Median, minimum and maximum of some repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// The median (the mean of the middle two for an even count), min and max; None for
/// no values. NaNs are left out.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub topology: String,
    pub cell: String,
    pub metric: String,
    pub unit: Unit,
    pub better: Better,
    /// Issue 7's target for Rookery/ZooKeeper: at least this for `Higher`, at most
    /// this for `Lower`.
    pub goal: Option<f64>,
    pub rookery: Samples,
    pub zookeeper: Samples,
}

/// How a row's ratio compares with its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    NotMet,
    /// The row has no goal.
    NoGoal,
    /// A side has no value (it failed), so there is no ratio.
    NoData,
}

impl Row {
    /// Rookery's median over ZooKeeper's; None if either is missing or ZooKeeper's is 0.
    pub fn ratio(&self) -> Option<f64> {
        let r = summarize(&self.rookery.values)?;
        let z = summarize(&self.zookeeper.values)?;
        (z.median != 0.0).then(|| r.median / z.median)
    }

    pub fn verdict(&self) -> Verdict {
        let Some(goal) = self.goal else {
            return Verdict::NoGoal;
        };
        let Some(ratio) = self.ratio() else {
            return Verdict::NoData;
        };
        let met = match self.better {
            Better::Higher => ratio >= goal,
            Better::Lower => ratio <= goal,
        };
        if met { Verdict::Met } else { Verdict::NotMet }
    }
}

/// Three significant digits, without exponent notation.
fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.1 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

/// A whole number with `,` between thousands.
fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Rate => thousands(v),
        Unit::Millis | Unit::Seconds | Unit::Mib => sig3(v),
    }
}

/// `median [min-max]`, just the value for a single repetition, or why there is none.
pub fn format_samples(unit: Unit, s: &Samples) -> String {
    let failed = if s.errors.is_empty() {
        String::new()
    } else {
        format!(" ({} failed)", s.errors.len())
    };
    match summarize(&s.values) {
        None if s.errors.is_empty() => "-".to_owned(),
        None => "error".to_owned(),
        Some(m) if m.n == 1 => format!("{}{failed}", format_value(unit, m.median)),
        Some(m) => format!(
            "{} [{}-{}]{failed}",
            format_value(unit, m.median),
            format_value(unit, m.min),
            format_value(unit, m.max)
        ),
    }
}

/// `2.31x`; more digits for ratios far below 1 so they do not print as 0.00x.
pub fn format_ratio(r: f64) -> String {
    if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("{}x", sig3(r))
    }
}

fn format_goal(better: Better, goal: Option<f64>) -> String {
    let Some(g) = goal else {
        return String::new();
    };
    let g = if g.fract() == 0.0 {
        format!("{g:.0}")
    } else {
        format!("{g}")
    };
    match better {
        Better::Higher => format!(">= {g}x"),
        Better::Lower => format!("<= {g}x"),
    }
}

/// The results table: one line per row, in the rows' order.
pub fn render_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| topology | cell | metric | better | Rookery | ZooKeeper | Rookery/ZK | goal | verdict |\n\
         |---|---|---|---|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        let ratio = r
            .ratio()
            .map(format_ratio)
            .unwrap_or_else(|| "-".to_owned());
        let verdict = match r.verdict() {
            Verdict::Met => "met",
            Verdict::NotMet => "**not met**",
            Verdict::NoGoal => "",
            Verdict::NoData => "no data",
        };
        let better = match r.better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {better} | {} | {} | {ratio} | {} | {verdict} |\n",
            r.topology,
            r.cell,
            r.metric,
            format_samples(r.unit, &r.rookery),
            format_samples(r.unit, &r.zookeeper),
            format_goal(r.better, r.goal),
        ));
    }
    out
}

/// One line per goal, `met` or `NOT met` with the ratio, for the summary.
pub fn render_goals(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows.iter().filter(|r| r.goal.is_some()) {
        let verdict = match r.verdict() {
            Verdict::Met => "met",
            Verdict::NotMet => "NOT met",
            Verdict::NoGoal | Verdict::NoData => "no data",
        };
        let ratio = r
            .ratio()
            .map(format_ratio)
            .unwrap_or_else(|| "-".to_owned());
        out.push_str(&format!(
            "- {} {} {}: {ratio} (goal {}): {verdict}\n",
            r.topology,
            r.cell,
            r.metric,
            format_goal(r.better, r.goal)
        ));
    }
    out
}

/// A UTC civil date and time from seconds since the Unix epoch (Howard Hinnant's
/// days-to-civil algorithm), as `(year, month, day, hour, minute, second)`.
pub fn utc(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3_600) as u32,
        (rem % 3_600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `2024-05-01 16:31:50 UTC`.
pub fn utc_display(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// `20240501T163150Z`, for a report directory's name.
pub fn utc_compact(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(better: Better, goal: Option<f64>, r: &[f64], z: &[f64]) -> Row {
        Row {
            topology: "standalone".into(),
            cell: "set".into(),
            metric: "ops/s".into(),
            unit: Unit::Rate,
            better,
            goal,
            rookery: Samples {
                values: r.to_vec(),
                errors: vec![],
            },
            zookeeper: Samples {
                values: z.to_vec(),
                errors: vec![],
            },
        }
    }

    #[test]
    fn median_min_max() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(summarize(&[4.0, 1.0, 2.0, 10.0]).unwrap().median, 3.0);
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[f64::NAN, 5.0]).unwrap().median, 5.0);
    }

    #[test]
    fn ratios_are_judged_in_the_better_direction() {
        // 30,000 vs 10,000 writes/s: exactly 3x meets ">= 3x".
        let r = row(Better::Higher, Some(3.0), &[30_000.0], &[10_000.0]);
        assert_eq!(r.ratio(), Some(3.0));
        assert_eq!(r.verdict(), Verdict::Met);
        let r = row(Better::Higher, Some(3.0), &[29_000.0], &[10_000.0]);
        assert_eq!(r.verdict(), Verdict::NotMet);
        // Latency: 0.6x of ZooKeeper's p99 misses "<= 0.5x".
        let r = row(
            Better::Lower,
            Some(0.5),
            &[6.0, 5.0, 7.0],
            &[10.0, 12.0, 9.0],
        );
        assert_eq!(r.ratio(), Some(0.6));
        assert_eq!(r.verdict(), Verdict::NotMet);
        let r = row(Better::Lower, Some(0.5), &[4.0], &[10.0]);
        assert_eq!(r.verdict(), Verdict::Met);
        assert_eq!(
            row(Better::Lower, None, &[1.0], &[2.0]).verdict(),
            Verdict::NoGoal
        );
        let mut failed = row(Better::Lower, Some(0.5), &[], &[2.0]);
        failed.rookery.errors.push("timeout".into());
        assert_eq!(failed.ratio(), None);
        assert_eq!(failed.verdict(), Verdict::NoData);
    }

    #[test]
    fn values_ratios_and_cells_format() {
        assert_eq!(format_value(Unit::Rate, 1_234_567.4), "1,234,567");
        assert_eq!(format_value(Unit::Rate, 999.0), "999");
        assert_eq!(format_value(Unit::Millis, 0.41234), "0.412");
        assert_eq!(format_value(Unit::Millis, 12.345), "12.3");
        assert_eq!(format_value(Unit::Seconds, 123.6), "124");
        assert_eq!(format_ratio(2.3149), "2.31x");
        assert_eq!(format_ratio(0.0312), "0.0312x");
        let s = Samples {
            values: vec![45_210.0, 44_900.0, 46_100.0],
            errors: vec![],
        };
        assert_eq!(format_samples(Unit::Rate, &s), "45,210 [44,900-46,100]");
        let one = Samples {
            values: vec![512.0],
            errors: vec!["boom".into()],
        };
        assert_eq!(format_samples(Unit::Mib, &one), "512 (1 failed)");
        let none = Samples {
            values: vec![],
            errors: vec!["boom".into()],
        };
        assert_eq!(format_samples(Unit::Mib, &none), "error");
    }

    #[test]
    fn the_table_has_a_line_per_row_with_ratio_goal_and_verdict() {
        let rows = vec![
            row(Better::Higher, Some(3.0), &[20_000.0], &[10_000.0]),
            row(Better::Lower, None, &[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]),
        ];
        let t = render_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert_eq!(
            lines[2],
            "| standalone | set | ops/s | higher | 20,000 | 10,000 | 2.00x | >= 3x | **not met** |"
        );
        assert_eq!(
            lines[3],
            "| standalone | set | ops/s | lower | 2 [1-3] | 4 [4-4] | 0.50x |  |  |"
        );
        let goals = render_goals(&rows);
        assert_eq!(
            goals,
            "- standalone set ops/s: 2.00x (goal >= 3x): NOT met\n"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(utc_compact(1_700_000_000), "20231114T221320Z");
        assert_eq!(utc_display(86_399), "1970-01-01 23:59:59 UTC");
    }
}
