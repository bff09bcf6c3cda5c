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
    /// are replayed, in order, on the next connection. A [`Batch`] is replayed whole, so the
    /// messages of it that were already confirmed are sent again too.
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

/// Bytes of framing a [`Batch`] keeps per message (a little-endian `u32` length).
pub const BATCH_RECORD_OVERHEAD: usize = 4;

/// Many messages that travel, and end, as one: one queue entry, one outcome, one write.
///
/// Built by copying borrowed bytes in ([`Batch::push`]), so a stream of small messages costs
/// one allocation per batch instead of one per message; the adapter encodes each message with
/// the session's codec when it writes the batch. With acknowledgements
/// ([`crate::AckMode::InOrder`]) every message of the batch takes one acknowledgement and the
/// batch is delivered when the last one arrives; a connection lost part-way through leaves
/// the batch in doubt (or replays the whole batch, if idempotent).
///
/// Inside, each message is a record: its length as a little-endian `u32`, then its bytes.
/// [`Batch::into_vec`] and [`Batch::from_vec`] convert to and from that form, which is also
/// the payload a [`crate::Notification::Outcome`] hands back for a batch.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Batch {
    records: Vec<u8>,
    count: u32,
    largest: u32,
}

impl Batch {
    /// An empty batch.
    pub const fn new() -> Self {
        Batch {
            records: Vec::new(),
            count: 0,
            largest: 0,
        }
    }

    /// An empty batch with room for `bytes` of messages (plus their record headers) before it
    /// reallocates.
    pub fn with_capacity(bytes: usize) -> Self {
        Batch {
            records: Vec::with_capacity(bytes),
            ..Batch::new()
        }
    }

    /// Appends one message, copying it.
    ///
    /// # Panics
    ///
    /// If the message is 4 GiB or larger, or the batch would hold more than `u32::MAX`
    /// messages.
    #[inline]
    pub fn push(&mut self, message: &[u8]) {
        let len = u32::try_from(message.len()).expect("a batched message is under 4 GiB");
        self.count = self
            .count
            .checked_add(1)
            .expect("at most u32::MAX messages");
        self.largest = self.largest.max(len);
        self.records.reserve(BATCH_RECORD_OVERHEAD + message.len());
        self.records.extend_from_slice(&len.to_le_bytes());
        self.records.extend_from_slice(message);
    }

    /// How many messages.
    pub const fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no messages.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes held: the messages plus [`BATCH_RECORD_OVERHEAD`] per message. This is what the
    /// batch counts against [`crate::QueueLimits::max_bytes`].
    pub fn byte_len(&self) -> usize {
        self.records.len()
    }

    /// The size of the largest message (checked against [`crate::QueueLimits::max_message`]).
    pub const fn largest(&self) -> usize {
        self.largest as usize
    }

    /// The messages, in order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            rest: &self.records,
        }
    }

    /// Removes every message, keeping the allocation.
    pub fn clear(&mut self) {
        self.records.clear();
        self.count = 0;
        self.largest = 0;
    }

    /// The records (see the type's documentation).
    pub fn into_vec(self) -> Vec<u8> {
        self.records
    }

    /// Rebuilds a batch from its records, checking every length; a truncated or overlong
    /// record is an error and the bytes are dropped.
    pub fn from_vec(records: Vec<u8>) -> Result<Batch, crate::error::FrameError> {
        let (mut count, mut largest) = (0u32, 0u32);
        let mut rest = records.as_slice();
        while !rest.is_empty() {
            let Some((len, tail)) = split_record(rest) else {
                return Err(crate::error::FrameError::Malformed {
                    reason: "truncated batch record",
                });
            };
            rest = &tail[len..];
            count = count
                .checked_add(1)
                .ok_or(crate::error::FrameError::Malformed {
                    reason: "more than u32::MAX batch records",
                })?;
            // `split_record` checked that `len` fits the bytes, so it fits a u32 too.
            largest = largest.max(len as u32);
        }
        Ok(Batch {
            records,
            count,
            largest,
        })
    }
}

/// The length of the record at the start of `bytes` and the bytes after its header, if the
/// header and the whole message are there.
#[inline]
fn split_record(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (head, tail) = bytes.split_first_chunk::<BATCH_RECORD_OVERHEAD>()?;
    let len = u32::from_le_bytes(*head) as usize;
    (len <= tail.len()).then_some((len, tail))
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("messages", &self.count)
            .field("bytes", &self.records.len())
            .finish()
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a [u8];
    type IntoIter = BatchIter<'a>;
    fn into_iter(self) -> BatchIter<'a> {
        self.iter()
    }
}

/// The messages of a [`Batch`] (or of its records), in order.
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    rest: &'a [u8],
}

impl<'a> BatchIter<'a> {
    /// Iterates over records that are known to be well formed (built by [`Batch`]); a
    /// malformed tail simply ends the iteration.
    pub(crate) fn over(records: &'a [u8]) -> Self {
        BatchIter { rest: records }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, tail) = split_record(self.rest)?;
        let (message, rest) = tail.split_at(len);
        self.rest = rest;
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn batches_round_trip_through_their_records() {
        let mut b = Batch::with_capacity(64);
        assert!(b.is_empty());
        for m in [&b"one"[..], b"", b"three"] {
            b.push(m);
        }
        assert_eq!((b.len(), b.byte_len(), b.largest()), (3, 12 + 8, 5));
        let back = Batch::from_vec(b.clone().into_vec()).unwrap();
        assert_eq!(back, b);
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            vec![&b"one"[..], b"", b"three"]
        );
        b.clear();
        assert_eq!((b.len(), b.byte_len(), b.largest()), (0, 0, 0));
    }

    #[test]
    fn truncated_records_are_an_error() {
        let mut b = Batch::new();
        b.push(b"hello");
        let mut v = b.into_vec();
        v.pop();
        assert!(Batch::from_vec(v.clone()).is_err());
        v.truncate(3);
        assert!(Batch::from_vec(v).is_err());
        assert_eq!(Batch::from_vec(Vec::new()).unwrap().len(), 0);
    }
}
