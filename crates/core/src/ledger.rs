//! The outbound queue and delivery ledger: the one owner of every write.
//!
//! Entries keep enqueue order. Each is queued, being written, sent (awaiting the confirmation
//! of its wire units), unconfirmed (sent on a connection that died, waiting to learn whether
//! the peer resumed the session), or settled. A message leaves the ledger only with its
//! outcome; a settled entry in the middle (confirmed out of order) stays as an empty
//! placeholder until the entries before it settle.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::config::{Overflow, QueueLimits};
use crate::error::{AbandonReason, RejectReason};
use crate::message::{Batch, BatchIter, Delivery, MsgId, Outcome, Rejected};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Queued,
    Writing,
    Sent,
    /// Written on a connection that died; the next handshake says whether it is resent as it
    /// was (session resumed) or settled by the usual rule.
    Unconfirmed,
    Settled,
}

pub(crate) struct Entry {
    pub(crate) id: MsgId,
    /// The message, or a [`Batch`]'s records when `frames > 0`.
    payload: Vec<u8>,
    /// Messages in a batch; 0 for a single message.
    frames: u32,
    pub(crate) delivery: Delivery,
    replays: u8,
    pub(crate) state: State,
    /// Wire units confirmed on the current connection.
    confirmed: u32,
    /// Wire units that are confirmed once written.
    on_write: u32,
    /// The key of a keyed single message, kept for a resend on a resumed session.
    pub(crate) key: Option<u64>,
    /// Steps of its exchange done ([`crate::proto::ReplyStatus::Continues`] replies).
    pub(crate) stage: u8,
    /// Sent again on a resumed session (with its key and stage).
    pub(crate) again: bool,
}

impl Entry {
    /// Wire units: 1, or the batch's count.
    fn units(&self) -> u32 {
        self.frames.max(1)
    }

    /// The wire payloads, in order.
    pub(crate) fn payloads(&self) -> Payloads<'_> {
        if self.frames == 0 {
            Payloads::One(Some(&self.payload))
        } else {
            Payloads::Batch(BatchIter::over(&self.payload))
        }
    }

    /// How a message ends when it will not be sent (again): abandoned if it was never
    /// written, in doubt if an earlier connection may have it.
    fn unsent_outcome(&self, reason: AbandonReason) -> Outcome {
        if self.replays > 0 || self.again || self.state != State::Queued {
            Outcome::InDoubt
        } else {
            Outcome::Abandoned(reason)
        }
    }

    fn in_flight(&self) -> bool {
        matches!(
            self.state,
            State::Writing | State::Sent | State::Unconfirmed
        )
    }
}

/// The wire payloads of one entry.
pub(crate) enum Payloads<'a> {
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

#[derive(Default)]
pub(crate) struct Ledger {
    entries: VecDeque<Entry>,
    /// Entries not settled.
    live: usize,
    /// Entries queued (not yet written on this connection).
    queued: usize,
    /// Entries being written.
    writing: usize,
    /// Index of the first entry that may be queued: every entry before it is in flight or
    /// settled.
    cursor: usize,
    bytes: usize,
    next_id: u64,
}

impl Ledger {
    pub(crate) fn new() -> Self {
        Ledger {
            next_id: 1,
            ..Ledger::default()
        }
    }

