//! What the user holds: a cloneable [`Handle`], per-message [`Receipt`]s, and the
//! [`Inbound`], [`Subscription`] and [`Events`] streams.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::oneshot;
use futures::Stream;
use redial_core::{Batch, CloseMode, Delivery, Outcome, RejectReason, State, Stats};

use crate::received::{Message, Reply, SessionEvent, Undelivered};
use crate::shared::{Command, Shared, StreamId, Verdict};

/// What a receipt yields when its message is delivered: `()` for [`Handle::send`], the
/// [`Reply`] for [`Handle::request`].
pub trait Delivered: Sized + sealed::Sealed {
    #[doc(hidden)]
    fn from_verdict(reply: Option<Reply>) -> Self;
}

impl Delivered for () {
    fn from_verdict(_: Option<Reply>) -> Self {}
}

impl Delivered for Reply {
    fn from_verdict(reply: Option<Reply>) -> Self {
        // A request is settled with its reply, except in protocols whose messages have none
        // (delivered once written): then the reply is empty.
        reply.unwrap_or(Reply {
            body: Vec::new(),
            refused: false,
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl Sealed for super::Reply {}
}

/// The outcome of one message: delivered (with its reply, for a request), or the message back
/// with how it ended. Dropping a receipt does not cancel the message.
#[must_use = "a receipt tells whether the message was delivered"]
pub struct Receipt<T: Delivered = ()> {
    state: ReceiptState,
    _t: PhantomData<fn() -> T>,
}

enum ReceiptState {
    Slot(Arc<Shared>, u32),
    Ready(Box<Undelivered>),
    Taken,
}

impl<T: Delivered> fmt::Debug for Receipt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receipt")
    }
}

impl<T: Delivered> Future for Receipt<T> {
    type Output = Result<T, Undelivered>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let v: Verdict = match &self.state {
            ReceiptState::Slot(sh, slot) => std::task::ready!(sh.poll_slot(*slot, cx)),
            ReceiptState::Ready(_) => match std::mem::replace(&mut self.state, ReceiptState::Taken)
            {
                ReceiptState::Ready(u) => Err(u),
                _ => unreachable!("matched above"),
            },
            ReceiptState::Taken => panic!("a receipt polled after it resolved"),
        };
        self.state = ReceiptState::Taken;
        Poll::Ready(v.map(T::from_verdict).map_err(|u| *u))
    }
}

