//! What the session task and the user's ends share: one `Mutex<SharedState>` per session.
//!
//! It guards the mailbox (commands and receipt slots), the user's streams (inbound data,
//! subscriptions, events), the state snapshot, and the credit the user hands back by taking
//! what was received. The task takes and gives everything in one [`Shared::exchange`] per
//! round; the user's ends lock it briefly, never across a wake.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::channel::oneshot;
use redial_core::{Batch, CloseMode, Delivery, Outcome, RejectReason, State, Stats};

use crate::received::{Message, Reply, SessionEvent, Undelivered};

/// A user command for the session task.
pub(crate) enum Command {
    /// A message (`slot`: its receipt); `request`: the caller wants the reply.
    Send {
        payload: Vec<u8>,
        delivery: Delivery,
        slot: u32,
        request: bool,
    },
    Batch {
        batch: Batch,
        delivery: Delivery,
        slot: u32,
    },
    Subscribe {
        spec: Vec<u8>,
        stream: StreamId,
    },
    Unsubscribe {
        stream: StreamId,
    },
    Close {
        mode: CloseMode,
        done: oneshot::Sender<()>,
    },
    Reconnect,
}

/// A user stream: the general inbound stream (0) or a subscription.
pub(crate) type StreamId = u64;
/// The general inbound stream.
pub(crate) const INBOUND: StreamId = 0;

/// What a receipt resolves to: delivered (with the reply, for a request), or handed back.
pub(crate) type Verdict = Result<Option<Reply>, Box<Undelivered>>;

/// No free slot (the end of the free list).
const NO_SLOT: u32 = u32::MAX;

enum Slot {
    /// Free; the next free slot (a list threaded through the table).
    Free(u32),
    /// Not settled; the receipt's waker, once polled.
    Waiting(Option<Waker>),
    Done(Verdict),
    /// The receipt was dropped before its message was settled.
    Forgotten,
}

/// One stream's queue, its consumer's waker, and whether the consumer is gone.
pub(crate) struct Queue<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    dropped: bool,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            items: VecDeque::new(),
            waker: None,
            dropped: false,
        }
    }
}

/// A drained queue that held this many items gives its buffer back: a burst does not pin
/// memory.
const QUEUE_KEEP: usize = 256;

