//! What the user holds: a cloneable [`Handle`], per-message [`Receipt`]s, and the
//! [`Inbound`] and [`Events`] streams.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};

use crate::mailbox::Mailbox;
use futures::Stream;
use redial_core::{
    AbandonReason, Batch, CloseMode, Delivery, FrameError, Notification, Outcome, RejectReason,
    State, Stats,
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

/// The latest state and counters, published by the session task after every round.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) snapshot: Mutex<(State, Stats)>,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Shared {
            snapshot: Mutex::new((State::Disconnected, Stats::default())),
        })
    }

    pub(crate) fn publish(&self, state: State, stats: Stats) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = (state, stats);
    }

    fn get(&self) -> (State, Stats) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
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
    Slot(Arc<Mailbox>, u32),
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
            ReceiptState::Slot(mb, slot) => std::task::ready!(mb.poll_slot(*slot, cx)),
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
        if let ReceiptState::Slot(mb, slot) = &self.state {
            mb.forget(*slot);
        }
    }
}

/// A cloneable handle to a running session. Dropping every clone closes the session
/// gracefully (a short drain, see [`crate::Builder::drop_drain`]).
pub struct Handle {
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) shared: Arc<Shared>,
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        self.mailbox.handle_cloned();
        Handle {
            mailbox: Arc::clone(&self.mailbox),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.mailbox.handle_dropped();
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
        let pushed = self.mailbox.push_tracked(|slot| Command::Send {
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
            state: ReceiptState::Slot(Arc::clone(&self.mailbox), slot),
        }
    }

    /// Enqueues many messages as one [`Batch`]: one queue entry, one write, one receipt, and
    /// one outcome for all of them (see [`Batch`]). Each message is framed by the session's
    /// codec when written. This is the fast path for streams of small messages: building a
    /// batch copies borrowed bytes into one buffer, so there is no allocation, command or
    /// receipt per message. An undelivered batch comes back whole in
    /// [`Undelivered::batch`].
    pub fn send_batch(&self, batch: Batch, delivery: Delivery) -> Receipt {
        let pushed = self.mailbox.push_tracked(|slot| Command::SendBatch {
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
        self.shared.get().0
    }

    /// The counters, as of the session's last round.
    pub fn stats(&self) -> Stats {
        self.shared.get().1
    }

    /// Skips the backoff wait, or drops the live connection and dials again.
    pub fn reconnect_now(&self) {
        let _ = self.mailbox.push(Command::Reconnect);
    }

    /// Closes the session; the future resolves once the session task has ended (at once if
    /// it already has). Every receipt is resolved by then.
    pub fn close(&self, mode: CloseMode) -> impl Future<Output = ()> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let _ = self.mailbox.push(Command::Close { mode, done });
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
        !self.mailbox.is_open()
    }
}

/// Inbound data frames, in arrival order, across reconnects. Ends when the session ends.
///
/// Unbounded: a consumer that stops reading lets frames pile up in memory (reading is never
/// paused, so heartbeats keep working). Drop it if you do not want inbound data.
#[derive(Debug)]
pub struct Inbound {
    pub(crate) rx: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Stream for Inbound {
    type Item = Vec<u8>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        Pin::new(&mut self.rx).poll_next(cx)
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
}

/// The lossless stream of [`SessionEvent`]s. Ends when the session ends.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::UnboundedReceiver<SessionEvent>,
}

impl Stream for Events {
    type Item = SessionEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}
