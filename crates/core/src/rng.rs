//! The default jitter source: SplitMix64, seeded from the config.
//!
//! Any [`rand_core::RngCore`] can be used instead through `Session::with_rng`; this one is
//! small, fast, and makes the default session deterministic for a given seed.

use rand_core::{impls, RngCore};

/// SplitMix64 (Steele, Lea, Flood 2014): one `u64` of state, good statistical quality for
/// jitter, no allocation.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole output is determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }
}

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        impls::fill_bytes_via_next(self, dest)
    }
}

/// A uniform value in `[lo, hi]` (inclusive); `lo` when the range is empty.
pub(crate) fn uniform<R: RngCore + ?Sized>(rng: &mut R, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    let span = (hi - lo) as u128 + 1;
    // Lemire's multiply-shift: unbiased enough for jitter, no division.
    lo + ((rng.next_u64() as u128 * span) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(1);
        let (mut min, mut max) = (u64::MAX, 0);
        for _ in 0..10_000 {
            let v = uniform(&mut r, 10, 20);
            assert!((10..=20).contains(&v));
            min = min.min(v);
            max = max.max(v);
        }
        assert_eq!((min, max), (10, 20));
        assert_eq!(uniform(&mut r, 5, 5), 5);
        assert_eq!(uniform(&mut r, 9, 3), 9);
    }
}
