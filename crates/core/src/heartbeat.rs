//! Round-trip-time estimation from PING/PONG, and the liveness deadline derived from it.

use core::time::Duration;

use crate::config::Heartbeat;

/// Smoothed RTT and its variation, as TCP computes them (RFC 6298).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    smoothed: Option<Duration>,
    variance: Duration,
    latest: Option<Duration>,
}

impl RttEstimator {
    /// Adds one sample.
    pub fn sample(&mut self, rtt: Duration) {
        self.latest = Some(rtt);
        match self.smoothed {
            None => {
                self.smoothed = Some(rtt);
                self.variance = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.variance = (self.variance * 3 + delta) / 4;
                self.smoothed = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed RTT, once a sample exists.
    pub fn smoothed(&self) -> Option<Duration> {
        self.smoothed
    }

    /// The RTT variation (zero before the first sample).
    pub fn variance(&self) -> Duration {
        self.variance
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// The heartbeat timeout in force: the configured one, or, when adaptive, `max(floor,
    /// srtt + 4 × rttvar)` capped by the configured one.
    pub fn timeout(&self, hb: &Heartbeat) -> Duration {
        match (hb.adaptive_floor, self.smoothed) {
            (Some(floor), Some(srtt)) => (srtt + self.variance * 4).clamp(floor, hb.timeout),
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
