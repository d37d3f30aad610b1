//! One benchmark's result, as written to target/bench/results.json and printed as a table.
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Measurement {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// What vland is compared with, in this same run.
    pub baseline: String,
    pub baseline_value: f64,
    /// value / baseline_value.
    pub ratio: f64,
    /// The target, as a condition on the ratio (e.g. "<= 1.5").
    pub target: String,
    pub met: bool,
}

pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Measurement {
    pub fn new(name: &str, value: f64, unit: &str, baseline: &str, baseline_value: f64, target: Target) -> Self {
        let ratio = if baseline_value == 0.0 { f64::INFINITY } else { value / baseline_value };
        let (target, met) = match target {
            Target::AtMost(t) => (format!("<= {t}"), ratio <= t),
            Target::AtLeast(t) => (format!(">= {t}"), ratio >= t),
        };
        Measurement { name: name.into(), value, unit: unit.into(), baseline: baseline.into(), baseline_value, ratio, target, met }
    }
}

pub fn table(results: &[Measurement]) -> String {
    let mut out = format!(
        "{:<40} {:>12} {:<8} {:>12} {:>8} {:>8} {:>4}  baseline\n",
        "benchmark", "value", "unit", "baseline", "ratio", "target", "met"
    );
    for m in results {
        out.push_str(&format!(
            "{:<40} {:>12.2} {:<8} {:>12.2} {:>8.2} {:>8} {:>4}  {}\n",
            m.name,
            m.value,
            m.unit,
            m.baseline_value,
            m.ratio,
            m.target,
            if m.met { "yes" } else { "NO" },
            m.baseline
        ));
    }
    out
}

/// The middle value of a benchmark's rounds (noise on a shared machine slows single rounds).
pub fn median<T: PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("measurements are comparable"));
    values.swap_remove(values.len() / 2)
}
