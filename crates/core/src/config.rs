//! Session configuration: plain data with defaults, `with_*` builders and validation.

use core::time::Duration;

use crate::backoff::Backoff;
use crate::error::ConfigError;

/// When the session stops retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GiveUp {
    /// Consecutive failed attempts that may give up. `None`: no count limit. Default 10.
    pub max_failures: Option<u32>,
    /// Time since the first failure of the current streak that may give up. `None`: no time
    /// limit. Default 5 minutes.
    pub max_elapsed: Option<Duration>,
    /// Whether both limits (default) or either one must be reached.
    pub when: GiveUpWhen,
}

/// How the two give-up limits combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUpWhen {
    /// Give up when every configured limit is reached.
    Both,
    /// Give up as soon as any configured limit is reached.
    Either,
}

impl GiveUp {
    /// Never give up.
    pub const NEVER: GiveUp = GiveUp {
        max_failures: None,
        max_elapsed: None,
        when: GiveUpWhen::Both,
    };

    /// Whether a streak of `failures` that has lasted `elapsed` ends the session.
    pub fn reached(&self, failures: u32, elapsed: Duration) -> bool {
        let count = self.max_failures.map(|m| failures >= m);
        let time = self.max_elapsed.map(|m| elapsed >= m);
        match (self.when, count, time) {
            (_, None, None) => false,
            (GiveUpWhen::Both, c, t) => c.unwrap_or(true) && t.unwrap_or(true),
            (GiveUpWhen::Either, c, t) => c.unwrap_or(false) || t.unwrap_or(false),
        }
    }
}

impl Default for GiveUp {
    fn default() -> Self {
        GiveUp {
            max_failures: Some(10),
            max_elapsed: Some(Duration::from_secs(300)),
            when: GiveUpWhen::Both,
        }
    }
}

/// Application-level heartbeat: PING after `interval` without reading anything; the
/// connection is dead when nothing at all is read for `interval + timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Read silence after which a PING is sent. Default 5 s.
    pub interval: Duration,
    /// Further silence after which the connection is declared dead. Default 5 s.
    pub timeout: Duration,
    /// With `Some(floor)`, the timeout shrinks to `max(floor, srtt + 4 × rttvar)` once RTT
    /// samples exist (never above `timeout`). Default `None`.
    pub adaptive_floor: Option<Duration>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            adaptive_floor: None,
        }
    }
}

/// What happens when a message arrives at a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse the new message (it comes back as rejected). Default.
    Reject,
    /// Evict the oldest never-written message (it comes back as abandoned).
    EvictOldest,
}

/// Bounds of the outbound queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Messages held at most (queued plus in flight; a [`crate::Batch`] counts once).
    /// Default 1024.
    pub max_messages: usize,
    /// Payload bytes held at most (a batch counts its records). Default 4 MiB.
    pub max_bytes: usize,
    /// Largest single message. Default 1 MiB.
    pub max_message: usize,
    /// What a full queue does. Default [`Overflow::Reject`].
    pub overflow: Overflow,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_messages: 1024,
            max_bytes: 4 << 20,
            max_message: 1 << 20,
            overflow: Overflow::Reject,
        }
    }
}

/// Bounds of what the session has handed to the user and the user has not taken yet
/// ([`crate::Session::inbound_taken`]): past either, the session stops reading, so TCP pushes
/// back on the peer instead of memory growing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundLimits {
    /// Units (messages and replies) not yet taken. Default 1024.
    pub max_messages: usize,
    /// Their bytes. Default 8 MiB (one unit may go over it: it is never split).
    pub max_bytes: usize,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            max_messages: 1024,
            max_bytes: 8 << 20,
        }
    }
}

/// The shortest heartbeat interval or timeout accepted: below it a heartbeat is a busy loop.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(1);
/// The largest message count accepted for a queue bound.
pub const MAX_QUEUE_MESSAGES: usize = 1 << 24;
/// The largest byte count accepted for a queue bound (1 TiB): more is a typo, not a plan.
pub const MAX_QUEUE_BYTES: usize = 1 << 40;

