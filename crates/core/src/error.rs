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
    /// The peer broke the protocol (a malformed frame, a reply to nothing); retried, since a
    /// restarted or different server may behave.
    #[error("peer broke the protocol")]
    Protocol,
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

#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl NetError {
    /// Classifies an I/O error: network-class errors are retried; invalid input, permission
    /// and "unsupported" errors end the session.
    pub fn from_io(e: &std::io::Error) -> NetError {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::ConnectionRefused => NetError::Refused,
            ErrorKind::TimedOut => NetError::TimedOut,
            ErrorKind::ConnectionReset | ErrorKind::NotConnected | ErrorKind::UnexpectedEof => {
                NetError::Reset
            }
            ErrorKind::ConnectionAborted => NetError::Aborted,
            ErrorKind::BrokenPipe | ErrorKind::WriteZero => NetError::BrokenPipe,
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::NetworkDown => {
                NetError::Unreachable
            }
            ErrorKind::AddrNotAvailable | ErrorKind::AddrInUse => NetError::AddrUnavailable,
            ErrorKind::InvalidInput => NetError::InvalidAddress,
            ErrorKind::PermissionDenied => NetError::PermissionDenied,
            ErrorKind::Unsupported => NetError::Unsupported,
            _ => NetError::Other,
        }
    }

    /// Classifies a resolution (DNS or discovery) error: `InvalidInput` (a malformed name) is
    /// permanent, anything else is a retryable resolution failure.
    pub fn from_resolve_io(e: &std::io::Error) -> NetError {
        match e.kind() {
            std::io::ErrorKind::InvalidInput => NetError::InvalidAddress,
            _ => NetError::ResolveFailed,
        }
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
    /// The peer sent an in-order reply while nothing awaited one: it answered more than was
    /// asked.
    #[error("peer sent a reply but no request was waiting for one")]
    UnexpectedReply,
    /// The peer answered a key that nothing outstanding carries (an MQTT acknowledgement of a
    /// packet id never used).
    #[error("peer answered key {key}, which nothing outstanding carries")]
    UnknownKey {
        /// The key.
        key: u64,
    },
    /// Aggregates nested deeper than allowed.
    #[error("frame nested deeper than {max} levels")]
    TooDeep {
        /// The bound.
        max: usize,
    },
    /// A declared element count beyond its bound.
    #[error("frame declares {count} {what}, more than the maximum of {max}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// As declared (or counted).
        count: u64,
        /// The bound.
        max: u64,
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
    /// A write did not complete within the write deadline: the peer is not reading (its
    /// receive window is full), which is not the same as a silent peer.
    #[error("peer not reading: a write did not complete within {0:?}")]
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
    /// The endpoint left the service: the session moved to another
    /// ([`crate::Session::move_off`]).
    #[error("endpoint left the service: moving")]
    Moved,
    /// The user closed the session.
    #[error("closed by the user")]
    UserClose,
    /// The session gave up reconnecting.
    #[error("gave up")]
    GaveUp,
    /// An event arrived for a connection that is no longer current.
    #[error("stale connection")]
    Stale,
    /// The peer closed the conversation in its protocol (a WebSocket Close, an MQTT
    /// `DISCONNECT`, a NATS `-ERR` that ends the connection), with its code (0: none).
    #[error("peer closed the conversation (code {code})")]
    PeerClosed {
        /// The protocol's code.
        code: u16,
    },
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
    /// A duration below the floor where it still makes sense.
    #[error("{what} of {value:?} is below the minimum of {floor:?}")]
    BelowFloor {
        /// Which setting.
        what: &'static str,
        /// As configured.
        value: Duration,
        /// The floor.
        floor: Duration,
    },
    /// A bound beyond any machine's memory.
    #[error("{what} of {value} is above the maximum of {max}")]
    AboveCeiling {
        /// Which setting.
        what: &'static str,
        /// As configured.
        value: u64,
        /// The ceiling.
        max: u64,
    },
    /// A protocol setting is invalid (a heartbeat line with a line break, an empty ping).
    #[error("invalid protocol setting: {0}")]
    Protocol(&'static str),
    /// No address was given to a static target.
    #[error("the address list is empty")]
    NoAddresses,
}
