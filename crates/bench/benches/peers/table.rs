//! One side-by-side table: per-round rates of every side, ratios taken round by round.

use std::fmt::Write as _;

use redial_bench::Spread;

/// Rates (units per second) of each side, one entry per round, in round order.
pub struct Table {
    /// Side names; side 0 is the baseline of the "vs baseline" column.
    pub names: Vec<String>,
    /// `rates[side][round]`.
    pub rates: Vec<Vec<f64>>,
}

impl Table {
    /// An empty table of these sides.
    pub fn new(names: &[&str]) -> Table {
        Table {
            names: names.iter().map(|s| s.to_string()).collect(),
            rates: vec![Vec::new(); names.len()],
        }
    }

    /// Records a round's rate of `side`.
    pub fn push(&mut self, side: usize, rate: f64) {
        self.rates[side].push(rate);
    }

    /// Side `a` over side `b`, round by round (both measured in the same round).
    pub fn ratio(&self, a: usize, b: usize) -> Spread {
        let r: Vec<f64> = self.rates[a]
            .iter()
            .zip(&self.rates[b])
            .map(|(x, y)| x / y)
            .collect();
        Spread::of(&r)
    }

    /// The markdown table: rate and ratio to side 0 for every side, with `unit` in the header.
    pub fn markdown(&self, unit: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "| side | {unit}/s median (min – max) | vs {} median (min – max) |\n|---|---|---|",
            self.names[0]
        );
        for (i, name) in self.names.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {name} | {} | {} |",
                Spread::of(&self.rates[i]).show(0),
                self.ratio(i, 0).show(3)
            );
        }
        md
    }
}
