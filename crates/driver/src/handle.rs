//! What the user holds: a cloneable [`Handle`], per-message [`Receipt`]s, and the
//! [`Inbound`] and [`Events`] streams.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::channel::oneshot;

use crate::mailbox::{Inner, Mailbox};
use futures::Stream;
use redial_core::{
    AbandonReason, Batch, CloseMode, Delivery, Epoch, FrameError, Notification, Outcome,
    RejectReason, State, Stats,
};

/// A user command for the session task.
pub(crate) enum Command {
    /// `slot`: the receipt's slot in the mailbox.
    Send {
        payload: Vec<u8>,
        delivery: Delivery,
        slot: u32,
    },
    SendBatch {
        batch: Batch,
        delivery: Delivery,
        slot: u32,
    },
    Close {
        mode: CloseMode,
        done: oneshot::Sender<()>,
    },
    Reconnect,
}

/// What the session task and the user's [`Handle`], [`Inbound`] and [`Events`] share: one
/// allocation per session for the state snapshot, both streams and the mailbox (instead of
/// a channel each, whose stub nodes and shared blocks an idle session would keep), under
/// one mutex (held briefly, never across a wake).
pub(crate) struct Shared {
    /// Commands from the handles and the receipts' slots; its mutex also guards the
    /// [`Streams`].
    mailbox: Mailbox,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// The snapshot and both streams, kept under the mailbox's mutex.
pub(crate) struct Streams {
    /// The latest state and counters, published by the session task after every round.
    state: State,
    stats: Stats,
    inbound: Queue<Vec<u8>>,
    events: Queue<Stored>,
    /// Events dropped (the oldest first) since the front event was queued: reported with
    /// the front event as [`SessionEvent::missed`]. Only the front event can have missed
    /// predecessors, since only the oldest are ever dropped.
    missed: u64,
    /// At most this many events are kept (at least 1).
    event_cap: u32,
    /// The session task has ended: both streams end once drained.
    ended: bool,
}

impl Streams {
    pub(crate) fn new(event_cap: usize) -> Self {
        Streams {
            state: State::Disconnected,
            stats: Stats::default(),
            inbound: Queue::default(),
            events: Queue::default(),
            missed: 0,
            event_cap: u32::try_from(event_cap.max(1)).unwrap_or(u32::MAX),
            ended: false,
        }
    }
}

/// One stream's queue, its consumer's waker, and whether the consumer is gone.
struct Queue<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    /// The last `hidden` items are not handed out yet (queued during a round whose
    /// snapshot is not published yet).
    hidden: u32,
    /// The consumer was dropped: nothing more is queued.
    dropped: bool,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            items: VecDeque::new(),
            waker: None,
            hidden: 0,
            dropped: false,
        }
    }
}

/// A queue that held this many items gives its buffer back once drained: bursts do not
/// pin memory, while ordinary traffic keeps reusing one small buffer.
const QUEUE_KEEP: usize = 256;

impl<T> Queue<T> {
    /// Queues `items` unless the consumer is gone; returns the waker to wake (after the
    /// lock is released).
    fn push(&mut self, item: T) -> Option<Waker> {
        if self.dropped {
            return None;
        }
        self.items.push_back(item);
        self.waker.take()
    }

    /// Queues `item` hidden until [`Queue::reveal`]; when `cap` items are queued already,
    /// the oldest is dropped first. Returns whether one was dropped.
    fn push_hidden(&mut self, item: T, cap: usize) -> bool {
        if self.dropped {
            return false;
        }
        let full = self.items.len() >= cap;
        if full {
            self.items.pop_front();
            // A round that queued more than `cap` events drops hidden ones too.
            self.hidden = self.hidden.min(self.items.len() as u32);
        }
        self.items.push_back(item);
        self.hidden += 1;
        full
    }

    /// Hands out the hidden items; returns the waker to wake.
    fn reveal(&mut self) -> Option<Waker> {
        if self.hidden == 0 {
            return None;
        }
        self.hidden = 0;
        self.waker.take()
    }