/// Everything that shapes a session. Build with [`Config::default`] and the `with_*` methods,
/// or set fields directly; [`Config::validate`] (called by `Session::new`) rejects nonsense.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Delays between attempts.
    pub backoff: Backoff,
    /// When to stop retrying.
    pub give_up: GiveUp,
    /// A connection must stay up this long before the failure streak (and so the backoff) is
    /// reset; shorter connections count as failures (flap damping). Default 10 s.
    pub stable_after: Duration,
    /// Deadline of each resolve and of each dial. Default 5 s.
    pub connect_timeout: Duration,
    /// Application heartbeat. Default on (5 s + 5 s).
    pub heartbeat: Option<Heartbeat>,
    /// Close a connection that reads nothing for this long, heartbeat or not. Default off.
    pub read_idle_timeout: Option<Duration>,
    /// A write that does not complete in this time kills the connection. Default 10 s.
    pub write_timeout: Option<Duration>,
    /// How long an old socket may take to close before a new attempt starts anyway. Default 1 s.
    pub close_timeout: Duration,
    /// Outbound queue bounds.
    pub queue: QueueLimits,
    /// Inbound bounds (backpressure on the peer).
    pub inbound: InboundLimits,
    /// A message whose reply does not come within this time ends in doubt (its reply is
    /// dropped if it comes later); the connection stays up. Default `None`: wait as long as
    /// the connection lives (the heartbeat finds a dead peer).
    pub request_timeout: Option<Duration>,
    /// How many times an idempotent written-but-unconfirmed message may be replayed on a later
    /// connection before it is reported in doubt (guards against a poison message). Default 3.
    pub max_replays: u8,
    /// Bytes handed to one write at most. Default 64 KiB.
    pub batch_bytes: usize,
    /// Messages handed to one write at most (a batch counts once). Default 256.
    pub batch_messages: usize,
    /// Seed of the jitter generator: the same seed and inputs give the same decisions.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backoff: Backoff::new(),
            give_up: GiveUp::default(),
            stable_after: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            heartbeat: Some(Heartbeat::default()),
            read_idle_timeout: None,
            write_timeout: Some(Duration::from_secs(10)),
            close_timeout: Duration::from_secs(1),
            queue: QueueLimits::default(),
            inbound: InboundLimits::default(),
            request_timeout: None,
            max_replays: 3,
            batch_bytes: 64 << 10,
            batch_messages: 256,
            seed: 0x5eed_1e55_c0ff_ee00,
        }
    }
}

