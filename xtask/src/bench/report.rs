//! The result: rows of figures for both sides over the repeats, each with
//! the bosun/native ratio (median and spread), as a table on the terminal,
//! Markdown and JSON. Where a scenario also ran the host from another
//! build (`--before-binary`), its rows carry that side too, and the table
//! gains a column for it and for the bosun/before ratio.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

/// One measured quantity, per repeat, on both sides.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub metric: String,
    /// Its unit.
    pub unit: &'static str,
    /// Per repeat.
    pub bosun: Vec<f64>,
    /// Per repeat; empty where the native side has no such figure.
    pub native: Vec<f64>,
    /// The host from `--before-binary`, per repeat; empty where it did not
    /// run.
    pub before: Vec<f64>,
}

impl Row {
    /// A row of bosun and native figures, without a before side.
    pub fn new(metric: String, unit: &'static str, bosun: Vec<f64>, native: Vec<f64>) -> Row {
        Row {
            metric,
            unit,
            bosun,
            native,
            before: Vec::new(),
        }
    }

    /// bosun/native per repeat (paired by repeat).
    pub fn ratios(&self) -> Vec<f64> {
        paired(&self.bosun, &self.native)
    }

    /// bosun/before per repeat (paired by repeat).
    pub fn before_ratios(&self) -> Vec<f64> {
        paired(&self.bosun, &self.before)
    }
}

fn paired(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, b)| **b != 0.0)
        .map(|(a, b)| a / b)
        .collect()
}

/// The median of `values` (None when empty).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// The `q` quantile (0–1) of `durations`, nearest rank, in milliseconds.
pub fn quantile_ms(durations: &[Duration], q: f64) -> f64 {
    if durations.is_empty() {
        return 0.0;
    }
    let mut sorted: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn spread(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

fn figure(value: Option<f64>) -> String {
    match value {
        None => "—".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// A ratio with two decimals, or two significant digits below 0.1 (a
/// probe answered in 20 ms instead of 26 s is 0.00075x, not "0.00x").
fn ratio(r: f64) -> String {
    if r != 0.0 && r.abs() < 0.1 {
        let decimals = (-r.abs().log10().floor()) as usize + 1;
        format!("{r:.decimals$}")
    } else {
        format!("{r:.2}")
    }
}

fn ratio_cells(ratios: &[f64]) -> [String; 2] {
    [
        median(ratios).map_or("—".into(), |r| format!("{}x", ratio(r))),
        spread(ratios).map_or("—".into(), |(lo, hi)| {
            format!("{}–{}", ratio(lo), ratio(hi))
        }),
    ]
}

/// A row's cells: five, or eight with the before side.
fn cells(row: &Row, with_before: bool) -> Vec<String> {
    let [ratio, ratio_spread] = ratio_cells(&row.ratios());
    let mut cells = vec![
        format!("{} ({})", row.metric, row.unit),
        figure(median(&row.bosun)),
        figure(median(&row.native)),
        ratio,
        ratio_spread,
    ];
    if with_before {
        let [ratio, ratio_spread] = ratio_cells(&row.before_ratios());
        cells.insert(2, figure(median(&row.before)));
        cells.extend([ratio, ratio_spread]);
    }
    cells
}

const HEADER: [&str; 5] = [
    "metric",
    "bosun (median)",
    "native (median)",
    "bosun/native",
    "spread (min–max)",
];

/// The header: five columns, or eight when some row has a before side.
fn header(with_before: bool) -> Vec<String> {
    let mut header: Vec<String> = HEADER.map(str::to_owned).into();
    if with_before {
        header.insert(2, "bosun before (median)".into());
        header.extend(["bosun/before".into(), "spread (min–max)".into()]);
    }
    header
}

fn has_before(rows: &[Row]) -> bool {
    rows.iter().any(|r| !r.before.is_empty())
}

/// The table for a terminal.
pub fn text(rows: &[Row]) -> String {
    let with_before = has_before(rows);
    let all: Vec<Vec<String>> = std::iter::once(header(with_before))
        .chain(rows.iter().map(|row| cells(row, with_before)))
        .collect();
    let columns = all[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| all.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &all {
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i == 0 {
                let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(out, "{}{cell}  ", " ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

/// The table as Markdown, with a heading note.
pub fn markdown(rows: &[Row], note: &str) -> String {
    let with_before = has_before(rows);
    let header = header(with_before);
    let mut out = format!(
        "{note}\n\n| {} |\n|---|{}\n",
        header.join(" | "),
        "---:|".repeat(header.len() - 1)
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", cells(row, with_before).join(" | "));
    }
    out
}

/// Every figure, for tools.
pub fn json(rows: &[Row], note: &str, settings: Value) -> Value {
    json!({
        "note": note,
        "settings": settings,
        "rows": rows.iter().map(|row| {
            let ratios = row.ratios();
            let before_ratios = row.before_ratios();
            json!({
                "metric": row.metric,
                "unit": row.unit,
                "bosun": row.bosun,
                "native": row.native,
                "before": row.before,
                "ratios": ratios,
                "ratio_median": median(&ratios),
                "ratio_min": spread(&ratios).map(|s| s.0),
                "ratio_max": spread(&ratios).map(|s| s.1),
                "before_ratios": before_ratios,
                "before_ratio_median": median(&before_ratios),
            })
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_quantiles_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&ms, 0.5), 50.0);
        assert_eq!(quantile_ms(&ms, 0.99), 99.0);
        let row = Row::new(
            "rate".into(),
            "objects/s",
            vec![90.0, 100.0],
            vec![100.0, 100.0],
        );
        assert_eq!(row.ratios(), vec![0.9, 1.0]);
        assert!(
            markdown(std::slice::from_ref(&row), "n")
                .contains("| rate (objects/s) | 95.0 | 100 | 0.95x | 0.90–1.00 |")
        );
        let with_before = Row {
            before: vec![200.0, 200.0],
            ..row.clone()
        };
        assert_eq!(ratio(0.00075), "0.00075");
        assert_eq!(ratio(0.05), "0.050");
        assert_eq!(ratio(0.5), "0.50");
        let table = markdown(&[row, with_before], "n");
        assert!(
            table.contains("| rate (objects/s) | 95.0 | — | 100 | 0.95x | 0.90–1.00 | — | — |")
        );
        assert!(table.contains(
            "| rate (objects/s) | 95.0 | 200 | 100 | 0.95x | 0.90–1.00 | 0.47x | 0.45–0.50 |"
        ));
    }
}
