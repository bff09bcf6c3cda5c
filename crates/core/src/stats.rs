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
    /// Inputs (and reads) tagged with an epoch that is no longer current, ignored.
    pub stale_inputs: u64,
    /// Connections declared dead by the heartbeat or read-idle deadline.
    pub liveness_timeouts: u64,
    /// Connections killed by the write deadline.
    pub write_timeouts: u64,
    /// PINGs sent.
    pub pings: u64,
    /// Answers to our PINGs.
    pub pongs: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes handed to writes.
    pub bytes_written: u64,
    /// Replies attributed to messages.
    pub replies: u64,
    /// Inbound messages handed to the user (for a subscription or the inbound stream).
    pub messages_received: u64,
    /// Inbound messages dropped because nothing wanted them (an ended subscription).
    pub messages_dropped: u64,
    /// Replies that came after their message had timed out, dropped.
    pub late_replies: u64,
    /// Messages whose reply did not come within the request timeout.
    pub request_timeouts: u64,
    /// Times reading was paused because the user had not taken what was received.
    pub read_pauses: u64,
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
    /// Moves off an endpoint that left the service ([`crate::Session::move_off`]).
    pub moves: u64,
    /// Attempts a shared retry budget refused ([`crate::Session::defer_attempt`]).
    pub deferred: u64,
    /// Latest RTT sample.
    pub rtt: Option<Duration>,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
}