macro_rules! with {
    ($(#[$doc:meta] $name:ident: $field:ident: $ty:ty;)*) => {
        $(#[$doc] pub fn $name(mut self, value: $ty) -> Self { self.$field = value; self })*
    };
}

impl Config {
    with! {
        /// Sets the backoff policy.
        with_backoff: backoff: Backoff;
        /// Sets the give-up limits.
        with_give_up: give_up: GiveUp;
        /// Sets how long a connection must last to reset the backoff.
        with_stable_after: stable_after: Duration;
        /// Sets the per-attempt connect (and resolve) deadline.
        with_connect_timeout: connect_timeout: Duration;
        /// Sets (or, with `None`, disables) the heartbeat.
        with_heartbeat: heartbeat: Option<Heartbeat>;
        /// Sets the read-idle deadline.
        with_read_idle_timeout: read_idle_timeout: Option<Duration>;
        /// Sets the write deadline.
        with_write_timeout: write_timeout: Option<Duration>;
        /// Sets how long an old socket may take to close.
        with_close_timeout: close_timeout: Duration;
        /// Sets the queue bounds.
        with_queue: queue: QueueLimits;
        /// Sets the inbound bounds.
        with_inbound: inbound: InboundLimits;
        /// Sets (or, with `None`, disables) the request timeout.
        with_request_timeout: request_timeout: Option<Duration>;
        /// Sets how many bytes one write takes at most.
        with_batch_bytes: batch_bytes: usize;
        /// Sets how many messages one write takes at most.
        with_batch_messages: batch_messages: usize;
        /// Sets how often an idempotent message may be replayed.
        with_max_replays: max_replays: u8;
        /// Sets the jitter seed.
        with_seed: seed: u64;
    }

    /// Checks every field and every combination; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backoff.validate()?;
        if self.give_up.max_failures == Some(0) {
            return Err(ConfigError::ZeroMaxFailures);
        }
        let positive = [
            (self.connect_timeout, "connect_timeout"),
            (self.close_timeout, "close_timeout"),
            (
                self.give_up.max_elapsed.unwrap_or(Duration::MAX),
                "give_up.max_elapsed",
            ),
            (
                self.read_idle_timeout.unwrap_or(Duration::MAX),
                "read_idle_timeout",
            ),
            (self.write_timeout.unwrap_or(Duration::MAX), "write_timeout"),
            (
                self.request_timeout.unwrap_or(Duration::MAX),
                "request_timeout",
            ),
        ];
        for (d, name) in positive {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if let Some(hb) = self.heartbeat {
            if hb.interval.is_zero() {
                return Err(ConfigError::ZeroDuration("heartbeat.interval"));
            }
            if hb.timeout.is_zero() {
                return Err(ConfigError::ZeroDuration("heartbeat.timeout"));
            }
            for (d, name) in [
                (hb.interval, "heartbeat.interval"),
                (hb.timeout, "heartbeat.timeout"),
            ] {
                if d < MIN_HEARTBEAT {
                    return Err(ConfigError::BelowFloor {
                        what: name,
                        value: d,
                        floor: MIN_HEARTBEAT,
                    });
                }
            }
            if let Some(floor) = hb.adaptive_floor {
                if floor.is_zero() {
                    return Err(ConfigError::ZeroDuration("heartbeat.adaptive_floor"));
                }
                if floor > hb.timeout {
                    return Err(ConfigError::FloorAboveTimeout {
                        floor,
                        timeout: hb.timeout,
                    });
                }
            }
        }
        let q = &self.queue;
        for (v, name) in [
            (q.max_messages, "max_messages"),
            (q.max_bytes, "max_bytes"),
            (q.max_message, "max_message"),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroQueueBound(name));
            }
        }
        let i = &self.inbound;
        for (v, name) in [
            (i.max_messages, "inbound.max_messages"),
            (i.max_bytes, "inbound.max_bytes"),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroQueueBound(name));
            }
        }
        for (v, max, name) in [
            (q.max_messages, MAX_QUEUE_MESSAGES, "max_messages"),
            (q.max_bytes, MAX_QUEUE_BYTES, "max_bytes"),
            (i.max_messages, MAX_QUEUE_MESSAGES, "inbound.max_messages"),
            (i.max_bytes, MAX_QUEUE_BYTES, "inbound.max_bytes"),
        ] {
            if v > max {
                return Err(ConfigError::AboveCeiling {
                    what: name,
                    value: v as u64,
                    max: max as u64,
                });
            }
        }
        if q.max_message > q.max_bytes {
            return Err(ConfigError::MessageAboveQueue {
                message: q.max_message,
                queue: q.max_bytes,
            });
        }
        if self.batch_bytes == 0 {
            return Err(ConfigError::ZeroBatchBound("batch_bytes"));
        }
        if self.batch_messages == 0 {
            return Err(ConfigError::ZeroBatchBound("batch_messages"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.backoff.initial, Duration::from_millis(100));
        assert_eq!(c.backoff.cap, Duration::from_secs(30));
        assert_eq!(c.give_up.max_failures, Some(10));
        assert_eq!(c.give_up.max_elapsed, Some(Duration::from_secs(300)));
    }

    #[test]
    fn nonsense_is_rejected_with_a_reason() {
        let c = Config::default();
        let zero_hb = c.clone().with_heartbeat(Some(Heartbeat {
            interval: Duration::ZERO,
            ..Heartbeat::default()
        }));
        assert_eq!(
            zero_hb.validate(),
            Err(ConfigError::ZeroDuration("heartbeat.interval"))
        );
        let zero_to = c.clone().with_heartbeat(Some(Heartbeat {
            timeout: Duration::ZERO,
            ..Heartbeat::default()
        }));
        assert_eq!(
            zero_to.validate(),
            Err(ConfigError::ZeroDuration("heartbeat.timeout"))
        );
        let q = QueueLimits {
            max_messages: 0,
            ..QueueLimits::default()
        };
        assert_eq!(
            c.clone().with_queue(q).validate(),
            Err(ConfigError::ZeroQueueBound("max_messages"))
        );
        let q = QueueLimits {
            max_message: 10,
            max_bytes: 5,
            ..QueueLimits::default()
        };
        assert!(matches!(
            c.clone().with_queue(q).validate(),
            Err(ConfigError::MessageAboveQueue { .. })
        ));
        let gu = GiveUp {
            max_failures: Some(0),
            ..GiveUp::default()
        };
        assert_eq!(
            c.clone().with_give_up(gu).validate(),
            Err(ConfigError::ZeroMaxFailures)
        );
        assert_eq!(
            c.with_connect_timeout(Duration::ZERO).validate(),
            Err(ConfigError::ZeroDuration("connect_timeout"))
        );
        let msg = alloc::format!("{}", ConfigError::ZeroDuration("connect_timeout"));
        assert_eq!(msg, "connect_timeout must be greater than zero");
    }

    #[test]
    fn give_up_combinations() {
        let s = Duration::from_secs;
        let both = GiveUp::default();
        assert!(!both.reached(10, s(10)));
        assert!(!both.reached(3, s(400)));
        assert!(both.reached(10, s(300)));
        let either = GiveUp {
            when: GiveUpWhen::Either,
            ..both
        };
        assert!(either.reached(10, s(1)));
        assert!(either.reached(1, s(300)));
        let count_only = GiveUp {
            max_elapsed: None,
            ..both
        };
        assert!(count_only.reached(10, s(0)));
        assert!(!GiveUp::NEVER.reached(u32::MAX, Duration::MAX));
    }
}