impl<T> Queue<T> {
    fn poll(&mut self, ended: bool, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.items.pop_front() {
            if self.items.is_empty() && self.items.capacity() > QUEUE_KEEP {
                self.items = VecDeque::new();
            }
            return Poll::Ready(Some(item));
        }
        if ended {
            return Poll::Ready(None);
        }
        match &mut self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// A subscription's queue.
pub(crate) struct SubQueue {
    pub(crate) id: StreamId,
    pub(crate) queue: Queue<Message>,
    /// The subscription ended (refused by the peer): the stream ends once drained.
    pub(crate) ended: bool,
}

/// The events queue: bounded, the oldest dropped and counted when full.
pub(crate) struct EventQueue {
    queue: Queue<SessionEvent>,
    cap: usize,
    /// Dropped since the front event was queued, reported with it.
    missed: u64,
    missed_total: crate::metrics::MissedEvents,
}

/// What a round of the task hands to the user.
#[derive(Default)]
pub(crate) struct Outbox {
    pub(crate) settled: Vec<(u32, Verdict)>,
    /// Received units, for their streams, with their size (inbound credit).
    pub(crate) received: Vec<(StreamId, Message, usize)>,
    pub(crate) events: Vec<SessionEvent>,
    /// Subscription streams that end (the protocol refused them).
    pub(crate) ended_streams: Vec<StreamId>,
}

/// What a round of the task takes from the user.
#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) commands: VecDeque<Command>,
    /// Units and bytes the user took (or dropped) since the last round.
    pub(crate) taken: (usize, usize),
    /// Every handle is gone.
    pub(crate) handles_gone: bool,
}

/// Everything under the one mutex.
pub(crate) struct SharedState {
    commands: VecDeque<Command>,
    slots: Vec<Slot>,
    free: u32,
    /// The task's waker while it waits.
    task: Option<Waker>,
    /// False once the task has ended: nothing is accepted any more.
    open: bool,
    state: State,
    stats: Stats,
    inbound: Queue<Vec<u8>>,
    subs: Vec<SubQueue>,
    next_stream: StreamId,
    events: EventQueue,
    /// The task has ended: streams end once drained.
    ended: bool,
    taken: (usize, usize),
}

/// The session's shared allocation.
pub(crate) struct Shared {
    state: Mutex<SharedState>,
    /// Live handles (counted outside the lock: cloning a handle must not contend).
    handles: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(event_cap: usize, missed_total: crate::metrics::MissedEvents) -> Self {
        Shared {
            state: Mutex::new(SharedState {
                commands: VecDeque::new(),
                slots: Vec::new(),
                free: NO_SLOT,
                task: None,
                open: true,
                state: State::Disconnected,
                stats: Stats::default(),
                inbound: Queue::default(),
                subs: Vec::new(),
                next_stream: INBOUND + 1,
                events: EventQueue {
                    queue: Queue::default(),
                    cap: event_cap.max(1),
                    missed: 0,
                    missed_total,
                },
                ended: false,
                taken: (0, 0),
            }),
            handles: AtomicUsize::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ----- the user's side -----

    /// Queues a command; with `tracked`, a receipt slot is allocated first and passed to
    /// `make`. `Err` gives the command back if the session has ended.
    pub(crate) fn push(
        &self,
        tracked: bool,
        make: impl FnOnce(u32) -> Command,
    ) -> Result<u32, Command> {
        let mut g = self.lock();
        let slot = if tracked { g.alloc_slot() } else { NO_SLOT };
        let cmd = make(slot);
        if !g.open {
            if tracked {
                g.release(slot);
            }
            return Err(cmd);
        }
        g.commands.push_back(cmd);
        let task = g.task.take();
        drop(g);
        if let Some(w) = task {
            w.wake();
        }
        Ok(slot)
    }

    /// A new subscription stream's id (its queue exists from now on).
    pub(crate) fn new_stream(&self) -> Option<StreamId> {
        let mut g = self.lock();
        if !g.open {
            return None;
        }
        let id = g.next_stream;
        g.next_stream += 1;
        g.subs.push(SubQueue {
            id,
            queue: Queue::default(),
            ended: false,
        });
        Some(id)
    }

    pub(crate) fn is_open(&self) -> bool {
        self.lock().open
    }

    pub(crate) fn handle_cloned(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// The last handle going wakes the task, which closes the session.
    pub(crate) fn handle_dropped(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let task = self.lock().task.take();
            if let Some(w) = task {
                w.wake();
            }
        }
    }

    pub(crate) fn snapshot(&self) -> (State, Stats) {
        let g = self.lock();
        (g.state, g.stats)
    }

    /// Polls a receipt's slot; a settled one is freed.
    pub(crate) fn poll_slot(&self, slot: u32, cx: &mut Context<'_>) -> Poll<Verdict> {
        let mut g = self.lock();
        let mut taken = None;
        let out = match &mut g.slots[slot as usize] {
            Slot::Done(_) => {
                let Slot::Done(v) = std::mem::replace(&mut g.slots[slot as usize], Slot::Forgotten)
                else {
                    unreachable!("matched above")
                };
                if let Ok(Some(r)) = &v {
                    taken = Some(r.body.len());
                }
                g.release(slot);
                Poll::Ready(v)
            }
            Slot::Waiting(w) => {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Free(_) | Slot::Forgotten => {
                unreachable!("a receipt polls its own slot until it resolves")
            }
        };
        if let Some(bytes) = taken {
            let w = g.credit(1, bytes);
            drop(g);
            if let Some(w) = w {
                w.wake();
            }
        }
        out
    }

    /// A receipt dropped before it resolved: its outcome (and any reply) is dropped when it
    /// comes.
    pub(crate) fn forget_slot(&self, slot: u32) {
        let mut g = self.lock();
        match std::mem::replace(&mut g.slots[slot as usize], Slot::Forgotten) {
            Slot::Done(v) => {
                let reply = matches!(&v, Ok(Some(_)));
                let bytes = match &v {
                    Ok(Some(r)) => r.body.len(),
                    _ => 0,
                };
                g.release(slot);
                if reply {
                    let w = g.credit(1, bytes);
                    drop(g);
                    if let Some(w) = w {
                        w.wake();
                    }
                }
            }
            Slot::Waiting(_) => {}
            other => g.slots[slot as usize] = other,
        }
    }

    pub(crate) fn poll_inbound(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let mut g = self.lock();
        let ended = g.ended;
        let r = g.inbound.poll(ended, cx);
        self.counted(g, r, Vec::len)
    }

    pub(crate) fn poll_sub(&self, id: StreamId, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let mut g = self.lock();
        let ended = g.ended;
        let r = match g.subs.iter_mut().find(|s| s.id == id) {
            Some(s) => s.queue.poll(ended || s.ended, cx),
            None => Poll::Ready(None),
        };
        self.counted(g, r, Message::size)
    }

    /// Counts a unit the user took, waking the task if reading waits for it.
    fn counted<T>(
        &self,
        mut g: MutexGuard<'_, SharedState>,
        r: Poll<Option<T>>,
        size: impl Fn(&T) -> usize,
    ) -> Poll<Option<T>> {
        let w = match &r {
            Poll::Ready(Some(item)) => g.credit(1, size(item)),
            _ => None,
        };
        drop(g);
        if let Some(w) = w {
            w.wake();
        }
        r
    }

    /// A stream's consumer is gone: what it held is credit again, and nothing more is queued.
    pub(crate) fn drop_inbound(&self) {
        let mut g = self.lock();
        let items = std::mem::take(&mut g.inbound.items);
        g.inbound.dropped = true;
        g.inbound.waker = None;
        let bytes = items.iter().map(Vec::len).sum();
        let w = g.credit(items.len(), bytes);
        drop(g);
        if let Some(w) = w {
            w.wake();
        }
    }

    /// A subscription stream dropped: what it held is credit again.
    pub(crate) fn drop_sub(&self, id: StreamId) {
        let mut g = self.lock();
        let Some(i) = g.subs.iter().position(|s| s.id == id) else {
            return;
        };
        let s = g.subs.remove(i);
        let bytes = s.queue.items.iter().map(Message::size).sum();
        let w = g.credit(s.queue.items.len(), bytes);
        drop(g);
        if let Some(w) = w {
            w.wake();
        }
    }

    pub(crate) fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        let mut g = self.lock();
        let ended = g.ended;
        let e = &mut g.events;
        let r = e.queue.poll(ended, cx);
        Poll::Ready(match std::task::ready!(r) {
            Some(mut ev) => {
                ev.missed = std::mem::take(&mut e.missed);
                Some(ev)
            }
            None => None,
        })
    }

    pub(crate) fn drop_events(&self) {
        let mut g = self.lock();
        g.events.queue.items = VecDeque::new();
        g.events.queue.dropped = true;
        g.events.queue.waker = None;
    }

    // ----- the task's side -----

    /// One round's exchange: hands out what the task produced, takes commands and credit,
    /// and (with `cx`) registers the task's waker for more.
    pub(crate) fn exchange(
        &self,
        out: &mut Outbox,
        inbox: &mut Inbox,
        (state, stats): (State, Stats),
        cx: Option<&mut Context<'_>>,
    ) {
        let mut wake: Vec<Waker> = Vec::new();
        {
            let mut g = self.lock();
            let g = &mut *g;
            // The state and stats as the core has them now, handed over under the lock the
            // task takes every turn anyway (so the task keeps no copy of its own).
            g.state = state;
            g.stats = stats;
            for (slot, v) in out.settled.drain(..) {
                g.settle(slot, v, &mut wake);
            }
            for (stream, msg, size) in out.received.drain(..) {
                g.deliver(stream, msg, size, &mut wake);
            }
            // Taken, not drained: events are rare, and an idle session should not keep the
            // capacity its connect-time events needed (704 B each, measured).
            for ev in std::mem::take(&mut out.events) {
                g.event(ev, &mut wake);
            }
            for id in out.ended_streams.drain(..) {
                if let Some(s) = g.subs.iter_mut().find(|s| s.id == id) {
                    s.ended = true;
                    wake.extend(s.queue.waker.take());
                }
            }
            inbox.commands.append(&mut g.commands);
            let taken = std::mem::take(&mut g.taken);
            inbox.taken.0 += taken.0;
            inbox.taken.1 += taken.1;
            inbox.handles_gone = self.handles.load(Ordering::Acquire) == 0;
            if let Some(cx) = cx {
                match &mut g.task {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
            }
        }
        for w in wake {
            w.wake();
        }
    }

    /// The task has ended: every stream ends once drained, every receipt is settled, no
    /// command is taken any more (those still queued are handed back, rejected).
    pub(crate) fn end(&self) -> Vec<oneshot::Sender<()>> {
        let mut wake = Vec::new();
        let mut released = Vec::new();
        {
            let mut g = self.lock();
            let g = &mut *g;
            g.open = false;
            g.ended = true;
            let closed = Outcome::Rejected(RejectReason::Closed);
            for c in std::mem::take(&mut g.commands) {
                match c {
                    Command::Send { payload, slot, .. } => {
                        let u = Undelivered::new(closed, payload);
                        g.settle(slot, Err(Box::new(u)), &mut wake);
                    }
                    Command::Batch { batch, slot, .. } => {
                        let u = Undelivered::batch(closed, batch);
                        g.settle(slot, Err(Box::new(u)), &mut wake);
                    }
                    Command::Close { done, .. } => released.push(done),
                    Command::Subscribe { .. }
                    | Command::Unsubscribe { .. }
                    | Command::Reconnect => {}
                }
            }
            wake.extend(g.inbound.waker.take());
            wake.extend(g.events.queue.waker.take());
            for s in &mut g.subs {
                wake.extend(s.queue.waker.take());
            }
        }
        for w in wake {
            w.wake();
        }
        released
    }
}

impl SharedState {
    fn alloc_slot(&mut self) -> u32 {
        match self.free {
            NO_SLOT => {
                let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 - 1 open receipts");
                assert!(i != NO_SLOT, "fewer than 2^32 - 1 open receipts");
                self.slots.push(Slot::Waiting(None));
                i
            }
            i => {
                let Slot::Free(next) = self.slots[i as usize] else {
                    unreachable!("the free list holds free slots")
                };
                self.free = next;
                self.slots[i as usize] = Slot::Waiting(None);
                i
            }
        }
    }

    fn release(&mut self, slot: u32) {
        self.slots[slot as usize] = Slot::Free(self.free);
        self.free = slot;
    }

    fn settle(&mut self, slot: u32, v: Verdict, wake: &mut Vec<Waker>) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        match std::mem::replace(s, Slot::Done(v)) {
            Slot::Waiting(w) => wake.extend(w),
            Slot::Forgotten => {
                // Nobody waits: free it; a reply it carried is credit again.
                if let Slot::Done(Ok(Some(r))) = std::mem::replace(s, Slot::Forgotten) {
                    self.taken.0 += 1;
                    self.taken.1 += r.body.len();
                }
                self.release(slot);
            }
            other => *s = other,
        }
    }

    fn deliver(&mut self, stream: StreamId, msg: Message, size: usize, wake: &mut Vec<Waker>) {
        let queue_dropped = if stream == INBOUND {
            if self.inbound.dropped {
                true
            } else {
                self.inbound.items.push_back(msg.body);
                wake.extend(self.inbound.waker.take());
                false
            }
        } else {
            match self.subs.iter_mut().find(|s| s.id == stream) {
                Some(s) if !s.queue.dropped => {
                    s.queue.items.push_back(msg);
                    wake.extend(s.queue.waker.take());
                    false
                }
                _ => true,
            }
        };
        if queue_dropped {
            // Nobody will take it: credit at once.
            self.taken.0 += 1;
            self.taken.1 += size;
        }
    }

    fn event(&mut self, ev: SessionEvent, wake: &mut Vec<Waker>) {
        let e = &mut self.events;
        if e.queue.dropped {
            return;
        }
        if e.queue.items.len() >= e.cap {
            e.queue.items.pop_front();
            e.missed += 1;
            e.missed_total.increment();
        }
        e.queue.items.push_back(ev);
        wake.extend(e.queue.waker.take());
    }

    /// The user took `n` units of `bytes`: credit for the task, woken if it waits.
    fn credit(&mut self, n: usize, bytes: usize) -> Option<Waker> {
        if n == 0 {
            return None;
        }
        self.taken.0 += n;
        self.taken.1 += bytes;
        self.task.take()
    }
}
