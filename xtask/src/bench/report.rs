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
    use comfy_table::CellAlignment::{Left, Right};
    let columns = [
        ("benchmark", Left),
        ("value", Right),
        ("unit", Left),
        ("baseline", Right),
        ("ratio", Right),
        ("target", Right),
        ("met", Right),
        ("baseline", Left),
    ];
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING).set_header(columns.map(|(name, _)| name));
    for m in results {
        let met = if m.met { "yes" } else { "NO" };
        t.add_row([
            m.name.clone(),
            format!("{:.2}", m.value),
            m.unit.clone(),
            format!("{:.2}", m.baseline_value),
            format!("{:.2}", m.ratio),
            m.target.clone(),
            met.to_string(),
            m.baseline.clone(),
        ]);
    }
    for (column, (_, alignment)) in t.column_iter_mut().zip(columns) {
        column.set_padding((0, 2));
        column.set_cell_alignment(alignment);
    }
    format!("{}\n", t.trim_fmt())
}

/// The middle value of a benchmark's rounds (noise on a shared machine slows single rounds).
pub fn median<T: PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("measurements are comparable"));
    values.swap_remove(values.len() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_aligned_row_per_measurement() {
        let results = [
            Measurement::new("stats --json, 1000 endpoints", 9.5, "ms", "ip -s -j link", 190.0, Target::AtMost(1.0)),
            Measurement::new("drop rate", 1.2, "Mpps", "nftables", 1.0, Target::AtLeast(1.5)),
        ];
        let expected = "\
benchmark                     value  unit  baseline  ratio  target  met  baseline
stats --json, 1000 endpoints   9.50  ms      190.00   0.05    <= 1  yes  ip -s -j link
drop rate                      1.20  Mpps      1.00   1.20  >= 1.5   NO  nftables
";
        assert_eq!(table(&results), expected);
    }
}
