//! Counters a session keeps about itself.

use core::time::Duration;

/// A snapshot of a session's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Dials started.
    pub attempts: u64,
    /// Failed attempts (resolve or dial failures, connect timeouts, connections lost before
    /// they were stable).
    pub failures: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    /// Events that arrived tagged with an epoch that is no longer current, and were ignored.
    pub stale_events: u64,
    /// Connections declared dead by the heartbeat or read-idle deadline.
    pub liveness_timeouts: u64,
    /// Connections killed by the write deadline.
    pub write_timeouts: u64,
    /// PINGs sent.
    pub pings: u64,
    /// PONGs received for our PINGs.
    pub pongs: u64,
    /// Bytes reported read.
    pub bytes_read: u64,
    /// Messages delivered (here and below, a [`crate::Batch`] counts as one message).
    pub delivered: u64,
    /// Messages in doubt.
    pub in_doubt: u64,
    /// Messages abandoned.
    pub abandoned: u64,
    /// Messages rejected at enqueue.
    pub rejected: u64,
    /// Replays of idempotent messages onto a later connection.
    pub replayed: u64,
    /// Latest RTT sample.
    pub rtt: Option<Duration>,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
}
