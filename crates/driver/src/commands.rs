//! User commands applied to the session, and the receipts and streams they are owed.

use std::collections::VecDeque;

use futures::channel::oneshot;
use redial_core::{Batch, Instant, MsgId, Outcome, Protocol, SubId};

use crate::received::{Reply, Undelivered};
use crate::shared::{Command, Outbox, StreamId, Verdict};
use crate::tap::Tapped;

/// What a message's receipt waits for.
enum Owed {
    Send,
    /// A request, and its reply once read (settled with its outcome).
    Request(Option<Reply>),
    Batch,
}

/// The receipts of the messages in the session, by message id. Ids are handed out in enqueue
/// order, so this is a window over them: `base` is the id of the front entry.
#[derive(Default)]
struct Book {
    base: u64,
    entries: VecDeque<Option<(u32, Owed)>>,
}

impl Book {
    fn insert(&mut self, id: MsgId, slot: u32, owed: Owed) {
        let id = id.get();
        if self.entries.is_empty() {
            self.base = id;
        }
        // Ids only grow; a gap (ids the core gave nothing we track) is padded.
        let at = id.saturating_sub(self.base) as usize;
        while self.entries.len() < at {
            self.entries.push_back(None);
        }
        self.entries.push_back(Some((slot, owed)));
    }

    fn get_mut(&mut self, id: MsgId) -> Option<&mut (u32, Owed)> {
        let at = id.get().checked_sub(self.base)? as usize;
        self.entries.get_mut(at)?.as_mut()
    }

    fn remove(&mut self, id: MsgId) -> Option<(u32, Owed)> {
        let at = id.get().checked_sub(self.base)? as usize;
        let e = self.entries.get_mut(at)?.take();
        while matches!(self.entries.front(), Some(None)) {
            self.entries.pop_front();
            self.base += 1;
        }
        e
    }

    fn drain(&mut self) -> impl Iterator<Item = (u32, Owed)> + '_ {
        self.entries.drain(..).flatten()
    }
}

#[derive(Default)]
pub(crate) struct Commands {
    book: Book,
    /// Live subscriptions and the streams they feed.
    subs: Vec<(SubId, StreamId)>,
    /// Waiting for the session to end.
    pub(crate) close_waiters: Vec<oneshot::Sender<()>>,
    /// Bytes of replies nobody waits for, to hand back as credit after the read.
    pub(crate) unclaimed: (usize, usize),
}

impl Commands {
    /// Applies one command.
    pub(crate) fn apply<P: Protocol>(
        &mut self,
        session: &mut Tapped<P>,
        now: Instant,
        cmd: Command,
        out: &mut Outbox,
    ) {
        match cmd {
            Command::Send {
                payload,
                delivery,
                slot,
                request,
            } => match session.enqueue(now, payload, delivery) {
                Ok(id) => {
                    let owed = if request {
                        Owed::Request(None)
                    } else {
                        Owed::Send
                    };
                    self.book.insert(id, slot, owed);
                }
                Err(r) => {
                    let u = Undelivered::new(Outcome::Rejected(r.reason), r.payload);
                    out.settled.push((slot, Err(Box::new(u))));
                }
            },
            Command::Batch {
                batch,
                delivery,
                slot,
            } => match session.enqueue_batch(now, batch, delivery) {
                Ok(id) => self.book.insert(id, slot, Owed::Batch),
                Err(r) => {
                    let b = Batch::from_vec(r.payload).unwrap_or_default();
                    let u = Undelivered::batch(Outcome::Rejected(r.reason), b);
                    out.settled.push((slot, Err(Box::new(u))));
                }
            },
            Command::Subscribe { spec, stream } => match session.subscribe(now, spec) {
                Ok(id) => self.subs.push((id, stream)),
                Err(e) => {
                    tracing::warn!(error = %e, "subscription refused");
                    out.ended_streams.push(stream);
                }
            },
            Command::Unsubscribe { stream } => {
                if let Some(i) = self.subs.iter().position(|(_, s)| *s == stream) {
                    let (id, _) = self.subs.remove(i);
                    session.unsubscribe(now, id);
                }
            }
            Command::Close { mode, done } => {
                self.close_waiters.push(done);
                session.close(now, mode);
            }
            Command::Reconnect => session.reconnect_now(now),
        }
    }

    /// The stream a subscription feeds, if its consumer still exists.
    pub(crate) fn stream(&self, sub: SubId) -> Option<StreamId> {
        self.subs.iter().find(|(id, _)| *id == sub).map(|(_, s)| *s)
    }

    /// A subscription ended: its stream ends (if anyone holds it).
    pub(crate) fn sub_ended(&mut self, sub: SubId, out: &mut Outbox) {
        if let Some(i) = self.subs.iter().position(|(id, _)| *id == sub) {
            let (_, stream) = self.subs.remove(i);
            out.ended_streams.push(stream);
        }
    }

    /// A reply to message `id` was read: kept for its request's receipt, or (for a `send`, a
    /// batch, a message nobody tracks) dropped and counted as credit to hand back.
    pub(crate) fn reply(&mut self, id: MsgId, body: &[u8], refused: bool) {
        match self.book.get_mut(id) {
            Some((_, Owed::Request(r))) if r.is_none() => {
                *r = Some(Reply {
                    body: body.to_vec(),
                    refused,
                });
            }
            _ => {
                self.unclaimed.0 += 1;
                self.unclaimed.1 += body.len();
            }
        }
    }

    /// A message ended: its receipt is settled.
    pub(crate) fn settle(
        &mut self,
        id: MsgId,
        outcome: Outcome,
        payload: Option<Vec<u8>>,
        out: &mut Outbox,
    ) {
        let Some((slot, owed)) = self.book.remove(id) else {
            return;
        };
        let v: Verdict = match (outcome, owed) {
            (Outcome::Delivered, Owed::Request(reply)) => Ok(reply),
            (Outcome::Delivered, _) => Ok(None),
            (o, Owed::Batch) => {
                // The core hands back the records the driver gave it.
                let b = Batch::from_vec(payload.unwrap_or_default()).unwrap_or_default();
                Err(Box::new(Undelivered::batch(o, b)))
            }
            (o, owed) => {
                if let Owed::Request(Some(r)) = owed {
                    // A reply read for a message that then ended otherwise (it cannot: a
                    // reply delivers it); the reply's credit is handed back all the same.
                    self.unclaimed.0 += 1;
                    self.unclaimed.1 += r.body.len();
                }
                Err(Box::new(Undelivered::new(o, payload.unwrap_or_default())))
            }
        };
        out.settled.push((slot, v));
    }

    /// The session ended: what the core did not settle (it settles everything; this is a
    /// safety net) ends abandoned.
    pub(crate) fn abandon_rest(&mut self, out: &mut Outbox) {
        let outcome = Outcome::Abandoned(redial_core::AbandonReason::Closed);
        for (slot, owed) in self.book.drain() {
            let u = match owed {
                Owed::Batch => Undelivered::batch(outcome, Batch::new()),
                _ => Undelivered::new(outcome, Vec::new()),
            };
            out.settled.push((slot, Err(Box::new(u))));
        }
        for (_, stream) in self.subs.drain(..) {
            out.ended_streams.push(stream);
        }
    }
}