    /// Messages held (queued plus in flight; a batch counts once).
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.live - self.queued
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Adds a message (or a batch), or refuses it. With [`Overflow::EvictOldest`], the oldest
    /// queued messages are evicted (settled as abandoned) to make room.
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
            l.live < limits.max_messages && l.bytes.saturating_add(size) <= limits.max_bytes
        };
        if !fits(self) {
            // Evict only if evicting every queued message would make room: in-flight messages
            // cannot be evicted, and losing messages for one refused anyway helps no one.
            let in_flight_bytes: usize = self
                .entries
                .iter()
                .filter(|e| e.in_flight())
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
            let i = self
                .entries
                .iter()
                .position(|e| e.state == State::Queued)
                .expect("room was checked: evicting all queued messages makes this one fit");
            let outcome = self.entries[i].unsent_outcome(AbandonReason::Evicted);
            let s = self.settle_at(i, outcome);
            settle(s);
        }
        Ok(self.push_fitting(payload, frames, delivery))
    }

    fn push_fitting(&mut self, payload: Vec<u8>, frames: u32, delivery: Delivery) -> MsgId {
        let id = MsgId::from_raw(self.next_id);
        self.next_id += 1;
        self.bytes += payload.len();
        self.live += 1;
        self.queued += 1;
        self.entries.push_back(Entry {
            id,
            payload,
            frames,
            delivery,
            replays: 0,
            state: State::Queued,
            confirmed: 0,
            on_write: 0,
            key: None,
            stage: 0,
            again: false,
        });
        id
    }

    /// The next queued entry at or after the cursor, marked as being written. The caller
    /// encodes its payloads and reports each unit's expectation with [`Ledger::on_write`].
    pub(crate) fn next_to_write(&mut self) -> Option<&mut Entry> {
        while self.cursor < self.entries.len() {
            let i = self.cursor;
            self.cursor += 1;
            if self.entries[i].state == State::Queued {
                self.queued -= 1;
                self.writing += 1;
                let e = &mut self.entries[i];
                e.state = State::Writing;
                return Some(e);
            }
        }
        None
    }

    /// The size of the next entry [`Ledger::next_to_write`] would hand out, if any.
    pub(crate) fn peek_size(&self) -> Option<usize> {
        self.entries
            .range(self.cursor.min(self.entries.len())..)
            .find(|e| e.state == State::Queued)
            .map(|e| e.payload.len())
    }

    /// One unit of the entry being written is confirmed once written.
    pub(crate) fn confirm_on_write(e: &mut Entry) {
        e.on_write += 1;
    }

    fn find(&self, id: MsgId) -> Option<usize> {
        self.entries.binary_search_by_key(&id, |e| e.id).ok()
    }

    /// The write in progress completed: its units confirmed on write count now; fully
    /// confirmed entries are delivered.
    pub(crate) fn written(&mut self, settle: &mut dyn FnMut(Settled)) {
        if self.writing == 0 {
            return;
        }
        let mut i = 0;
        while i < self.entries.len() && self.writing > 0 {
            let e = &mut self.entries[i];
            if e.state == State::Writing {
                self.writing -= 1;
                e.state = State::Sent;
                e.confirmed += core::mem::take(&mut e.on_write);
                if e.confirmed >= e.units() {
                    let s = self.settle_at(i, Outcome::Delivered);
                    settle(s);
                }
            }
            i += 1;
        }
        self.pop_settled();
    }

    /// One unit of message `id` was answered. `continues`: a step of a longer exchange (the
    /// unit is not confirmed; its next send is its next stage). Returns whether the message is
    /// still in the ledger (an answer for a settled message changes nothing).
    pub(crate) fn answered(
        &mut self,
        id: MsgId,
        continues: bool,
        settle: &mut dyn FnMut(Settled),
    ) -> bool {
        let Some(i) = self.find(id) else {
            return false;
        };
        let e = &mut self.entries[i];
        if !e.in_flight() {
            return false;
        }
        if continues {
            e.stage = e.stage.saturating_add(1);
            return true;
        }
        e.confirmed += 1;
        // A reply can be read before the write's completion is seen, so a message still being
        // written can be confirmed too.
        if e.confirmed >= e.units() {
            let s = self.settle_at(i, Outcome::Delivered);
            settle(s);
            self.pop_settled();
        }
        true
    }

    /// Message `id` ends in doubt now (its reply did not come in time).
    pub(crate) fn doubt(&mut self, id: MsgId, settle: &mut dyn FnMut(Settled)) {
        if let Some(i) = self.find(id) {
            if self.entries[i].in_flight() {
                let s = self.settle_at(i, Outcome::InDoubt);
                settle(s);
                self.pop_settled();
            }
        }
    }

    /// The connection died. Written-but-unconfirmed messages: with `resumable`, they wait for
    /// the next handshake's verdict; otherwise [`Ledger::unconfirmed_lost`]'s rule applies.
    /// Returns how many will be replayed.
    pub(crate) fn connection_lost(
        &mut self,
        resumable: bool,
        max_replays: u8,
        settle: &mut dyn FnMut(Settled),
    ) -> usize {
        self.cursor = 0;
        self.writing = 0;
        for e in self.entries.iter_mut() {
            if matches!(e.state, State::Writing | State::Sent) {
                e.state = State::Unconfirmed;
                e.on_write = 0;
            }
        }
        if resumable {
            return 0;
        }
        self.unconfirmed_lost(max_replays, settle)
    }

    /// The peer did not resume (or cannot): unconfirmed messages are replayed whole if
    /// idempotent (and not replayed too often), otherwise settled in doubt; order is kept.
    /// Returns how many will be replayed.
    pub(crate) fn unconfirmed_lost(
        &mut self,
        max_replays: u8,
        settle: &mut dyn FnMut(Settled),
    ) -> usize {
        let mut replayed = 0;
        for i in 0..self.entries.len() {
            let e = &mut self.entries[i];
            if e.state != State::Unconfirmed {
                continue;
            }
            if e.delivery == Delivery::Idempotent && e.replays < max_replays {
                e.replays += 1;
                // Replayed whole, as a new message: the new connection confirms every unit.
                e.state = State::Queued;
                e.confirmed = 0;
                e.key = None;
                e.stage = 0;
                e.again = false;
                self.queued += 1;
                replayed += 1;
            } else {
                let s = self.settle_at(i, Outcome::InDoubt);
                settle(s);
            }
        }
        self.cursor = 0;
        self.pop_settled();
        replayed
    }

    /// The peer resumed the session: unconfirmed messages are sent again first, in order, as
    /// they were (same key, same stage). Returns how many.
    pub(crate) fn resume(&mut self) -> usize {
        let mut n = 0;
        for e in self.entries.iter_mut() {
            if e.state == State::Unconfirmed {
                e.state = State::Queued;
                e.again = true;
                e.confirmed = 0;
                n += 1;
            }
        }
        self.queued += n;
        self.cursor = 0;
        n
    }

    /// Ends every message: in-flight ones in doubt, queued ones abandoned for `reason` (or in
    /// doubt, if an earlier connection may have them).
    pub(crate) fn abandon_all(&mut self, reason: AbandonReason, settle: &mut dyn FnMut(Settled)) {
        for i in 0..self.entries.len() {
            let e = &self.entries[i];
            if e.state == State::Settled {
                continue;
            }
            let outcome = if e.in_flight() {
                Outcome::InDoubt
            } else {
                e.unsent_outcome(reason)
            };
            let s = self.settle_at(i, outcome);
            settle(s);
        }
        self.entries.clear();
        self.cursor = 0;
        self.writing = 0;
        self.queued = 0;
        self.live = 0;
        self.bytes = 0;
    }

    /// Settles entry `i` (its payload handed back unless delivered), leaving a placeholder.
    fn settle_at(&mut self, i: usize, outcome: Outcome) -> Settled {
        let e = &mut self.entries[i];
        match e.state {
            State::Queued => self.queued -= 1,
            State::Writing => self.writing -= 1,
            _ => {}
        }
        e.state = State::Settled;
        self.live -= 1;
        self.bytes -= e.payload.len();
        let payload = core::mem::take(&mut e.payload);
        let back = (outcome != Outcome::Delivered).then_some(payload);
        (e.id, outcome, back)
    }

    /// Drops settled placeholders at the front.
    fn pop_settled(&mut self) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.state == State::Settled)
        {
            self.entries.pop_front();
            self.cursor = self.cursor.saturating_sub(1);
        }
        if self.entries.is_empty() {
            self.cursor = 0;
        }
    }

    /// A message still held by the session.
    pub(crate) fn payload(&self, id: MsgId) -> Option<&[u8]> {
        let e = &self.entries[self.find(id)?];
        (e.state != State::Settled).then_some(&e.payload[..])
    }

    /// Frees spare capacity once empty (after a burst).
    pub(crate) fn shrink(&mut self) {
        if self.entries.is_empty() {
            self.entries = VecDeque::new();
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

    /// Writes `n` entries, each unit confirmed on write or not.
    fn write(l: &mut Ledger, n: usize, on_write: bool) -> Vec<MsgId> {
        let mut ids = Vec::new();
        for _ in 0..n {
            let Some(e) = l.next_to_write() else { break };
            ids.push(e.id);
            if on_write {
                for _ in 0..e.units() {
                    Ledger::confirm_on_write(e);
                }
            }
        }
        ids
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let lim = limits(2, 10);
        let mut l = Ledger::new();
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
        let mut l = Ledger::new();
        push(&mut l, &lim, b"a", Delivery::AtMostOnce);
        push(&mut l, &lim, b"b", Delivery::AtMostOnce);
        let ev = push(&mut l, &lim, b"c", Delivery::AtMostOnce);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].1, Outcome::Abandoned(AbandonReason::Evicted));
        assert_eq!(ev[0].2.as_deref(), Some(&b"a"[..]));
        let mut order = Vec::new();
        while let Some(e) = l.next_to_write() {
            order.push(e.payloads().next().unwrap().to_vec());
        }
        assert_eq!(order, vec![b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn out_of_order_answers_settle_each_message_once() {
        let lim = limits(10, 100);
        let mut l = Ledger::new();
        for p in [b"a", b"b", b"c"] {
            push(&mut l, &lim, p, Delivery::AtMostOnce);
        }
        let ids = write(&mut l, 3, false);
        let mut settled = Vec::new();
        l.written(&mut |s| settled.push(s));
        assert!(settled.is_empty(), "awaiting answers");
        assert!(l.answered(ids[2], false, &mut |s| settled.push(s)));
        assert!(l.answered(ids[0], true, &mut |s| settled.push(s)), "a step");
        assert_eq!(settled.len(), 1);
        assert!(!l.answered(ids[2], false, &mut |s| settled.push(s)), "once");
        assert!(l.answered(ids[0], false, &mut |s| settled.push(s)));
        assert_eq!((l.len(), l.in_flight()), (1, 1));
        let mut rest = Vec::new();
        l.connection_lost(false, 3, &mut |s| rest.push(s));
        assert_eq!(rest[0].0, ids[1]);
        assert_eq!(rest[0].1, Outcome::InDoubt);
        assert_eq!((l.len(), l.bytes()), (0, 0));
    }

    #[test]
    fn lost_connection_replays_idempotent_and_doubts_the_rest_in_order() {
        let lim = limits(10, 100);
        let mut l = Ledger::new();
        push(&mut l, &lim, b"i1", Delivery::Idempotent);
        push(&mut l, &lim, b"a1", Delivery::AtMostOnce);
        push(&mut l, &lim, b"i2", Delivery::Idempotent);
        push(&mut l, &lim, b"q", Delivery::AtMostOnce);
        write(&mut l, 3, false);
        let mut settled = Vec::new();
        l.written(&mut |s| settled.push(s));
        assert_eq!(l.connection_lost(false, 1, &mut |s| settled.push(s)), 2);
        assert_eq!(settled.len(), 1);
        assert_eq!(
            (settled[0].1, settled[0].2.as_deref()),
            (Outcome::InDoubt, Some(&b"a1"[..]))
        );
        let mut order = Vec::new();
        while let Some(e) = l.next_to_write() {
            order.push(e.payloads().next().unwrap().to_vec());
        }
        assert_eq!(order, vec![b"i1".to_vec(), b"i2".to_vec(), b"q".to_vec()]);
        settled.clear();
        assert_eq!(l.connection_lost(false, 1, &mut |s| settled.push(s)), 0);
        assert_eq!(
            settled.iter().filter(|s| s.1 == Outcome::InDoubt).count(),
            3,
            "out of replays: in doubt"
        );
        assert_eq!((l.len(), l.bytes()), (0, 0));
    }

    #[test]
    fn a_resumed_session_resends_unconfirmed_messages_as_they_were() {
        let lim = limits(10, 100);
        let mut l = Ledger::new();
        push(&mut l, &lim, b"q2", Delivery::AtMostOnce);
        push(&mut l, &lim, b"later", Delivery::AtMostOnce);
        let ids = write(&mut l, 1, false);
        l.entries[0].key = Some(7);
        l.written(&mut |_| {});
        assert!(l.answered(ids[0], true, &mut |_| {}));
        assert_eq!(
            l.connection_lost(true, 3, &mut |_| panic!("nothing settles")),
            0
        );
        assert_eq!(l.resume(), 1);
        let e = l.next_to_write().unwrap();
        assert_eq!((e.id, e.key, e.stage, e.again), (ids[0], Some(7), 1, true));
        // Not resumed next time: at most once, so in doubt.
        let mut settled = Vec::new();
        l.connection_lost(true, 3, &mut |s| settled.push(s));
        l.unconfirmed_lost(3, &mut |s| settled.push(s));
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].1, Outcome::InDoubt);
        assert_eq!(l.queued(), 1);
    }

    #[test]
    fn unconfirmed_or_replayed_messages_are_never_called_abandoned() {
        let lim = limits(10, 100);
        let mut l = Ledger::new();
        push(&mut l, &lim, b"i", Delivery::Idempotent);
        push(&mut l, &lim, b"never", Delivery::Idempotent);
        write(&mut l, 1, false);
        l.written(&mut |_| {});
        assert_eq!(l.connection_lost(false, 3, &mut |_| {}), 1);
        let mut settled = Vec::new();
        l.abandon_all(AbandonReason::Closed, &mut |s| settled.push(s));
        let outcomes: Vec<_> = settled.iter().map(|s| s.1).collect();
        assert_eq!(
            outcomes,
            [Outcome::InDoubt, Outcome::Abandoned(AbandonReason::Closed)]
        );
    }

    #[test]
    fn confirmed_on_write_means_delivered_at_write_completion() {
        let lim = limits(10, 100);
        let mut l = Ledger::new();
        let mut b = Batch::new();
        b.push(b"x");
        b.push(b"y");
        l.push(Item::Batch(b), Delivery::AtMostOnce, &lim, &mut |_| {})
            .unwrap();
        write(&mut l, 1, true);
        let mut settled = Vec::new();
        l.written(&mut |s| settled.push(s));
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].1, Outcome::Delivered);
        assert_eq!(settled[0].2, None);
        assert_eq!((l.len(), l.bytes(), l.writing), (0, 0, 0));
    }
}
