//! The one place handles and the session task meet for commands and receipts.
//!
//! A channel node and a `oneshot` per message cost an allocation each; the mailbox costs
//! none in steady state. Handles push commands into one queue under a mutex and wake the task
//! only when it is waiting (so a burst of sends is one wakeup); the task takes the whole
//! queue at once. A receipt is a slot in a table kept here: the task fills slots for a whole
//! round under one lock and wakes their waiters afterwards.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::channel::oneshot;
use redial_core::{AbandonReason, Outcome, RejectReason};

use crate::handle::{Command, Streams, Undelivered};

/// What a receipt resolves to.
pub(crate) type Verdict = Result<(), Undelivered>;

/// No free slot (the end of the free list).
const NO_SLOT: u32 = u32::MAX;

/// One receipt's slot.
enum Slot {
    /// Free; the next free slot (a list threaded through the table, so free slots cost no
    /// second vector).
    Free(u32),
    /// Not settled; the receipt's waker, once polled.
    Waiting(Option<Waker>),
    /// Settled; a failure is boxed (rare, and large), so a slot stays small.
    Done(Result<(), Box<Undelivered>>),
    /// The receipt was dropped before its message was settled.
    Forgotten,
}

pub(crate) struct Inner {
    /// The state snapshot and the user's streams, under the same lock (one mutex per
    /// session).
    pub(crate) streams: Streams,
    cmds: VecDeque<Command>,
    slots: Vec<Slot>,
    /// The first free slot, or [`NO_SLOT`].
    free: u32,
    /// The session task's waker while it waits for commands.
    task: Option<Waker>,
    /// False once the session task ended: nothing is accepted any more.
    open: bool,
}

impl Inner {
    /// Frees `slot` (puts it on the free list).
    fn release(&mut self, slot: u32) {
        self.slots[slot as usize] = Slot::Free(self.free);
        self.free = slot;
    }
}

pub(crate) struct Mailbox {
    inner: Mutex<Inner>,
    /// Live [`crate::Handle`]s.
    handles: AtomicUsize,
}

/// What the task took from the mailbox.
pub(crate) enum Took {
    /// Commands, in order (the task's own buffer, refilled).
    Some,
    /// Every handle is gone and no command is left.
    HandlesGone,
    Nothing,
}