    fn poll(&mut self, ended: bool, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.items.len() > self.hidden as usize {
            let item = self.items.pop_front().expect("not empty");
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

    fn drop_consumer(&mut self) {
        self.dropped = true;
        self.hidden = 0;
        self.items = VecDeque::new();
        self.waker = None;
    }
}

impl Shared {
    /// `event_cap`: how many undelivered events are kept (see [`crate::Builder::event_capacity`]).
    pub(crate) fn new(event_cap: usize) -> Arc<Self> {
        Arc::new(Shared {
            mailbox: Mailbox::new(Streams::new(event_cap)),
        })
    }

    pub(crate) fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// The snapshot and the streams, locked.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.mailbox.lock()
    }

    pub(crate) fn publish(&self, state: State, stats: Stats) {
        let mut g = self.lock();
        g.streams.state = state;
        g.streams.stats = stats;
    }

    /// Queues one inbound data frame (dropped if nobody holds the [`Inbound`] any more).
    pub(crate) fn inbound(&self, frame: Vec<u8>) {
        let waker = self.lock().streams.inbound.push(frame);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Queues an event of the current round (dropped if nobody holds the [`Events`] any
    /// more), handed out by [`Shared::reveal_events`] once the round's snapshot is published.
    /// When the stream is full, the oldest event is dropped and counted.
    pub(crate) fn event(&self, event: SessionEvent) {
        let stored = Stored::new(event);
        let mut g = self.lock();
        let s = &mut g.streams;
        let cap = s.event_cap as usize;
        if s.events.push_hidden(stored, cap) {
            s.missed += 1;
        }
    }

    /// Hands out the events queued by [`Shared::event`].
    pub(crate) fn reveal_events(&self) {
        let waker = self.lock().streams.events.reveal();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The session task is gone: both streams end once drained.
    pub(crate) fn end(&self) {
        // However the task ends (closed, or torn down with its runtime), no receipt is left
        // waiting and no handle can queue anything more; close waiters are released.
        drop(self.mailbox.shut());
        let (a, b) = {
            let mut g = self.lock();
            let s = &mut g.streams;
            s.ended = true;
            s.events.hidden = 0;
            (s.inbound.waker.take(), s.events.waker.take())
        };
        for w in [a, b].into_iter().flatten() {
            w.wake();
        }
    }
}

/// A queued [`SessionEvent`], compact: the connect-time events (state changes, attempts and
/// connections to IPv4 addresses, with an epoch below 2^32) take 24 bytes inline; the rarer
/// ones are boxed whole.
enum Stored {
    State {
        at: u64,
        from: State,
        to: State,
    },
    Attempt {
        at: u64,
        epoch: u32,
        attempt: u32,
        ip: [u8; 4],
        port: u16,
    },
    Connected {
        at: u64,
        epoch: u32,
        attempt: u32,
        ip: [u8; 4],
        port: u16,
    },
    Other(Box<SessionEvent>),
}

const _: () = assert!(std::mem::size_of::<Stored>() == 24);

impl Stored {
    fn new(e: SessionEvent) -> Self {
        let at = match u64::try_from(e.at.as_nanos()) {
            Ok(at) if e.detail.is_none() => at,
            _ => return Stored::Other(Box::new(e)),
        };
        let dial = |epoch: Epoch, addr: SocketAddr| match (u32::try_from(epoch.get()), addr) {
            (Ok(epoch), SocketAddr::V4(a)) => Some((epoch, a.ip().octets(), a.port())),
            _ => None,
        };
        match e.notification {
            Notification::StateChanged { from, to } => Stored::State { at, from, to },
            Notification::AttemptStarted {
                epoch,
                attempt,
                addr,
            } => match dial(epoch, addr) {
                Some((epoch, ip, port)) => Stored::Attempt {
                    at,
                    epoch,
                    attempt,
                    ip,
                    port,
                },
                None => Stored::Other(Box::new(e)),
            },
            Notification::Connected {
                epoch,
                addr,
                attempt,
            } => match dial(epoch, addr) {
                Some((epoch, ip, port)) => Stored::Connected {
                    at,
                    epoch,
                    attempt,
                    ip,
                    port,
                },
                None => Stored::Other(Box::new(e)),
            },
            _ => Stored::Other(Box::new(e)),
        }
    }

    /// The event, reporting `missed` events dropped just before it.
    fn into_event(self, missed: u64) -> SessionEvent {
        let addr = |ip: [u8; 4], port| SocketAddr::from((ip, port));
        let epoch = |e: u32| Epoch::from_raw(u64::from(e));
        let (at, notification) = match self {
            Stored::Other(e) => return SessionEvent { missed, ..*e },
            Stored::State { at, from, to } => (at, Notification::StateChanged { from, to }),
            Stored::Attempt {
                at,
                epoch: e,
                attempt,
                ip,
                port,
            } => (
                at,
                Notification::AttemptStarted {
                    epoch: epoch(e),
                    attempt,
                    addr: addr(ip, port),
                },
            ),
            Stored::Connected {
                at,
                epoch: e,
                attempt,
                ip,
                port,
            } => (
                at,
                Notification::Connected {
                    epoch: epoch(e),
                    addr: addr(ip, port),
                    attempt,
                },
            ),
        };
        SessionEvent {
            at: Duration::from_nanos(at),
            notification,
            detail: None,
            missed,
        }
    }
}

/// The session task's end of [`Shared`]: ends both streams when dropped, however the task
/// ends (finished, or dropped by a runtime shutting down).
pub(crate) struct Publisher(pub(crate) Arc<Shared>);

impl std::ops::Deref for Publisher {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A message that was not delivered, handed back with how it ended.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undelivered {
    /// How it ended: in doubt, abandoned or rejected.
    pub outcome: Outcome,
    /// The message (empty for a batch: see `batch`).
    pub payload: Vec<u8>,
    /// For [`Handle::send_batch`]: the whole batch, handed back.
    pub batch: Option<Batch>,
    /// Set when the codec cannot encode the payload (for example a line break inside a line);
    /// the outcome is then `Rejected(Unencodable(_))` with the same error.
    pub frame_error: Option<FrameError>,
}

impl Undelivered {
    pub(crate) fn new(outcome: Outcome, payload: Vec<u8>) -> Self {
        Undelivered {
            outcome,
            payload,
            batch: None,
            frame_error: None,
        }
    }

    pub(crate) fn batch(outcome: Outcome, batch: Batch) -> Self {
        Undelivered {
            outcome,
            payload: Vec::new(),
            batch: Some(batch),
            frame_error: None,
        }
    }
}

impl fmt::Debug for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Undelivered")
            .field("outcome", &self.outcome)
            .field("len", &self.payload.len())
            .field("batch", &self.batch)
            .field("frame_error", &self.frame_error)
            .finish()
    }
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message not delivered: {:?}", self.outcome)
    }
}

impl std::error::Error for Undelivered {}

/// The outcome of one sent message: `Ok(())` when delivered, otherwise the message back.
/// Dropping a receipt does not cancel the message.
#[must_use = "a receipt tells whether the message was delivered"]
pub struct Receipt {
    state: ReceiptState,
}

enum ReceiptState {
    /// Waiting on a slot of the session's mailbox.
    Slot(Arc<Shared>, u32),
    /// Known at once (the session had ended).
    Ready(Box<Undelivered>),
    /// Resolved and returned.
    Taken,
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receipt")
    }
}

impl Future for Receipt {
    type Output = Result<(), Undelivered>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let v = match &self.state {
            ReceiptState::Slot(sh, slot) => std::task::ready!(sh.mailbox.poll_slot(*slot, cx)),
            ReceiptState::Ready(_) => match std::mem::replace(&mut self.state, ReceiptState::Taken)
            {
                ReceiptState::Ready(u) => Err(*u),
                _ => unreachable!("matched above"),
            },
            // Polled again after it resolved.
            ReceiptState::Taken => Err(Undelivered::new(
                Outcome::Abandoned(AbandonReason::Closed),
                Vec::new(),
            )),
        };
        self.state = ReceiptState::Taken;
        Poll::Ready(v)
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if let ReceiptState::Slot(sh, slot) = &self.state {
            sh.mailbox.forget(*slot);
        }
    }
}

