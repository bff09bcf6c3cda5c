//! The outbound queue and delivery ledger: the one owner of every write.
//!
//! Entries keep enqueue order and sit in three runs, front to back:
//! `[written, awaiting ack][handed to the current write][queued]`. A message leaves the ledger
//! only with its outcome.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::config::{AckMode, Overflow, QueueLimits};
use crate::error::{AbandonReason, FrameError, RejectReason};
use crate::message::{Batch, BatchIter, Delivery, MsgId, Outcome, Rejected};

struct Entry {
    id: MsgId,
    /// The message, or a [`crate::Batch`]'s records when `frames > 0`.
    payload: Vec<u8>,
    /// Messages in a batch; 0 for a single message.
    frames: u32,
    /// Messages of this entry the peer confirmed on the current connection.
    acked: u32,
    delivery: Delivery,
    replays: u8,
}

impl Entry {
    /// How a queued message ends when it will not be sent: abandoned if it was never written,
    /// in doubt if it was written on an earlier connection and waited for its replay (the peer
    /// may have it; "abandoned" promises it was never written).
    fn unwritten_or_doubt(&self, reason: AbandonReason) -> Outcome {
        if self.replays > 0 {
            Outcome::InDoubt
        } else {
            Outcome::Abandoned(reason)
        }
    }

    /// Messages on the wire: 1, or the batch's count.
    #[inline]
    fn wire_frames(&self) -> usize {
        (self.frames as usize).max(1)
    }

    /// The wire payloads, in order.
    #[inline]
    fn payloads(&self) -> Payloads<'_> {
        if self.frames == 0 {
            Payloads::One(Some(&self.payload))
        } else {
            Payloads::Batch(BatchIter::over(&self.payload))
        }
    }
}

/// The wire payloads of one entry.
enum Payloads<'a> {
    One(Option<&'a [u8]>),
    Batch(BatchIter<'a>),
}

impl<'a> Iterator for Payloads<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Payloads::One(p) => p.take(),
            Payloads::Batch(b) => b.next(),
        }
    }
}

/// What is enqueued: a message, or a batch's records and count.
pub(crate) enum Item {
    One(Vec<u8>),
    Batch(Batch),
}

/// A message leaving the ledger: its id, outcome and, unless delivered, its payload.
pub(crate) type Settled = (MsgId, Outcome, Option<Vec<u8>>);

pub(crate) struct Ledger {
    entries: VecDeque<Entry>,
    /// Front entries written and awaiting acknowledgement (only with [`AckMode::InOrder`]).
    awaiting_ack: usize,
    /// Entries after those, handed to the write in progress.
    writing: usize,
    /// Wire messages of those two runs not yet confirmed (a batch counts its messages).
    unconfirmed: usize,
    bytes: usize,
    next_id: u64,
}

