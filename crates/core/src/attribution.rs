//! Reply attribution: the one table of what the current connection waits for.
//!
//! Every written unit that expects an answer (a message, our heartbeat, a subscription
//! request) takes an entry, in write order, keyed by its [`Expect`]. An inbound reply names a
//! [`Match`]; the table finds what it answers:
//!
//! - in order: the oldest `Next` entry; `Barrier` entries before it are confirmed with it;
//! - by key: the entry with that key, anywhere;
//! - by type: heartbeat entries (with a token, all up to it);
//! - by route: the oldest `Next` entry, if it is the subscription for that route.
//!
//! The table dies with its connection: nothing an old connection waited for can be answered
//! by a new one.

use alloc::collections::VecDeque;

use crate::message::MsgId;
use crate::proto::Expect;
use crate::subscription::SubId;
use crate::time::Instant;

/// What an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A message of the ledger.
    Msg(MsgId),
    /// Our heartbeat.
    Ping { token: u64 },
    /// A subscription request.
    Sub(SubId),
    /// An unsubscription request.
    Unsub(SubId),
    /// Nobody any more (its message timed out): the answer is dropped when it comes, so the
    /// order of later answers stays right.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) expect: Expect,
    pub(crate) owner: Owner,
    /// When it was written.
    pub(crate) at: Instant,
}

/// What an answer found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answered {
    pub(crate) owner: Owner,
    pub(crate) at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    q: VecDeque<Pending>,
    /// Entries keyed by [`Expect::Key`] (the peer's in-flight window counts them).
    keyed: usize,
    /// Heartbeat entries.
    pings: usize,
    /// The newest in-order entry (`Next` or `Barrier`) is a barrier: nothing written after it
    /// will answer it until an in-order request follows.
    barrier_last: bool,
}

impl Table {
    pub(crate) fn push(&mut self, expect: Expect, owner: Owner, at: Instant) {
        match expect {
            Expect::Barrier => self.barrier_last = true,
            // A heartbeat answered by type confirms the barriers before it too (a WebSocket
            // Pong: the peer read everything written before our Ping).
            Expect::Next | Expect::Heartbeat => self.barrier_last = false,
            _ => {}
        }
        match expect {
            Expect::Key(_) => self.keyed += 1,
            Expect::Heartbeat => self.pings += 1,
            _ if matches!(owner, Owner::Ping { .. }) => self.pings += 1,
            _ => {}
        }
        self.q.push_back(Pending { expect, owner, at });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    pub(crate) fn keyed(&self) -> usize {
        self.keyed
    }

    /// Whether a barrier waits for an in-order request written after it.
    pub(crate) fn barrier_unanswered(&self) -> bool {
        self.barrier_last
    }

    /// Whether a heartbeat is outstanding.
    pub(crate) fn ping_outstanding(&self) -> bool {
        self.pings > 0
    }

    fn remove(&mut self, i: usize) -> Pending {
        let p = self.q.remove(i).expect("index in range");
        if matches!(p.expect, Expect::Key(_)) {
            self.keyed -= 1;
        }
        if matches!(p.owner, Owner::Ping { .. }) {
            self.pings -= 1;
        }
        p
    }

    /// The oldest `Next` entry, confirming (through `barrier`) the `Barrier` entries written
    /// before it. `None`: nothing waits for an in-order reply.
    pub(crate) fn answer_next(&mut self, barrier: &mut dyn FnMut(Owner)) -> Option<Answered> {
        let i = self.q.iter().position(|p| p.expect == Expect::Next)?;
        let p = self.remove(i);
        // Barriers before it: the peer processed them before the unit it just answered.
        let mut j = 0;
        let mut left = i;
        while left > 0 && j < self.q.len() {
            if self.q[j].expect == Expect::Barrier {
                let b = self.remove(j);
                barrier(b.owner);
            } else {
                j += 1;
            }
            left -= 1;
        }
        Some(Answered {
            owner: p.owner,
            at: p.at,
        })
    }

    /// The entry keyed `key`; with `keep`, it stays (the exchange continues).
    pub(crate) fn answer_key(&mut self, key: u64, keep: bool) -> Option<Answered> {
        let i = self.q.iter().position(|p| p.expect == Expect::Key(key))?;
        let p = self.q[i];
        if !keep {
            self.remove(i);
        }
        Some(Answered {
            owner: p.owner,
            at: p.at,
        })
    }

    /// Heartbeat entries answered by type: every one up to `token`, or the oldest one.
    /// Returns the newest answered (for its RTT), `None` when none was outstanding. The
    /// `Barrier` entries written before the newest answered heartbeat are confirmed through
    /// `barrier` (the peer read them before it read that heartbeat), with a token or without.
    pub(crate) fn answer_heartbeat(
        &mut self,
        token: Option<u64>,
        barrier: &mut dyn FnMut(Owner),
    ) -> Option<Answered> {
        let is_typed = |p: &Pending| p.expect == Expect::Heartbeat;
        match token {
            None => {
                let mut i = self.q.iter().position(is_typed)?;
                let mut j = 0;
                while j < i {
                    if self.q[j].expect == Expect::Barrier {
                        let b = self.remove(j);
                        barrier(b.owner);
                        i -= 1;
                    } else {
                        j += 1;
                    }
                }
                let p = self.remove(i);
                Some(Answered {
                    owner: p.owner,
                    at: p.at,
                })
            }
            Some(t) => {
                let answers = |p: &Pending| {
                    is_typed(p) && matches!(p.owner, Owner::Ping { token } if token <= t)
                };
                let newest = self.q.iter().rposition(answers)?;
                let found = self.q[newest];
                let (mut i, mut left) = (0, newest + 1);
                while left > 0 {
                    left -= 1;
                    let p = self.q[i];
                    if answers(&p) {
                        self.remove(i);
                    } else if p.expect == Expect::Barrier {
                        self.remove(i);
                        barrier(p.owner);
                    } else {
                        i += 1;
                    }
                }
                Some(Answered {
                    owner: found.owner,
                    at: found.at,
                })
            }
        }
    }

    /// Every entry of message `id` now belongs to nobody; keyed ones are removed (their key
    /// answers nothing any more). Returns how many there were.
    pub(crate) fn forget_msg(&mut self, id: MsgId) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.q.len() {
            if self.q[i].owner == Owner::Msg(id) {
                n += 1;
                if matches!(self.q[i].expect, Expect::Key(_) | Expect::Barrier) {
                    self.remove(i);
                    continue;
                }
                self.q[i].owner = Owner::Gone;
            }
            i += 1;
        }
        n
    }