/// A cloneable handle to a running session. Dropping every clone closes the session
/// gracefully (a short drain, see [`crate::Builder::drop_drain`]).
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        self.shared.mailbox.handle_cloned();
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.mailbox.handle_dropped();
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("state", &self.state())
            .finish()
    }
}

impl Handle {
    /// Enqueues a message now (messages keep the order of `send` calls) and returns its
    /// receipt. A closed session hands the message straight back as rejected.
    pub fn send(&self, payload: Vec<u8>, delivery: Delivery) -> Receipt {
        let pushed = self.shared.mailbox.push_tracked(|slot| Command::Send {
            payload,
            delivery,
            slot,
        });
        match pushed {
            Ok(slot) => self.receipt(slot),
            Err(cmd) => {
                let payload = match cmd {
                    Command::Send { payload, .. } => payload,
                    _ => Vec::new(),
                };
                let u = Undelivered::new(Outcome::Rejected(RejectReason::Closed), payload);
                Receipt {
                    state: ReceiptState::Ready(Box::new(u)),
                }
            }
        }
    }

    fn receipt(&self, slot: u32) -> Receipt {
        Receipt {
            state: ReceiptState::Slot(Arc::clone(&self.shared), slot),
        }
    }

    /// Enqueues many messages as one [`Batch`]: one queue entry, one write, one receipt, and
    /// one outcome for all of them (see [`Batch`]). Each message is framed by the session's
    /// codec when written. This is the fast path for streams of small messages: building a
    /// batch copies borrowed bytes into one buffer, so there is no allocation, command or
    /// receipt per message. An undelivered batch comes back whole in
    /// the `batch` field of [`Undelivered`].
    pub fn send_batch(&self, batch: Batch, delivery: Delivery) -> Receipt {
        let pushed = self.shared.mailbox.push_tracked(|slot| Command::SendBatch {
            batch,
            delivery,
            slot,
        });
        match pushed {
            Ok(slot) => self.receipt(slot),
            Err(cmd) => {
                let batch = match cmd {
                    Command::SendBatch { batch, .. } => batch,
                    _ => Batch::new(),
                };
                let u = Undelivered::batch(Outcome::Rejected(RejectReason::Closed), batch);
                Receipt {
                    state: ReceiptState::Ready(Box::new(u)),
                }
            }
        }
    }