impl Ledger {
    pub(crate) fn new(_limits: &QueueLimits) -> Self {
        Ledger {
            // Starts empty (an idle session should cost little) and grows on demand up to
            // the queue bound; capacity is kept, so steady state never reallocates.
            entries: VecDeque::new(),
            awaiting_ack: 0,
            writing: 0,
            unconfirmed: 0,
            bytes: 0,
            next_id: 1,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Written (or being written) and not yet settled.
    pub(crate) fn in_flight(&self) -> usize {
        self.awaiting_ack + self.writing
    }

    /// Entries handed to the write in progress.
    pub(crate) fn writing_len(&self) -> usize {
        self.writing
    }

    pub(crate) fn queued(&self) -> usize {
        self.entries.len() - self.in_flight()
    }

    /// Adds a message (or a batch), or refuses it. With [`Overflow::EvictOldest`], the oldest
    /// queued messages are evicted (returned as abandoned through `settle`) to make room.
    #[inline]
    pub(crate) fn push(
        &mut self,
        item: Item,
        delivery: Delivery,
        limits: &QueueLimits,
        settle: &mut dyn FnMut(Settled),
    ) -> Result<MsgId, Rejected> {
        let (payload, frames, largest) = match item {
            Item::One(p) => {
                let len = p.len();
                (p, 0, len)
            }
            Item::Batch(b) => {
                let (frames, largest) = (b.len() as u32, b.largest());
                let records = b.into_vec();
                if frames == 0 {
                    return Err(Rejected {
                        reason: RejectReason::EmptyBatch,
                        payload: records,
                    });
                }
                (records, frames, largest)
            }
        };
        let size = payload.len();
        if largest > limits.max_message || (frames > 0 && size > limits.max_bytes) {
            let (size, max) = if largest > limits.max_message {
                (largest, limits.max_message)
            } else {
                (size, limits.max_bytes)
            };
            return Err(Rejected {
                reason: RejectReason::TooLarge { size, max },
                payload,
            });
        }
        let fits = |l: &Ledger| {
            l.entries.len() < limits.max_messages
                && l.bytes.saturating_add(size) <= limits.max_bytes
        };
        if !fits(self) {
            // Evict only if evicting every queued message would make room: in-flight messages
            // cannot be evicted, and losing messages for one that is rejected anyway helps no one.
            let in_flight_bytes: usize = self
                .entries
                .iter()
                .take(self.in_flight())
                .map(|e| e.payload.len())
                .sum();
            let room = self.in_flight() < limits.max_messages
                && in_flight_bytes.saturating_add(size) <= limits.max_bytes;
            if limits.overflow == Overflow::Reject || !room {
                return Err(Rejected {
                    reason: RejectReason::QueueFull,
                    payload,
                });
            }
        }
        while !fits(self) {
            let e = self
                .entries
                .remove(self.in_flight())
                .expect("room was checked: evicting all queued messages makes this one fit");
            self.bytes -= e.payload.len();
            settle((
                e.id,
                e.unwritten_or_doubt(AbandonReason::Evicted),
                Some(e.payload),
            ));
        }
        Ok(self.push_fitting(payload, frames, delivery))
    }

    /// Whether a single message of `size` bytes is accepted without evicting anything.
    #[inline]
    pub(crate) fn fits_one(&self, size: usize, limits: &QueueLimits) -> bool {
        size <= limits.max_message
            && self.entries.len() < limits.max_messages
            && self.bytes.saturating_add(size) <= limits.max_bytes
    }

    /// Appends an entry already checked against the limits.
    #[inline]
    pub(crate) fn push_fitting(
        &mut self,
        payload: Vec<u8>,
        frames: u32,
        delivery: Delivery,
    ) -> MsgId {
        let id = MsgId::from_raw(self.next_id);
        self.next_id += 1;
        self.bytes += payload.len();
        self.entries.push_back(Entry {
            id,
            payload,
            frames,
            acked: 0,
            delivery,
            replays: 0,
        });
        id
    }

    /// Hands queued messages to a new write: at least one (even if larger than `max_bytes`),
    /// then as many as fit. Returns how many.
    #[inline]
    pub(crate) fn start_write(&mut self, max_bytes: usize, max_messages: usize) -> usize {
        debug_assert_eq!(self.writing, 0, "one write at a time");
        let (start, len) = (self.awaiting_ack, self.entries.len());
        let (mut i, mut bytes, mut frames) = (start, 0, 0);
        while i < len && i - start < max_messages {
            let e = &self.entries[i];
            let size = e.payload.len();
            if i > start && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            frames += e.wire_frames();
            i += 1;
        }
        self.writing = i - start;
        self.unconfirmed += frames;
        self.writing
    }

    /// The wire payloads of the write in progress, in order (each message of a batch
    /// separately).
    pub(crate) fn writing(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries
            .range(self.awaiting_ack..self.awaiting_ack + self.writing)
            .flat_map(Entry::payloads)
    }

    /// The payload of a message still in the ledger.
    pub(crate) fn payload(&self, id: MsgId) -> Option<&[u8]> {
        let i = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        Some(&self.entries[i].payload)
    }

    /// The write in progress completed, with [`AckMode::InOrder`]: its messages now await
    /// their acknowledgements.
    #[inline]
    pub(crate) fn written_awaiting_ack(&mut self) {
        self.awaiting_ack += core::mem::take(&mut self.writing);
    }

    /// The write in progress completed.
    #[inline]
    pub(crate) fn write_done(&mut self, acks: AckMode, settle: &mut dyn FnMut(Settled)) {
        match acks {
            AckMode::InOrder => self.awaiting_ack += core::mem::take(&mut self.writing),
            AckMode::None => {
                for _ in 0..core::mem::take(&mut self.writing) {
                    self.pop_delivered(settle);
                }
            }
        }
    }

    /// The peer confirmed the next `n` wire messages (a batch takes one per message).
    /// Confirming more than was written means the peer (or the protocol mapping) lies: that is
    /// an error and nothing is settled.
    #[inline]
    pub(crate) fn ack(
        &mut self,
        mut n: usize,
        settle: &mut dyn FnMut(Settled),
    ) -> Result<(), FrameError> {
        // A reply can be read before the write's completion is seen, so messages still being
        // written can be confirmed too.
        if n > self.unconfirmed {
            return Err(FrameError::UnexpectedAck {
                acked: n,
                in_flight: self.unconfirmed,
            });
        }
        while n > 0 {
            let front = self
                .entries
                .front_mut()
                .expect("unconfirmed messages are in the ledger");
            let left = front.wire_frames() - front.acked as usize;
            if n < left {
                // Part of a batch: `n` is below its count, which is a u32.
                front.acked += n as u32;
                self.unconfirmed -= n;
                return Ok(());
            }
            n -= left;
            if self.awaiting_ack > 0 {
                self.awaiting_ack -= 1;
            } else {
                self.writing -= 1;
            }
            self.pop_delivered(settle);
        }
        Ok(())
    }

    /// [`Ledger::ack`] of one acknowledgement in the common case: the front entry is a single
    /// message written and awaiting it. Settles it (its payload dropped) and returns its id;
    /// `None` (nothing changed) otherwise.
    #[inline]
    pub(crate) fn ack_one(&mut self) -> Option<MsgId> {
        if self.awaiting_ack == 0 || self.entries.front()?.frames != 0 {
            return None;
        }
        let e = self.entries.pop_front()?;
        self.awaiting_ack -= 1;
        // A single message awaiting its acknowledgement counts one unconfirmed.
        self.unconfirmed -= 1;
        self.bytes -= e.payload.len();
        Some(e.id)
    }

    #[inline]
    fn pop_delivered(&mut self, settle: &mut dyn FnMut(Settled)) {
        let e = self
            .entries
            .pop_front()
            .expect("callers settle at most in_flight() entries");
        self.bytes -= e.payload.len();
        self.unconfirmed -= e.wire_frames() - e.acked as usize;
        settle((e.id, Outcome::Delivered, None));
    }

    /// The connection died. Written-but-unconfirmed messages are replayed if idempotent (and
    /// not replayed too often already), otherwise reported in doubt; order is kept. Returns
    /// how many will be replayed.
    pub(crate) fn connection_lost(
        &mut self,
        max_replays: u8,
        settle: &mut dyn FnMut(Settled),
    ) -> usize {
        let in_flight = self.in_flight();
        self.awaiting_ack = 0;
        self.writing = 0;
        self.unconfirmed = 0;
        if in_flight == 0 {
            return 0;
        }
        let (mut index, mut replayed, mut freed) = (0, 0, 0);
        self.entries.retain_mut(|e| {
            index += 1;
            if index > in_flight {
                return true;
            }
            if e.delivery == Delivery::Idempotent && e.replays < max_replays {
                e.replays += 1;
                // Replayed whole: the new connection confirms every message again.
                e.acked = 0;
                replayed += 1;
                return true;
            }
            freed += e.payload.len();
            settle((
                e.id,
                Outcome::InDoubt,
                Some(core::mem::take(&mut e.payload)),
            ));
            false
        });
        self.bytes -= freed;
        replayed
    }

    /// Ends every message: in-flight ones in doubt, queued ones abandoned for `reason`.
    pub(crate) fn abandon_all(&mut self, reason: AbandonReason, settle: &mut dyn FnMut(Settled)) {
        let in_flight = self.in_flight();
        self.awaiting_ack = 0;
        self.writing = 0;
        self.unconfirmed = 0;
        self.bytes = 0;
        for (i, e) in self.entries.drain(..).enumerate() {
            let outcome = if i < in_flight {
                Outcome::InDoubt
            } else {
                e.unwritten_or_doubt(reason)
            };
            settle((e.id, outcome, Some(e.payload)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn limits(max_messages: usize, max_bytes: usize) -> QueueLimits {
        QueueLimits {
            max_messages,
            max_bytes,
            max_message: max_bytes,
            overflow: Overflow::Reject,
        }
    }

    fn push(l: &mut Ledger, lim: &QueueLimits, p: &[u8], d: Delivery) -> Vec<Settled> {
        let mut out = Vec::new();
        l.push(Item::One(p.to_vec()), d, lim, &mut |s| out.push(s))
            .unwrap();
        out
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let lim = limits(2, 10);
        let mut l = Ledger::new(&lim);
        push(&mut l, &lim, b"12345", Delivery::AtMostOnce);
        let r = l.push(
            Item::One(b"1234567".to_vec()),
            Delivery::AtMostOnce,
            &lim,
            &mut |_| {},
        );
        assert_eq!(r.unwrap_err().reason, RejectReason::QueueFull);
        push(&mut l, &lim, b"12345", Delivery::AtMostOnce);
        let r = l.push(
            Item::One(b"1".to_vec()),
            Delivery::AtMostOnce,
            &lim,
            &mut |_| {},
        );
        let rej = r.unwrap_err();
        assert_eq!(
            (rej.reason, rej.payload),
            (RejectReason::QueueFull, b"1".to_vec())
        );
        let r = l.push(
            Item::One(vec![0; 11]),
            Delivery::AtMostOnce,
            &lim,
            &mut |_| {},
        );
        assert!(matches!(
            r.unwrap_err().reason,
            RejectReason::TooLarge { size: 11, max: 10 }
        ));
        assert_eq!((l.len(), l.bytes()), (2, 10));
    }

    #[test]
    fn evict_oldest_returns_it_abandoned() {
        let lim = QueueLimits {
            overflow: Overflow::EvictOldest,
            ..limits(2, 100)
        };
        let mut l = Ledger::new(&lim);
        push(&mut l, &lim, b"a", Delivery::AtMostOnce);
        push(&mut l, &lim, b"b", Delivery::AtMostOnce);
        let ev = push(&mut l, &lim, b"c", Delivery::AtMostOnce);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].1, Outcome::Abandoned(AbandonReason::Evicted));
        assert_eq!(ev[0].2.as_deref(), Some(&b"a"[..]));
        let w: Vec<_> = {
            l.start_write(100, 100);
            l.writing().map(<[u8]>::to_vec).collect()
        };
        assert_eq!(w, vec![b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn lost_connection_replays_idempotent_and_doubts_the_rest_in_order() {
        let lim = limits(10, 100);
        let mut l = Ledger::new(&lim);
        push(&mut l, &lim, b"i1", Delivery::Idempotent);
        push(&mut l, &lim, b"a1", Delivery::AtMostOnce);
        push(&mut l, &lim, b"i2", Delivery::Idempotent);
        push(&mut l, &lim, b"q", Delivery::AtMostOnce);
        assert_eq!(l.start_write(100, 3), 3);
        let mut settled = Vec::new();
        l.write_done(AckMode::InOrder, &mut |s| settled.push(s));
        assert!(settled.is_empty());
        assert_eq!(l.connection_lost(1, &mut |s| settled.push(s)), 2);
        assert_eq!(settled.len(), 1);
        assert_eq!(
            (settled[0].1, settled[0].2.as_deref()),
            (Outcome::InDoubt, Some(&b"a1"[..]))
        );
        l.start_write(100, 10);
        let order: Vec<_> = l.writing().map(<[u8]>::to_vec).collect();
        assert_eq!(order, vec![b"i1".to_vec(), b"i2".to_vec(), b"q".to_vec()]);
        // Out of replays: the idempotent ones are in doubt now too.
        settled.clear();
        assert_eq!(l.connection_lost(1, &mut |s| settled.push(s)), 0);
        assert_eq!(
            settled.iter().filter(|s| s.1 == Outcome::InDoubt).count(),
            3
        );
        assert_eq!((l.len(), l.bytes()), (0, 0));
    }

    #[test]
    fn written_idempotent_awaiting_replay_is_in_doubt_not_abandoned() {
        let lim = limits(10, 100);
        let mut l = Ledger::new(&lim);
        push(&mut l, &lim, b"i", Delivery::Idempotent);
        push(&mut l, &lim, b"never", Delivery::Idempotent);
        l.start_write(100, 1);
        l.write_done(AckMode::InOrder, &mut |_| {});
        assert_eq!(l.connection_lost(3, &mut |_| {}), 1);
        let mut settled = Vec::new();
        l.abandon_all(AbandonReason::Closed, &mut |s| settled.push(s));
        let outcomes: Vec<_> = settled.iter().map(|s| s.1).collect();
        assert_eq!(
            outcomes,
            [Outcome::InDoubt, Outcome::Abandoned(AbandonReason::Closed)]
        );
    }

    #[test]
    fn acks_settle_in_order_and_lies_are_errors() {
        let lim = limits(10, 100);
        let mut l = Ledger::new(&lim);
        for p in [b"a", b"b", b"c"] {
            push(&mut l, &lim, p, Delivery::AtMostOnce);
        }
        l.start_write(100, 2);
        let mut settled = Vec::new();
        // Reply read before the write completion is seen.
        l.ack(1, &mut |s| settled.push(s)).unwrap();
        l.write_done(AckMode::InOrder, &mut |s| settled.push(s));
        assert_eq!(
            l.ack(2, &mut |s| settled.push(s)),
            Err(FrameError::UnexpectedAck {
                acked: 2,
                in_flight: 1
            })
        );
        l.ack(1, &mut |s| settled.push(s)).unwrap();
        assert_eq!(settled.len(), 2);
        assert!(settled.iter().all(|s| s.1 == Outcome::Delivered));
        assert_eq!((l.len(), l.queued(), l.bytes()), (1, 1, 1));
        let mut all = Vec::new();
        l.abandon_all(AbandonReason::GaveUp, &mut |s| all.push(s));
        assert_eq!(all[0].1, Outcome::Abandoned(AbandonReason::GaveUp));
    }

    #[test]
    fn oversized_message_still_goes_alone() {
        let lim = limits(10, 100);
        let mut l = Ledger::new(&lim);
        push(&mut l, &lim, &[0; 50], Delivery::AtMostOnce);
        push(&mut l, &lim, &[0; 50], Delivery::AtMostOnce);
        assert_eq!(l.start_write(10, 10), 1);
        assert_eq!(l.payload(MsgId::from_raw(2)).map(<[u8]>::len), Some(50));
        assert_eq!(l.payload(MsgId::from_raw(9)), None);
    }
}
