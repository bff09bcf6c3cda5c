//! Round-trip-time estimation from PING/PONG, and the liveness deadline derived from it.

use core::time::Duration;

use crate::config::Heartbeat;
use crate::time::duration_nanos;

/// Smoothed RTT and its variation, as TCP computes them (RFC 6298).
///
/// Kept in nanoseconds (durations beyond `u64::MAX` nanoseconds, about 584 years, saturate),
/// so a sample costs a few integer operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    /// Whether a sample exists (`smoothed` and `latest` are meaningful).
    sampled: bool,
    smoothed: u64,
    variance: u64,
    latest: u64,
}

impl RttEstimator {
    /// Adds one sample.
    pub fn sample(&mut self, rtt: Duration) {
        let rtt = duration_nanos(rtt);
        self.latest = rtt;
        if self.sampled {
            // In u128: `7 × srtt` may not fit a u64; the results never exceed their inputs.
            let (srtt, var) = (u128::from(self.smoothed), u128::from(self.variance));
            let delta = u128::from(self.smoothed.abs_diff(rtt));
            self.variance = ((var * 3 + delta) / 4) as u64;
            self.smoothed = ((srtt * 7 + u128::from(rtt)) / 8) as u64;
        } else {
            self.sampled = true;
            self.smoothed = rtt;
            self.variance = rtt / 2;
        }
    }

    /// The smoothed RTT, once a sample exists.
    pub fn smoothed(&self) -> Option<Duration> {
        self.sampled.then(|| Duration::from_nanos(self.smoothed))
    }

    /// The RTT variation (zero before the first sample).
    pub fn variance(&self) -> Duration {
        Duration::from_nanos(self.variance)
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<Duration> {
        self.sampled.then(|| Duration::from_nanos(self.latest))
    }

    /// The heartbeat timeout in force: the configured one, or, when adaptive, `max(floor,
    /// srtt + 4 × rttvar)` capped by the configured one.
    pub fn timeout(&self, hb: &Heartbeat) -> Duration {
        match hb.adaptive_floor {
            Some(floor) if self.sampled => Duration::from_nanos(
                self.smoothed
                    .saturating_add(self.variance.saturating_mul(4))
                    .max(duration_nanos(floor))
                    .min(duration_nanos(hb.timeout)),
            ),
            _ => hb.timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn smooths_like_rfc6298() {
        let mut r = RttEstimator::default();
        r.sample(MS(100));
        assert_eq!((r.smoothed(), r.variance()), (Some(MS(100)), MS(50)));
        r.sample(MS(200));
        assert_eq!(r.variance(), MS(62) + Duration::from_micros(500));
        assert_eq!(r.smoothed(), Some(MS(112) + Duration::from_micros(500)));
        assert_eq!(r.latest(), Some(MS(200)));
    }

    #[test]
    fn adaptive_timeout_has_floor_and_ceiling() {
        let hb = Heartbeat {
            interval: MS(1000),
            timeout: MS(2000),
            adaptive_floor: Some(MS(300)),
        };
        let mut r = RttEstimator::default();
        assert_eq!(r.timeout(&hb), MS(2000));
        r.sample(MS(10));
        assert_eq!(r.timeout(&hb), MS(300));
        for _ in 0..3 {
            r.sample(MS(900));
        }
        assert_eq!(r.timeout(&hb), MS(2000));
        let fixed = Heartbeat {
            adaptive_floor: None,
            ..hb
        };
        assert_eq!(r.timeout(&fixed), MS(2000));
    }
}