    /// The oldest message entry waiting for a reply of its own (not a barrier), for the
    /// request deadline.
    pub(crate) fn oldest_request(&self) -> Option<(MsgId, Instant)> {
        self.q.iter().find_map(|p| match (p.owner, p.expect) {
            (Owner::Msg(id), Expect::Next | Expect::Key(_)) => Some((id, p.at)),
            _ => None,
        })
    }

    /// The connection ended: nothing is awaited any more. Returns the entries, oldest first.
    pub(crate) fn clear(&mut self) -> impl Iterator<Item = Pending> + '_ {
        self.keyed = 0;
        self.pings = 0;
        self.barrier_last = false;
        self.q.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const T: Instant = Instant::ZERO;

    fn msg(n: u64) -> Owner {
        Owner::Msg(MsgId::from_raw(n))
    }

    #[test]
    fn in_order_replies_skip_keyed_entries_and_confirm_earlier_barriers() {
        let mut t = Table::default();
        t.push(Expect::Barrier, msg(1), T);
        t.push(Expect::Key(7), msg(2), T);
        t.push(Expect::Barrier, msg(3), T);
        t.push(Expect::Next, Owner::Ping { token: 1 }, T);
        t.push(Expect::Barrier, msg(4), T);
        let mut confirmed = Vec::new();
        let a = t.answer_next(&mut |o| confirmed.push(o)).unwrap();
        assert_eq!(a.owner, Owner::Ping { token: 1 });
        assert_eq!(confirmed, [msg(1), msg(3)], "barriers before it, not after");
        assert_eq!(t.answer_key(7, false).unwrap().owner, msg(2));
        assert_eq!(
            t.answer_next(&mut |_| {}),
            None,
            "nothing awaits an in-order reply"
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_pong_answers_every_earlier_ping_with_a_token() {
        let mut t = Table::default();
        for token in 1..=3 {
            t.push(Expect::Heartbeat, Owner::Ping { token }, T);
        }
        assert!(t.ping_outstanding());
        let a = t.answer_heartbeat(Some(2), &mut |_| {}).unwrap();
        assert_eq!(a.owner, Owner::Ping { token: 2 });
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.answer_heartbeat(Some(2), &mut |_| {}),
            None,
            "unsolicited"
        );
        assert!(t.answer_heartbeat(None, &mut |_| {}).is_some());
        assert!(!t.ping_outstanding());
    }

    #[test]
    fn a_pong_without_a_token_confirms_the_barriers_before_the_oldest_ping() {
        let mut t = Table::default();
        t.push(Expect::Barrier, msg(1), T);
        t.push(Expect::Heartbeat, Owner::Ping { token: 1 }, T);
        t.push(Expect::Barrier, msg(2), T);
        t.push(Expect::Heartbeat, Owner::Ping { token: 2 }, T);
        let mut confirmed = Vec::new();
        let a = t
            .answer_heartbeat(None, &mut |o| confirmed.push(o))
            .unwrap();
        assert_eq!(a.owner, Owner::Ping { token: 1 });
        assert_eq!(confirmed, [msg(1)], "only what was written before ping 1");
        let a = t
            .answer_heartbeat(None, &mut |o| confirmed.push(o))
            .unwrap();
        assert_eq!(a.owner, Owner::Ping { token: 2 });
        assert_eq!(confirmed, [msg(1), msg(2)]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_pong_confirms_the_barriers_written_before_its_ping_only() {
        let mut t = Table::default();
        t.push(Expect::Barrier, msg(1), T);
        t.push(Expect::Heartbeat, Owner::Ping { token: 1 }, T);
        assert!(!t.barrier_unanswered(), "the ping will answer it");
        t.push(Expect::Barrier, msg(2), T);
        t.push(Expect::Heartbeat, Owner::Ping { token: 2 }, T);
        t.push(Expect::Barrier, msg(3), T);
        assert!(t.barrier_unanswered());
        let mut confirmed = Vec::new();
        let a = t
            .answer_heartbeat(Some(2), &mut |o| confirmed.push(o))
            .unwrap();
        assert_eq!(a.owner, Owner::Ping { token: 2 });
        assert_eq!(
            confirmed,
            [msg(1), msg(2)],
            "not the one written after ping 2"
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.answer_heartbeat(Some(9), &mut |_| {}), None);
    }

    #[test]
    fn a_forgotten_message_keeps_its_place_in_order_but_frees_its_key() {
        let mut t = Table::default();
        t.push(Expect::Next, msg(1), T);
        t.push(Expect::Key(9), msg(1), T);
        t.push(Expect::Next, msg(2), T);
        assert_eq!(t.forget_msg(MsgId::from_raw(1)), 2);
        assert_eq!(t.keyed(), 0);
        assert_eq!(t.answer_next(&mut |_| {}).unwrap().owner, Owner::Gone);
        assert_eq!(t.answer_next(&mut |_| {}).unwrap().owner, msg(2));
    }
}
