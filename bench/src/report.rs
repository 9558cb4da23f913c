//! The harness's results: one row per measured figure, printed as a table for people
//! and written as JSON for `--compare`.

use std::time::Duration;

use serde_json::{Value, json};

/// One figure. Latency rows carry percentiles; throughput rows a rate; other rows a
/// value with its unit. Every row carries its error count.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub name: String,
    pub n: usize,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub per_s: Option<f64>,
    pub value: Option<(f64, &'static str)>,
    pub recall_at_10: Option<f64>,
    pub errors: usize,
}

impl Row {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Percentiles of `samples` (nearest rank).
    pub fn latencies(mut self, samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        self.n = sorted.len();
        if !sorted.is_empty() {
            let pick = |p: f64| {
                sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
            };
            self.p50_ms = Some(pick(0.5));
            self.p90_ms = Some(pick(0.9));
            self.p99_ms = Some(pick(0.99));
        }
        self
    }

    pub fn rate(mut self, count: usize, elapsed: Duration) -> Self {
        self.per_s = Some(count as f64 / elapsed.as_secs_f64().max(1e-9));
        if self.n == 0 {
            self.n = count;
        }
        self
    }

    pub fn value(mut self, value: f64, unit: &'static str) -> Self {
        self.value = Some((value, unit));
        self
    }

    pub fn errors(mut self, errors: usize) -> Self {
        self.errors = errors;
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "n": self.n,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "per_s": self.per_s,
            "value": self.value.map(|v| v.0),
            "unit": self.value.map(|v| v.1),
            "recall_at_10": self.recall_at_10,
            "errors": self.errors,
        })
    }
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

/// The rows as a Markdown table (readable in a terminal, pasteable into BENCHMARKS.md).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | n | p50 ms | p90 ms | p99 ms | per s | value | recall@10 | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.name,
            row.n,
            cell(row.p50_ms, 2),
            cell(row.p90_ms, 2),
            cell(row.p99_ms, 2),
            cell(row.per_s, 0),
            row.value
                .map_or_else(|| "-".into(), |(v, unit)| format!("{v:.2} {unit}")),
            cell(row.recall_at_10, 3),
            row.errors
        ));
    }
    out
}

/// Ratios B/A of every figure two reports share, by row name.
pub fn compare(a: &Value, b: &Value) -> String {
    let empty = Vec::new();
    let rows_a = a["rows"].as_array().unwrap_or(&empty);
    let rows_b = b["rows"].as_array().unwrap_or(&empty);
    let mut out = format!(
        "A: {} ({})\nB: {} ({})\n\n| scenario | figure | A | B | B/A |\n|---|---|---:|---:|---:|\n",
        a["label"].as_str().unwrap_or("?"),
        a["date"].as_str().unwrap_or("?"),
        b["label"].as_str().unwrap_or("?"),
        b["date"].as_str().unwrap_or("?"),
    );
    for row_a in rows_a {
        let Some(row_b) = rows_b.iter().find(|r| r["name"] == row_a["name"]) else {
            continue;
        };
        for figure in [
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "per_s",
            "value",
            "recall_at_10",
            "errors",
        ] {
            let (Some(x), Some(y)) = (row_a[figure].as_f64(), row_b[figure].as_f64()) else {
                continue;
            };
            if figure == "errors" && x == 0.0 && y == 0.0 {
                continue;
            }
            let ratio = if x == 0.0 {
                "-".to_owned()
            } else {
                format!("{:.2}", y / x)
            };
            out.push_str(&format!(
                "| {} | {figure} | {x:.2} | {y:.2} | {ratio} |\n",
                row_a["name"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}
