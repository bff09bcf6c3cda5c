//! The simulator's own seeded randomness (network jitter, start times, fault generation).

use core::time::Duration;

use rand_core::RngCore;
use redial_core::SplitMix64;

/// A small seeded generator with the helpers the simulator needs.
#[derive(Clone, Debug)]
pub struct SimRng(SplitMix64);

impl SimRng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(SplitMix64::new(seed))
    }

    /// The next raw 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..=n`.
    pub fn upto(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * (n as u128 + 1)) >> 64) as u64
    }

    /// Uniform in `[0, d]`.
    pub fn duration_upto(&mut self, d: Duration) -> Duration {
        Duration::from_nanos(self.upto(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// Uniform in `[lo, hi]` (`lo` when the range is empty).
    pub fn duration_between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + self.duration_upto(hi.saturating_sub(lo))
    }
}

/// Derives an independent seed for item `index` from a run seed (one SplitMix64 step over
/// the mixed pair, so neighbouring indices get unrelated streams).
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    SplitMix64::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}
