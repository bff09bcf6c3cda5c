//! Every error and reason the core reports, each a small `Copy` value.

use core::time::Duration;

/// A network error, classified so the session knows whether retrying can help.
///
/// Adapters map their platform errors onto these classes (`io::ErrorKind` in the std adapters)
/// and log the original error text themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The peer refused the connection (nothing listening).
    #[error("connection refused")]
    Refused,
    /// The per-attempt connect deadline passed.
    #[error("connect timed out")]
    ConnectTimeout,
    /// An operation timed out inside the network stack (e.g. TCP_USER_TIMEOUT, keepalive).
    #[error("timed out")]
    TimedOut,
    /// No route to the network or host.
    #[error("network or host unreachable")]
    Unreachable,
    /// The peer reset the connection.
    #[error("connection reset")]
    Reset,
    /// The connection was aborted locally.
    #[error("connection aborted")]
    Aborted,
    /// Writing to a connection whose peer has gone.
    #[error("broken pipe")]
    BrokenPipe,
    /// Name resolution or discovery failed.
    #[error("address resolution failed")]
    ResolveFailed,
    /// Name resolution or discovery returned no address.
    #[error("resolution returned no addresses")]
    NoAddresses,
    /// A local address or port was unavailable (e.g. ephemeral ports exhausted).
    #[error("local address unavailable")]
    AddrUnavailable,
    /// Another error of the network class; retried.
    #[error("network error")]
    Other,
    /// The target address is invalid; never retried.
    #[error("invalid address")]
    InvalidAddress,
    /// The operating system denied the operation; never retried.
    #[error("permission denied")]
    PermissionDenied,
    /// The operation is not supported here; never retried.
    #[error("unsupported operation")]
    Unsupported,
}

impl NetError {
    /// Whether a new attempt can succeed where this one failed. Only network-class errors are
    /// retried; configuration and permission errors end the session.
    pub const fn is_retryable(self) -> bool {
        !matches!(
            self,
            NetError::InvalidAddress | NetError::PermissionDenied | NetError::Unsupported
        )
    }
}

/// Inbound or outbound bytes that break the framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame is larger than the codec's maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The frame's size as far as it is known (at least `max + 1`).
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The bytes do not follow the framing.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer acknowledged more messages than were written to it.
    #[error("peer acknowledged {acked} messages but only {in_flight} were in flight")]
    UnexpectedAck {
        /// Acknowledgements received.
        acked: usize,
        /// Messages that could have been acknowledged.
        in_flight: usize,
    },
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// No byte (and no PONG) arrived within heartbeat interval + timeout.
    #[error("heartbeat timed out after {silent_for:?} of silence")]
    HeartbeatTimeout {
        /// Time since the last byte read.
        silent_for: Duration,
    },
    /// Nothing was read for the read-idle deadline.
    #[error("read idle for {silent_for:?}")]
    ReadIdle {
        /// Time since the last byte read.
        silent_for: Duration,
    },
    /// A write did not complete within the write deadline.
    #[error("write did not complete within {0:?}")]
    WriteTimeout(Duration),
    /// The peer closed its side.
    #[error("peer closed the connection")]
    Eof,
    /// A network error on the established connection.
    #[error("i/o error: {0}")]
    Io(NetError),
    /// The peer broke the framing; the connection cannot be trusted any more.
    #[error("protocol error: {0}")]
    Protocol(FrameError),
    /// The connect deadline passed before the dial finished.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The user asked for a reconnect.
    #[error("reconnect requested")]
    ReconnectRequested,
    /// The user closed the session.
    #[error("closed by the user")]
    UserClose,
    /// The session gave up reconnecting.
    #[error("gave up")]
    GaveUp,
    /// An event arrived for a connection that is no longer current.
    #[error("stale connection")]
    Stale,
}

/// Why a message was refused at enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// The queue is at its message-count or byte bound.
    #[error("queue full")]
    QueueFull,
    /// The message alone is larger than allowed.
    #[error("message of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The message's size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The session is closing or closed.
    #[error("session closed")]
    Closed,
    /// The codec cannot encode this payload (for example a line break inside a line).
    #[error("message cannot be encoded: {0}")]
    Unencodable(FrameError),
    /// A batch with no message in it.
    #[error("empty batch")]
    EmptyBatch,
}

/// Why a message was abandoned before it was ever written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum AbandonReason {
    /// The session gave up reconnecting.
    #[error("session gave up")]
    GaveUp,
    /// The user closed the session.
    #[error("session closed")]
    Closed,
    /// A graceful close reached its drain deadline.
    #[error("drain deadline passed")]
    DrainTimeout,
    /// The queue was full and this, the oldest unsent message, was evicted for a newer one.
    #[error("evicted from a full queue")]
    Evicted,
}

/// An invalid configuration, found before anything runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The initial backoff delay is zero.
    #[error("initial backoff must be greater than zero")]
    ZeroInitialBackoff,
    /// The cap is below the initial delay.
    #[error("backoff cap ({cap:?}) is below the initial delay ({initial:?})")]
    CapBelowInitial {
        /// The configured cap.
        cap: Duration,
        /// The configured initial delay.
        initial: Duration,
    },
    /// The multiplier is below 1 or not a finite number.
    #[error("backoff multiplier must be a finite number >= 1.0")]
    BadMultiplier,
    /// The proportional jitter fraction is outside `0.0..=1.0`.
    #[error("proportional jitter must be within 0.0..=1.0")]
    BadJitter,
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// The adaptive heartbeat floor exceeds the heartbeat timeout.
    #[error("adaptive timeout floor ({floor:?}) exceeds the heartbeat timeout ({timeout:?})")]
    FloorAboveTimeout {
        /// The configured floor.
        floor: Duration,
        /// The configured timeout.
        timeout: Duration,
    },
    /// `max_failures` is zero: the session would give up before trying.
    #[error("max_failures must be at least 1")]
    ZeroMaxFailures,
    /// A queue bound is zero.
    #[error("queue bound {0} must be greater than zero")]
    ZeroQueueBound(&'static str),
    /// The largest message cannot fit in the queue's byte bound.
    #[error("max message size ({message}) exceeds the queue byte bound ({queue})")]
    MessageAboveQueue {
        /// The configured maximum message size.
        message: usize,
        /// The queue's byte bound.
        queue: usize,
    },
    /// A batch bound is zero.
    #[error("batch bound {0} must be greater than zero")]
    ZeroBatchBound(&'static str),
    /// No address was given to a static target.
    #[error("the address list is empty")]
    NoAddresses,
}
