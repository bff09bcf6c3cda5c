//! Named backoff policies, so runs can be compared side by side.

use core::time::Duration;

use redial_core::{Backoff, Jitter};

/// A backoff policy with a name for tables and charts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Short name (`default`, `nojitter`, `equal`, `decorrelated`, or user-chosen).
    pub name: &'static str,
    /// The backoff it stands for.
    pub backoff: Backoff,
}

impl Policy {
    /// The names [`Policy::named`] knows, in display order.
    pub const NAMES: [&'static str; 4] = ["default", "nojitter", "equal", "decorrelated"];

    /// The core's default: 100 ms, ×2, capped at 30 s, full jitter.
    pub const DEFAULT: Policy = Policy {
        name: "default",
        backoff: Backoff::new(),
    };

    /// A preset by name, on top of `base` (which supplies initial, multiplier and cap);
    /// `None` for an unknown name.
    pub fn named(name: &str, base: Backoff) -> Option<Policy> {
        let (name, jitter) = match name {
            "default" => ("default", Jitter::Full),
            "nojitter" => ("nojitter", Jitter::None),
            "equal" => ("equal", Jitter::Equal),
            "decorrelated" => ("decorrelated", Jitter::Decorrelated),
            _ => return None,
        };
        Some(Policy {
            name,
            backoff: base.with_jitter(jitter),
        })
    }

    /// Every preset, on top of `base`.
    pub fn all(base: Backoff) -> Vec<Policy> {
        Self::NAMES
            .iter()
            .filter_map(|n| Policy::named(n, base))
            .collect()
    }

    /// The default policy with a different cap, for short experiments.
    pub fn with_cap(mut self, cap: Duration) -> Policy {
        self.backoff = self.backoff.with_cap(cap);
        self
    }
}
