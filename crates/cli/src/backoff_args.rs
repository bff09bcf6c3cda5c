//! Backoff flags shared by `redial pipe` and `redial sim`.

use std::time::Duration;

use redial_core::{Backoff, Jitter};

use crate::duration::parse_duration;

/// `--initial`, `--multiplier`, `--cap`.
#[derive(Debug, clap::Args)]
pub struct BackoffArgs {
    /// First backoff delay.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub initial: Duration,
    /// Backoff growth per failure.
    #[arg(long, default_value_t = 2.0)]
    pub multiplier: f64,
    /// Largest backoff delay.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub cap: Duration,
}

impl BackoffArgs {
    /// The policy these flags describe, with `jitter`.
    pub fn backoff(&self, jitter: Jitter) -> Backoff {
        Backoff::new()
            .with_initial(self.initial)
            .with_multiplier(self.multiplier)
            .with_cap(self.cap)
            .with_jitter(jitter)
    }
}

/// Parses a jitter kind: `full`, `none`, `equal`, `decorrelated`, or a fraction in `0..=1`
/// for proportional jitter (`0.2` is ±20%).
pub fn parse_jitter(s: &str) -> Result<Jitter, String> {
    Ok(match s {
        "full" => Jitter::Full,
        "none" => Jitter::None,
        "equal" => Jitter::Equal,
        "decorrelated" => Jitter::Decorrelated,
        f => match f.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Jitter::Proportional(v),
            _ => {
                return Err(format!(
                    "unknown jitter '{s}' (full, none, equal, decorrelated, or a fraction in 0..=1)"
                ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitters_parse() {
        assert_eq!(parse_jitter("none"), Ok(Jitter::None));
        assert_eq!(parse_jitter("0.2"), Ok(Jitter::Proportional(0.2)));
        assert!(parse_jitter("2").is_err());
    }
}
