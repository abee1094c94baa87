//! The result: rows of figures for both sides over the repeats, each with
//! the bosun/native ratio (median and spread), as a table on the terminal,
//! Markdown and JSON.

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
}

impl Row {
    /// bosun/native per repeat (paired by repeat).
    pub fn ratios(&self) -> Vec<f64> {
        self.bosun
            .iter()
            .zip(&self.native)
            .filter(|(_, n)| **n != 0.0)
            .map(|(b, n)| b / n)
            .collect()
    }
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

fn cells(row: &Row) -> [String; 5] {
    let ratios = row.ratios();
    [
        format!("{} ({})", row.metric, row.unit),
        figure(median(&row.bosun)),
        figure(median(&row.native)),
        median(&ratios).map_or("—".into(), |r| format!("{r:.2}x")),
        spread(&ratios).map_or("—".into(), |(lo, hi)| format!("{lo:.2}–{hi:.2}")),
    ]
}

const HEADER: [&str; 5] = [
    "metric",
    "bosun (median)",
    "native (median)",
    "bosun/native",
    "spread (min–max)",
];

/// The table for a terminal.
pub fn text(rows: &[Row]) -> String {
    let all: Vec<[String; 5]> = std::iter::once(HEADER.map(str::to_owned))
        .chain(rows.iter().map(cells))
        .collect();
    let widths: Vec<usize> = (0..5)
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
    let mut out = format!(
        "{note}\n\n| {} |\n|---|---:|---:|---:|---:|\n",
        HEADER.join(" | ")
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", cells(row).join(" | "));
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
            json!({
                "metric": row.metric,
                "unit": row.unit,
                "bosun": row.bosun,
                "native": row.native,
                "ratios": ratios,
                "ratio_median": median(&ratios),
                "ratio_min": spread(&ratios).map(|s| s.0),
                "ratio_max": spread(&ratios).map(|s| s.1),
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
        let row = Row {
            metric: "rate".into(),
            unit: "objects/s",
            bosun: vec![90.0, 100.0],
            native: vec![100.0, 100.0],
        };
        assert_eq!(row.ratios(), vec![0.9, 1.0]);
        assert!(
            markdown(&[row], "n").contains("| rate (objects/s) | 95.0 | 100 | 0.95x | 0.90–1.00 |")
        );
    }
}