impl Mailbox {
    pub(crate) fn new(streams: Streams) -> Self {
        Mailbox {
            inner: Mutex::new(Inner {
                streams,
                cmds: VecDeque::new(),
                slots: Vec::new(),
                free: NO_SLOT,
                task: None,
                open: true,
            }),
            handles: AtomicUsize::new(1),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ----- the handle side -----

    /// Queues a command that will settle a receipt; returns the receipt's slot, or the
    /// command back if the session has ended.
    pub(crate) fn push_tracked(&self, make: impl FnOnce(u32) -> Command) -> Result<u32, Command> {
        let mut g = self.lock();
        let slot = match g.free {
            NO_SLOT => {
                let i = u32::try_from(g.slots.len()).expect("fewer than 2^32 - 1 open receipts");
                assert!(i != NO_SLOT, "fewer than 2^32 - 1 open receipts");
                g.slots.push(Slot::Waiting(None));
                i
            }
            i => {
                let Slot::Free(next) = g.slots[i as usize] else {
                    unreachable!("the free list holds free slots")
                };
                g.free = next;
                g.slots[i as usize] = Slot::Waiting(None);
                i
            }
        };
        let cmd = make(slot);
        if !g.open {
            g.release(slot);
            return Err(cmd);
        }
        g.cmds.push_back(cmd);
        let task = g.task.take();
        drop(g);
        if let Some(w) = task {
            w.wake();
        }
        Ok(slot)
    }

    /// Queues a command without a receipt; `Err` if the session has ended.
    pub(crate) fn push(&self, cmd: Command) -> Result<(), Command> {
        let mut g = self.lock();
        if !g.open {
            return Err(cmd);
        }
        g.cmds.push_back(cmd);
        let task = g.task.take();
        drop(g);
        if let Some(w) = task {
            w.wake();
        }
        Ok(())
    }

    pub(crate) fn is_open(&self) -> bool {
        self.lock().open
    }

    pub(crate) fn handle_cloned(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handle_dropped(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let task = self.lock().task.take();
            if let Some(w) = task {
                w.wake();
            }
        }
    }

    /// Polls a receipt's slot.
    pub(crate) fn poll_slot(&self, slot: u32, cx: &mut Context<'_>) -> Poll<Verdict> {
        let mut g = self.lock();
        let next = g.free;
        let s = &mut g.slots[slot as usize];
        match s {
            Slot::Waiting(w) => {
                let old = match w {
                    Some(w) if w.will_wake(cx.waker()) => None,
                    _ => w.replace(cx.waker().clone()),
                };
                // A waker may own a task whose drop takes this lock again: not under it.
                drop(g);
                drop(old);
                Poll::Pending
            }
            Slot::Done(_) => {
                // Freed in the same write that takes the verdict out.
                let Slot::Done(v) = std::mem::replace(s, Slot::Free(next)) else {
                    unreachable!("matched above")
                };
                g.free = slot;
                Poll::Ready(v.map_err(|u| *u))
            }
            // A slot is only read by its own receipt, which stops at `Ready`.
            Slot::Free(_) | Slot::Forgotten => Poll::Ready(Err(abandoned())),
        }
    }

    /// The receipt of `slot` was dropped.
    pub(crate) fn forget(&self, slot: u32) {
        let mut g = self.lock();
        let s = &mut g.slots[slot as usize];
        match s {
            Slot::Waiting(_) => *s = Slot::Forgotten,
            Slot::Done(_) => {
                // Dropped outside the lock: a verdict may hold a large payload.
                let v = std::mem::replace(s, Slot::Forgotten);
                g.release(slot);
                drop(g);
                drop(v);
            }
            Slot::Free(_) | Slot::Forgotten => {}
        }
    }

    // ----- the task side -----

    /// Moves every queued command into `into`, or registers the task's waker.
    pub(crate) fn take(&self, into: &mut VecDeque<Command>, cx: &mut Context<'_>) -> Took {
        let mut g = self.lock();
        if !g.cmds.is_empty() {
            // Swap, so both buffers keep their capacity.
            std::mem::swap(&mut g.cmds, into);
            return Took::Some;
        }
        if self.handles.load(Ordering::Acquire) == 0 {
            return Took::HandlesGone;
        }
        let old = match &g.task {
            Some(w) if w.will_wake(cx.waker()) => None,
            _ => g.task.replace(cx.waker().clone()),
        };
        drop(g);
        drop(old);
        Took::Nothing
    }

    /// Settles receipts, under one lock; wakes their tasks after it. `wakers` is scratch
    /// space, left empty.
    pub(crate) fn settle(&self, verdicts: &mut Vec<(u32, Verdict)>, wakers: &mut Vec<Waker>) {
        if verdicts.is_empty() {
            return;
        }
        let mut forgotten = Vec::new();
        {
            let mut g = self.lock();
            for (slot, v) in verdicts.drain(..) {
                fill(&mut g, slot, v, wakers, &mut forgotten);
            }
        }
        // Payloads nobody waits for are freed outside the lock.
        drop(forgotten);
        for w in wakers.drain(..) {
            w.wake();
        }
    }

    /// The session ended: refuse everything from now on, reject commands still queued, and
    /// settle every receipt still waiting as abandoned (the core settles every message it
    /// holds before it closes; this also covers a task torn down mid-way). Returns the close
    /// waiters found in the queue.
    pub(crate) fn shut(&self) -> Vec<oneshot::Sender<()>> {
        let mut waiters = Vec::new();
        let mut wakers = Vec::new();
        let mut forgotten = Vec::new();
        {
            let mut g = self.lock();
            g.open = false;
            g.task = None;
            let closed = Outcome::Rejected(RejectReason::Closed);
            for c in std::mem::take(&mut g.cmds) {
                let (slot, v) = match c {
                    Command::Send { payload, slot, .. } => {
                        (slot, Err(Undelivered::new(closed, payload)))
                    }
                    Command::SendBatch { batch, slot, .. } => {
                        (slot, Err(Undelivered::batch(closed, batch)))
                    }
                    Command::Close { done, .. } => {
                        waiters.push(done);
                        continue;
                    }
                    Command::Reconnect => continue,
                };
                fill(&mut g, slot, v, &mut wakers, &mut forgotten);
            }
            for slot in 0..g.slots.len() as u32 {
                if matches!(g.slots[slot as usize], Slot::Waiting(_)) {
                    fill(&mut g, slot, Err(abandoned()), &mut wakers, &mut forgotten);
                }
            }
        }
        drop(forgotten);
        for w in wakers {
            w.wake();
        }
        waiters
    }
}

/// Gives `slot` its verdict: stored for a waiting receipt (its waker collected), handed to
/// `forgotten` for a dropped one.
fn fill(
    g: &mut Inner,
    slot: u32,
    v: Verdict,
    wakers: &mut Vec<Waker>,
    forgotten: &mut Vec<Verdict>,
) {
    let s = &mut g.slots[slot as usize];
    match s {
        Slot::Waiting(w) => {
            if let Some(w) = w.take() {
                wakers.push(w);
            }
            *s = Slot::Done(v.map_err(Box::new));
        }
        Slot::Forgotten => {
            g.release(slot);
            forgotten.push(v);
        }
        // Settled twice: the first verdict stands.
        Slot::Done(_) | Slot::Free(_) => {}
    }
}

fn abandoned() -> Undelivered {
    Undelivered::new(Outcome::Abandoned(AbandonReason::Closed), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;
    use redial_core::Delivery;

    fn send(mb: &Mailbox, p: &[u8]) -> u32 {
        mb.push_tracked(|slot| Command::Send {
            payload: p.to_vec(),
            delivery: Delivery::AtMostOnce,
            slot,
        })
        .map_err(|_| "closed")
        .unwrap()
    }

    #[test]
    fn the_task_takes_commands_in_order_and_receipts_get_their_verdicts() {
        let mb = Mailbox::new(Streams::new(1));
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut got = VecDeque::new();
        assert!(matches!(mb.take(&mut got, &mut cx), Took::Nothing));
        let (a, b) = (send(&mb, b"a"), send(&mb, b"b"));
        assert!(matches!(mb.take(&mut got, &mut cx), Took::Some));
        let slots: Vec<u32> = got
            .iter()
            .map(|c| match c {
                Command::Send { slot, .. } => *slot,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(slots, [a, b]);
        assert!(mb.poll_slot(a, &mut cx).is_pending());
        let lost = Undelivered::new(Outcome::InDoubt, b"b".to_vec());
        mb.settle(
            &mut vec![(a, Ok(())), (b, Err(lost.clone()))],
            &mut Vec::new(),
        );
        assert_eq!(mb.poll_slot(a, &mut cx), Poll::Ready(Ok(())));
        assert_eq!(mb.poll_slot(b, &mut cx), Poll::Ready(Err(lost)));
        // Both slots are free again and reused.
        let mut again = [send(&mb, b"c"), send(&mb, b"d")];
        again.sort_unstable();
        assert_eq!(again, [a.min(b), a.max(b)]);
    }

    #[test]
    fn dropped_receipts_free_their_slots_whenever_they_settle() {
        let mb = Mailbox::new(Streams::new(1));
        let early = send(&mb, b"x");
        mb.forget(early);
        mb.settle(&mut vec![(early, Ok(()))], &mut Vec::new());
        let late = send(&mb, b"y");
        assert_eq!(late, early, "freed at settlement");
        mb.settle(&mut vec![(late, Ok(()))], &mut Vec::new());
        mb.forget(late);
        assert_eq!(send(&mb, b"z"), late, "freed when dropped after settlement");
        assert_eq!(mb.lock().slots.len(), 1, "one slot served all three");
    }

    #[test]
    fn a_shut_mailbox_rejects_queued_abandons_waiting_and_refuses_new() {
        let mb = Mailbox::new(Streams::new(1));
        let mut cx = Context::from_waker(noop_waker_ref());
        let taken = send(&mb, b"taken");
        let mut got = VecDeque::new();
        let _ = mb.take(&mut got, &mut cx);
        let queued = send(&mb, b"queued");
        let (done, mut closed) = oneshot::channel();
        mb.push(Command::Close {
            mode: redial_core::CloseMode::Immediate,
            done,
        })
        .map_err(|_| "closed")
        .unwrap();
        let waiters = mb.shut();
        assert_eq!(waiters.len(), 1);
        drop(waiters);
        assert!(closed.try_recv().is_err(), "close waiter handed out");
        let Poll::Ready(Err(u)) = mb.poll_slot(queued, &mut cx) else {
            panic!("queued send not settled");
        };
        assert_eq!(
            (u.outcome, u.payload.as_slice()),
            (Outcome::Rejected(RejectReason::Closed), &b"queued"[..])
        );
        let Poll::Ready(Err(u)) = mb.poll_slot(taken, &mut cx) else {
            panic!("waiting receipt not settled");
        };
        assert_eq!(u.outcome, Outcome::Abandoned(AbandonReason::Closed));
        assert!(mb.push(Command::Reconnect).is_err());
        assert!(!mb.is_open());
    }

    #[test]
    fn the_last_handle_gone_is_seen_once_the_queue_is_empty() {
        let mb = Mailbox::new(Streams::new(1));
        let mut cx = Context::from_waker(noop_waker_ref());
        mb.handle_cloned();
        send(&mb, b"last words");
        mb.handle_dropped();
        mb.handle_dropped();
        let mut got = VecDeque::new();
        assert!(matches!(mb.take(&mut got, &mut cx), Took::Some));
        got.clear();
        assert!(matches!(mb.take(&mut got, &mut cx), Took::HandlesGone));
    }
}