impl<T: Delivered> Drop for Receipt<T> {
    fn drop(&mut self) {
        if let ReceiptState::Slot(sh, slot) = &self.state {
            sh.forget_slot(*slot);
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
        self.shared.handle_cloned();
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.handle_dropped();
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
    fn tracked<T: Delivered>(&self, make: impl FnOnce(u32) -> Command) -> Receipt<T> {
        let state = match self.shared.push(true, make) {
            Ok(slot) => ReceiptState::Slot(Arc::clone(&self.shared), slot),
            Err(cmd) => {
                let closed = Outcome::Rejected(RejectReason::Closed);
                ReceiptState::Ready(Box::new(match cmd {
                    Command::Send { payload, .. } => Undelivered::new(closed, payload),
                    Command::Batch { batch, .. } => Undelivered::batch(closed, batch),
                    _ => Undelivered::new(closed, Vec::new()),
                }))
            }
        };
        Receipt {
            state,
            _t: PhantomData,
        }
    }

    /// Enqueues a message now (messages keep the order of the calls) and returns its
    /// receipt: `Ok(())` once delivered (written and, where the protocol confirms, confirmed),
    /// or the message back. A closed session hands it back at once, rejected. The protocol
    /// checks the message first: one it cannot send is rejected as `Unencodable`.
    pub fn send(&self, payload: Vec<u8>, delivery: Delivery) -> Receipt {
        self.tracked(|slot| Command::Send {
            payload,
            delivery,
            slot,
            request: false,
        })
    }

    /// Like [`Handle::send`], but the receipt yields the peer's [`Reply`] (many requests may be
    /// in flight: each gets its own reply, matched by the protocol's grammar). A reply that
    /// refuses the request (a Redis `-ERR`) is a `Reply` with `refused` set, never an error.
    pub fn request(&self, payload: Vec<u8>, delivery: Delivery) -> Receipt<Reply> {
        self.tracked(|slot| Command::Send {
            payload,
            delivery,
            slot,
            request: true,
        })
    }

    /// Enqueues many messages as one [`Batch`]: one queue entry, one write, one receipt and
    /// one outcome for all of them; each is framed by the protocol on its own and confirmed on
    /// its own. An undelivered batch comes back whole in the `batch` field of [`crate::Undelivered`].
    pub fn send_batch(&self, batch: Batch, delivery: Delivery) -> Receipt {
        self.tracked(|slot| Command::Batch {
            batch,
            delivery,
            slot,
        })
    }

    /// Subscribes to `spec` (the protocol's form: `resp::channel("news")`,
    /// `nats::subscription("news.*", None)`). The subscription is made now (or on the next
    /// connection) and restored on every new connection before anything queued is flushed;
    /// the stream yields its messages across reconnects and ends when the session ends (or
    /// when the protocol refuses it). Dropping it unsubscribes. Its messages count against
    /// the inbound bounds until taken.
    pub fn subscribe(&self, spec: Vec<u8>) -> Subscription {
        let id = self.shared.new_stream();
        if let Some(stream) = id {
            let _ = self
                .shared
                .push(false, |_| Command::Subscribe { spec, stream });
        }
        Subscription {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// The lifecycle state, as of the session's last round.
    pub fn state(&self) -> State {
        self.shared.snapshot().0
    }

    /// The counters, as of the session's last round. Receipts and events are handed out after
    /// the round's snapshot is published, so after seeing one, these include it.
    pub fn stats(&self) -> Stats {
        self.shared.snapshot().1
    }

    /// Skips the backoff wait, or drops the live connection and dials again.
    pub fn reconnect_now(&self) {
        let _ = self.shared.push(false, |_| Command::Reconnect);
    }

    /// Closes the session; the future resolves once the session task has ended (at once if it
    /// already has). Every receipt is resolved by then.
    pub fn close(&self, mode: CloseMode) -> impl Future<Output = ()> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let _ = self.shared.push(false, |_| Command::Close { mode, done });
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
        !self.shared.is_open()
    }
}

/// The messages of one subscription, in arrival order, across reconnects.
pub struct Subscription {
    shared: Arc<Shared>,
    /// `None`: the session had ended when it was made (the stream ends at once).
    id: Option<StreamId>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscription")
    }
}

impl Stream for Subscription {
    type Item = Message;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        match self.id {
            Some(id) => self.shared.poll_sub(id, cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(stream) = self.id {
            self.shared.drop_sub(stream);
            let _ = self.shared.push(false, |_| Command::Unsubscribe { stream });
        }
    }
}

/// Inbound data that answers nothing and belongs to no subscription (a line protocol's
/// lines, RESP3 pushes of no subscription), in arrival order, across reconnects. Ends when the
/// session ends.
///
/// Bounded ([`redial_core::InboundLimits`], shared with replies and subscriptions): a consumer
/// that falls behind stops the session reading its socket, so TCP pushes back on the peer and
/// memory stays flat; the peer's silence meanwhile is not held against it. Drop it if you do
/// not want inbound data (what it held, and what comes, is discarded).
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
        self.shared.poll_inbound(cx)
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        self.shared.drop_inbound();
    }
}

/// The stream of [`SessionEvent`]s, in order. Ends when the session ends.
///
/// Bounded: at most [`crate::Builder::event_capacity`] undelivered events are kept (1024 by
/// default); a reader that falls further behind loses the oldest, and the next event it reads
/// counts them in [`SessionEvent::missed`]. Drop it if you do not want events at all.
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
        self.shared.poll_event(cx)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.shared.drop_events();
    }
}
