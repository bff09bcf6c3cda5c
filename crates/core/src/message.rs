//! Message identity, delivery class and the four outcomes every message ends in.

use alloc::vec::Vec;
use core::fmt;

use crate::error::{AbandonReason, RejectReason};

/// Identity of one enqueued message, unique within a session and increasing in enqueue order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId(u64);

impl MsgId {
    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Builds an id from a raw number; for replaying recorded traces and for tests.
    pub const fn from_raw(raw: u64) -> Self {
        MsgId(raw)
    }
}

impl fmt::Debug for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// Whether a message may be sent again when it is unknown whether the peer got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    /// Never resent once written: if the connection dies before confirmation, the message is
    /// reported [`Outcome::InDoubt`]. Default.
    #[default]
    AtMostOnce,
    /// Safe to apply twice (or carries its own idempotency key): written-but-unconfirmed copies
    /// are replayed, in order, on the next connection.
    Idempotent,
}

/// How a message ended. Every enqueued message gets exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Fully written (and acknowledged, when the protocol acknowledges).
    Delivered,
    /// Written on a connection that died before confirmation; not resent. The peer may or may
    /// not have it.
    InDoubt,
    /// Never written: the session gave up, was closed, or evicted it. (A message written on
    /// an earlier connection and awaiting its replay ends [`Outcome::InDoubt`] instead.)
    Abandoned(AbandonReason),
    /// Refused at enqueue.
    Rejected(RejectReason),
}

/// A message refused at enqueue, handed back to the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Why it was refused.
    pub reason: RejectReason,
    /// The message, returned untouched.
    pub payload: Vec<u8>,
}

impl fmt::Debug for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("reason", &self.reason)
            .field("len", &self.payload.len())
            .finish()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message rejected: {}", self.reason)
    }
}

impl core::error::Error for Rejected {}
