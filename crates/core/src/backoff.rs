//! How long to wait before the next attempt: exponential backoff with a cap and jitter.

use core::time::Duration;
use rand_core::RngCore;

use crate::error::ConfigError;
use crate::rng::uniform;
use crate::time::duration_nanos;

/// How a computed delay is randomised so that many clients do not retry in lockstep.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// No jitter: every client retries at exactly the same moments (use only in tests).
    None,
    /// Uniform in `[0, d]` ("full jitter"): spreads load best, may retry almost at once.
    Full,
    /// Uniform in `[d/2, d]` ("equal jitter"): never less than half the delay.
    Equal,
    /// Uniform in `[initial, 3 × previous delay]`, capped ("decorrelated jitter").
    Decorrelated,
    /// Uniform in `[d × (1 − f), d × (1 + f)]` for a fraction `f` in `0.0..=1.0`, capped.
    Proportional(f64),
}

/// An exponential backoff policy: `initial × multiplier^(n−1)` before the n-th retry, never
/// above `cap`, then jittered (and still never above `cap`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay before the first retry. Default 100 ms.
    pub initial: Duration,
    /// The growth factor per consecutive failure. Default 2.
    pub multiplier: f64,
    /// The largest delay ever returned. Default 30 s.
    pub cap: Duration,
    /// How each delay is randomised. Default [`Jitter::Full`].
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// 100 ms, ×2, capped at 30 s, full jitter.
    pub const fn new() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            cap: Duration::from_secs(30),
            jitter: Jitter::Full,
        }
    }

    /// Sets the first delay.
    pub const fn with_initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// Sets the growth factor.
    pub const fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets the cap.
    pub const fn with_cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// Sets the jitter.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Checks the policy makes sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.initial.is_zero() {
            return Err(ConfigError::ZeroInitialBackoff);
        }
        if self.cap < self.initial {
            return Err(ConfigError::CapBelowInitial {
                cap: self.cap,
                initial: self.initial,
            });
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ConfigError::BadMultiplier);
        }
        if let Jitter::Proportional(f) = self.jitter {
            if !(0.0..=1.0).contains(&f) {
                return Err(ConfigError::BadJitter);
            }
        }
        Ok(())
    }

    /// The un-jittered delay before retry number `n` (1-based; 0 is treated as 1).
    pub fn base(&self, n: u32) -> Duration {
        let cap = duration_nanos(self.cap);
        let mut d = duration_nanos(self.initial).min(cap);
        for _ in 1..n.max(1) {
            if d >= cap {
                break;
            }
            let next = d as f64 * self.multiplier;
            d = if next >= cap as f64 { cap } else { next as u64 };
        }
        Duration::from_nanos(d)
    }

    /// The jittered delay before retry number `n`, given the previous jittered delay (used by
    /// decorrelated jitter). Always within `[0, cap]`.
    pub fn delay<R: RngCore + ?Sized>(&self, n: u32, previous: Duration, rng: &mut R) -> Duration {
        let cap = duration_nanos(self.cap);
        let d = duration_nanos(self.base(n));
        let ns = match self.jitter {
            Jitter::None => d,
            Jitter::Full => uniform(rng, 0, d),
            Jitter::Equal => uniform(rng, d / 2, d),
            Jitter::Decorrelated => {
                let lo = duration_nanos(self.initial).min(cap);
                let hi = duration_nanos(previous).max(lo).saturating_mul(3).min(cap);
                uniform(rng, lo, hi)
            }
            Jitter::Proportional(f) => {
                let spread = (d as f64 * f.clamp(0.0, 1.0)) as u64;
                uniform(rng, d.saturating_sub(spread), d.saturating_add(spread))
            }
        };
        Duration::from_nanos(ns.min(cap))
    }

    /// The sequence of delays a session with this policy would wait through consecutive
    /// failures, for inspection and plotting.
    pub fn delays<R: RngCore>(self, rng: R) -> Delays<R> {
        Delays {
            policy: self,
            rng,
            n: 0,
            previous: Duration::ZERO,
        }
    }
}

/// An endless iterator over a policy's delays; see [`Backoff::delays`].
#[derive(Clone, Debug)]
pub struct Delays<R> {
    policy: Backoff,
    rng: R,
    n: u32,
    previous: Duration,
}

impl<R: RngCore> Iterator for Delays<R> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.n = self.n.saturating_add(1);
        self.previous = self.policy.delay(self.n, self.previous, &mut self.rng);
        Some(self.previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_from_100ms_to_the_30s_cap() {
        let b = Backoff::new().with_jitter(Jitter::None);
        let got: alloc::vec::Vec<_> = b.delays(SplitMix64::new(0)).take(12).collect();
        let want = [
            100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000,
        ];
        assert_eq!(got, want.map(MS).to_vec());
        assert_eq!(b.base(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn every_jitter_kind_stays_within_bounds() {
        for jitter in [
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
            Jitter::Proportional(0.2),
            Jitter::Proportional(1.0),
        ] {
            let b = Backoff::new().with_jitter(jitter);
            let mut rng = SplitMix64::new(42);
            let mut prev = Duration::ZERO;
            for n in 1..200 {
                let d = b.delay(n, prev, &mut rng);
                assert!(d <= b.cap, "{jitter:?} gave {d:?} above the cap");
                let base = b.base(n);
                match jitter {
                    Jitter::Full => assert!(d <= base),
                    Jitter::Equal => assert!(d >= base / 2 && d <= base),
                    Jitter::Decorrelated => assert!(d >= b.initial),
                    Jitter::Proportional(f) => {
                        assert!(d.as_secs_f64() >= base.as_secs_f64() * (1.0 - f) - 1e-9)
                    }
                    Jitter::None => {}
                }
                prev = d;
            }
        }
    }

    #[test]
    fn full_jitter_actually_spreads() {
        let b = Backoff::new();
        let mut rng = SplitMix64::new(3);
        let samples: alloc::vec::Vec<_> = (0..1000).map(|_| b.delay(5, MS(0), &mut rng)).collect();
        let below_half = samples.iter().filter(|d| **d < MS(800)).count();
        assert!((400..600).contains(&below_half), "{below_half}");
    }

    #[test]
    fn validation_catches_nonsense() {
        let b = Backoff::new();
        assert_eq!(
            b.with_initial(Duration::ZERO).validate(),
            Err(ConfigError::ZeroInitialBackoff)
        );
        assert!(matches!(
            b.with_cap(MS(50)).validate(),
            Err(ConfigError::CapBelowInitial { .. })
        ));
        assert_eq!(
            b.with_multiplier(0.5).validate(),
            Err(ConfigError::BadMultiplier)
        );
        assert_eq!(
            b.with_multiplier(f64::NAN).validate(),
            Err(ConfigError::BadMultiplier)
        );
        assert_eq!(
            b.with_jitter(Jitter::Proportional(1.5)).validate(),
            Err(ConfigError::BadJitter)
        );
        assert_eq!(b.validate(), Ok(()));
    }
}