    /// The lifecycle state, as of the session's last round. Receipts and events are handed
    /// out only after the round's state and stats are published, so after seeing one, these
    /// getters already include it.
    pub fn state(&self) -> State {
        self.shared.lock().streams.state
    }

    /// The counters, as of the session's last round.
    pub fn stats(&self) -> Stats {
        self.shared.lock().streams.stats
    }

    /// Skips the backoff wait, or drops the live connection and dials again.
    pub fn reconnect_now(&self) {
        let _ = self.shared.mailbox.push(Command::Reconnect);
    }

    /// Closes the session; the future resolves once the session task has ended (at once if
    /// it already has). Every receipt is resolved by then.
    pub fn close(&self, mode: CloseMode) -> impl Future<Output = ()> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let _ = self.shared.mailbox.push(Command::Close { mode, done });
        async move {
            let _ = rx.await;
        }
    }

    /// A graceful close with a drain deadline (shorthand for [`Handle::close`]).
    pub fn close_graceful(&self, drain: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.close(CloseMode::Graceful { drain })
    }

    /// Whether the session task has ended.
    pub fn is_closed(&self) -> bool {
        !self.shared.mailbox.is_open()
    }
}

/// Inbound data frames, in arrival order, across reconnects. Ends when the session ends.
///
/// Unbounded, unlike [`Events`]: inbound frames are the application's data, so none is ever
/// dropped, and reading from the socket is never paused (so heartbeats keep working). A
/// consumer that stops reading therefore lets frames pile up in memory. Drop it if you do
/// not want inbound data.
pub struct Inbound {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inbound")
    }
}

