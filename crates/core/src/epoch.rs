//! Connection epochs.
//!
//! Every attempt (resolve, then dial) gets a fresh [`Epoch`]. Every event that comes from a
//! socket carries the epoch it belongs to, so an event from an old socket can be recognised and
//! kept away from the current connection.

use core::fmt;

/// Identity of one connection attempt and of the socket it produced.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(u64);

impl Epoch {
    /// The epoch that no attempt ever carries; events tagged with it are always stale.
    pub const NONE: Epoch = Epoch(0);

    /// The raw number (1 for the first attempt, increasing by one per attempt).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Builds an epoch from a raw number; for replaying recorded traces and for tests.
    pub const fn from_raw(raw: u64) -> Self {
        Epoch(raw)
    }

    pub(crate) fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
