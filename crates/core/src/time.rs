//! The core's own monotonic clock type.
//!
//! The core never reads a clock. Adapters pick an origin (usually the moment the session was
//! created) and hand the core [`Instant`]s measured from it. A `now` that goes backwards is
//! clamped by the session, never trusted.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in nanoseconds since an origin chosen by the adapter.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);
    /// The furthest representable instant (about 584 years after the origin).
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed since the origin.
    pub const fn since_origin(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }
}

#[cfg(feature = "std")]
impl Instant {
    /// The core instant of `now` on a std clock whose origin is `origin` (a `now` before the
    /// origin is the origin; one past the core's range is [`Instant::MAX`]).
    pub fn from_std(origin: std::time::Instant, now: std::time::Instant) -> Instant {
        Instant(duration_nanos(now.saturating_duration_since(origin)))
    }

    /// This instant on the std clock whose origin is `origin` (`None` past the std clock's
    /// range: a deadline that never comes).
    pub fn to_std(self, origin: std::time::Instant) -> Option<std::time::Instant> {
        origin.checked_add(self.since_origin())
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX`.
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    // `as_secs() * 1e9 + subsec_nanos()` in u64, without the u128 of `Duration::as_nanos`.
    d.as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(u64::from(d.subsec_nanos())))
        .unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.since_origin();
        write!(f, "T+{}.{:09}s", d.as_secs(), d.subsec_nanos())
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.since_origin();
        write!(f, "{}.{:03}s", d.as_secs(), d.subsec_millis())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "std")]
    #[test]
    fn std_instants_round_trip_and_clamp() {
        let origin = std::time::Instant::now();
        let later = origin + Duration::from_millis(1500);
        let t = Instant::from_std(origin, later);
        assert_eq!(t, Instant::from_millis(1500));
        assert_eq!(t.to_std(origin), Some(later));
        // Before the origin: the origin, never a wrapped-around far future.
        let before = origin.checked_sub(Duration::from_secs(1));
        if let Some(before) = before {
            assert_eq!(Instant::from_std(origin, before), Instant::ZERO);
        }
    }

    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!(t + Duration::from_millis(5), Instant::from_millis(10));
        assert_eq!(Instant::from_millis(3) - t, Duration::ZERO);
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(
            t.saturating_duration_since(Instant::ZERO),
            Duration::from_millis(5)
        );
    }
}