impl Stream for Inbound {
    type Item = Vec<u8>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let mut g = self.shared.lock();
        let s = &mut g.streams;
        let ended = s.ended;
        s.inbound.poll(ended, cx)
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        self.shared.lock().streams.inbound.drop_consumer();
    }
}

/// One lifecycle event: a core [`Notification`] (everything but message outcomes, which go to
/// receipts) with the I/O error text behind it, where there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// Time since the session started (on the runtime's clock).
    pub at: Duration,
    /// What happened.
    pub notification: Notification,
    /// For a failed attempt or an I/O disconnect: the operating system's error text.
    pub detail: Option<String>,
    /// How many events were dropped just before this one because the [`Events`] stream was
    /// full (see [`crate::Builder::event_capacity`]); 0 when none were.
    pub missed: u64,
}

/// The stream of [`SessionEvent`]s, in order. Ends when the session ends.
///
/// Bounded: at most [`crate::Builder::event_capacity`] undelivered events are kept (1024 by
/// default). When a reader falls that far behind, the oldest events are dropped, and the
/// next event it reads tells how many with [`SessionEvent::missed`]. So a session whose
/// `Events` is kept but never read (a link flapping for days) holds a bounded amount of
/// memory. Drop it if you do not want events at all.
pub struct Events {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Events")
    }
}

impl Stream for Events {
    type Item = SessionEvent;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        let mut g = self.shared.lock();
        let s = &mut g.streams;
        let ended = s.ended;
        let e = std::task::ready!(s.events.poll(ended, cx));
        let missed = if e.is_some() {
            std::mem::take(&mut s.missed)
        } else {
            0
        };
        Poll::Ready(e.map(|e| e.into_event(missed)))
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.shared.lock().streams.events.drop_consumer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    fn state(at: u64) -> SessionEvent {
        SessionEvent {
            at: Duration::from_nanos(at),
            notification: Notification::StateChanged {
                from: State::Disconnected,
                to: State::Connecting,
            },
            detail: None,
            missed: 0,
        }
    }

    fn read_all(sh: &Arc<Shared>) -> Vec<SessionEvent> {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut g = sh.lock();
        let s = &mut g.streams;
        let mut out = Vec::new();
        while let Poll::Ready(Some(e)) = s.events.poll(false, &mut cx) {
            out.push(e.into_event(std::mem::take(&mut s.missed)));
        }
        out
    }

    #[test]
    fn a_full_event_stream_drops_the_oldest_and_counts_them() {
        let sh = Shared::new(3);
        // One round queues more than fits: hidden events are dropped too.
        for at in 0..5 {
            sh.event(state(at));
        }
        assert!(read_all(&sh).is_empty(), "hidden until revealed");
        sh.reveal_events();
        let got = read_all(&sh);
        let ats: Vec<_> = got.iter().map(|e| e.at.as_nanos()).collect();
        assert_eq!(ats, [2, 3, 4]);
        assert_eq!(got[0].missed, 2);
        assert_eq!(got[1].missed + got[2].missed, 0);
        // Drained: nothing is reported missed any more.
        sh.event(state(5));
        sh.reveal_events();
        assert_eq!(read_all(&sh)[0].missed, 0);
    }

    #[test]
    fn compact_events_round_trip() {
        let addr: SocketAddr = "10.1.2.3:4567".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        let big = Epoch::from_raw(1 << 40);
        for (epoch, addr) in [
            (Epoch::from_raw(7), addr),
            (big, addr),
            (Epoch::from_raw(7), v6),
        ] {
            for n in [
                Notification::AttemptStarted {
                    epoch,
                    attempt: 3,
                    addr,
                },
                Notification::Connected {
                    epoch,
                    addr,
                    attempt: 3,
                },
            ] {
                let e = SessionEvent {
                    at: Duration::from_millis(1500),
                    notification: n,
                    detail: None,
                    missed: 0,
                };
                assert_eq!(Stored::new(e.clone()).into_event(0), e);
            }
        }
    }
}
