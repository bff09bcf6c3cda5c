//! Subscriptions: what the session listens to, restored on every new connection.

use alloc::vec::Vec;
use core::fmt;

/// Identity of one subscription, unique within a session. The NATS protocol uses it as the
/// subscription's `sid`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubId(u64);

impl SubId {
    /// The raw number (1 for the first subscription).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Builds an id from a raw number; for replaying traces and for tests.
    pub const fn from_raw(raw: u64) -> Self {
        SubId(raw)
    }
}

impl fmt::Debug for SubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// What a subscription owes the current connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owed {
    Nothing,
    Subscribe,
    Unsubscribe,
}

#[derive(Clone, Debug)]
pub(crate) struct Sub {
    pub(crate) id: SubId,
    /// The protocol's encoding of what is subscribed to.
    pub(crate) spec: Vec<u8>,
    pub(crate) owed: Owed,
    /// The user ended it: nothing more is delivered; it goes once the peer is told.
    pub(crate) ending: bool,
}

/// The live subscriptions, in creation order.
#[derive(Debug, Default)]
pub(crate) struct Subs {
    subs: Vec<Sub>,
    next: u64,
    /// How many owe something (so a steady session checks one counter, not the list).
    owed: usize,
}

impl Subs {
    pub(crate) fn add(&mut self, spec: Vec<u8>) -> SubId {
        self.next += 1;
        let id = SubId(self.next);
        self.subs.push(Sub {
            id,
            spec,
            owed: Owed::Subscribe,
            ending: false,
        });
        self.owed += 1;
        id
    }

    pub(crate) fn get(&self, id: SubId) -> Option<&Sub> {
        self.subs.iter().find(|s| s.id == id)
    }

    /// The `i`-th subscription, in creation order.
    pub(crate) fn at(&self, i: usize) -> Option<&Sub> {
        self.subs.get(i)
    }

    pub(crate) fn any_owed(&self) -> bool {
        self.owed > 0
    }

    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    fn set_owed(&mut self, i: usize, owed: Owed) {
        let was = core::mem::replace(&mut self.subs[i].owed, owed);
        match (was == Owed::Nothing, owed == Owed::Nothing) {
            (true, false) => self.owed += 1,
            (false, true) => self.owed -= 1,
            _ => {}
        }
    }

    /// The user ends `id`: returns `Some(true)` if the peer must be told (it was subscribed on
    /// this connection), `Some(false)` if it is simply gone, `None` if unknown.
    pub(crate) fn end(&mut self, id: SubId, connected: bool) -> Option<bool> {
        let i = self.subs.iter().position(|s| s.id == id && !s.ending)?;
        if !connected || self.subs[i].owed == Owed::Subscribe {
            // Never told to this connection (or no connection): nothing to undo.
            self.remove_at(i);
            return Some(false);
        }
        self.subs[i].ending = true;
        self.set_owed(i, Owed::Unsubscribe);
        Some(true)
    }

    /// Removes `id` (its unsubscription was confirmed, or its subscription refused).
    pub(crate) fn remove(&mut self, id: SubId) -> bool {
        match self.subs.iter().position(|s| s.id == id) {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    fn remove_at(&mut self, i: usize) {
        self.set_owed(i, Owed::Nothing);
        self.subs.remove(i);
    }

    /// A new connection knows none of them: every live one is owed again; ending ones are
    /// done (returned, to be reported).
    pub(crate) fn new_connection(&mut self, ended: &mut Vec<SubId>) {
        let mut i = 0;
        while i < self.subs.len() {
            if self.subs[i].ending {
                ended.push(self.subs[i].id);
                self.remove_at(i);
            } else {
                self.set_owed(i, Owed::Subscribe);
                i += 1;
            }
        }
    }

    /// The first subscription owing something, marked as told.
    pub(crate) fn take_owed(&mut self) -> Option<(SubId, Owed)> {
        if self.owed == 0 {
            return None;
        }
        let i = self.subs.iter().position(|s| s.owed != Owed::Nothing)?;
        let owed = self.subs[i].owed;
        self.set_owed(i, Owed::Nothing);
        Some((self.subs[i].id, owed))
    }

    /// Removes every subscription, returning their ids.
    pub(crate) fn clear(&mut self) -> Vec<SubId> {
        self.owed = 0;
        self.subs.drain(..).map(|s| s.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_connection_owes_every_live_subscription_and_forgets_ending_ones() {
        let mut s = Subs::default();
        let a = s.add(b"a".to_vec());
        let b = s.add(b"b".to_vec());
        assert_eq!(s.take_owed(), Some((a, Owed::Subscribe)));
        assert_eq!(s.take_owed(), Some((b, Owed::Subscribe)));
        assert!(!s.any_owed());
        assert_eq!(s.end(a, true), Some(true));
        assert!(s.get(a).is_some_and(|s| s.ending));
        let mut ended = Vec::new();
        s.new_connection(&mut ended);
        assert_eq!(ended, [a]);
        assert_eq!(s.take_owed(), Some((b, Owed::Subscribe)));
        assert_eq!(s.end(b, false), Some(false));
        assert_eq!(s.len(), 0);
        assert_eq!(s.end(b, false), None);
    }
}
