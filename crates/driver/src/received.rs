//! What a session hands the user: a request's [`Reply`], a subscription's [`Message`], a
//! lifecycle [`SessionEvent`], and a message that was not delivered ([`Undelivered`]). Plain
//! values: the handle, receipts and streams that carry them are in `handle.rs`; the shared
//! state fills them.

use std::fmt;
use std::time::Duration;

use redial_core::{Batch, FrameError, Notification, Outcome, RejectReason};

/// A message that was not delivered, handed back with how it ended.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undelivered {
    /// How it ended: in doubt, abandoned or rejected.
    pub outcome: Outcome,
    /// The message (empty for a batch: see `batch`).
    pub payload: Vec<u8>,
    /// For [`crate::Handle::send_batch`]: the whole batch, handed back.
    pub batch: Option<Batch>,
}

impl Undelivered {
    pub(crate) fn new(outcome: Outcome, payload: Vec<u8>) -> Self {
        Undelivered {
            outcome,
            payload,
            batch: None,
        }
    }

    pub(crate) fn batch(outcome: Outcome, batch: Batch) -> Self {
        Undelivered {
            outcome,
            payload: Vec::new(),
            batch: Some(batch),
        }
    }

    /// The frame error, when the protocol could not encode the message.
    pub fn frame_error(&self) -> Option<FrameError> {
        match self.outcome {
            Outcome::Rejected(RejectReason::Unencodable(e)) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Debug for Undelivered {
    // Never the payload's bytes: a message can hold anything, a credential included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Undelivered")
            .field("outcome", &self.outcome)
            .field("len", &self.payload.len())
            .field("batch", &self.batch)
            .finish()
    }
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            Outcome::InDoubt => f.write_str("message in doubt: written, not confirmed"),
            Outcome::Abandoned(r) => write!(f, "message abandoned: {r}"),
            Outcome::Rejected(r) => write!(f, "message rejected: {r}"),
            Outcome::Delivered => f.write_str("message delivered"),
        }
    }
}

impl std::error::Error for Undelivered {}

/// The peer's reply to a [`crate::Handle::request`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The reply as the protocol defines it: a whole RESP value (`$5\r\nhello\r\n`), a NATS
    /// payload, a line.
    pub body: Vec<u8>,
    /// The peer refused the request (a Redis `-ERR`, a NATS "no responders"): an application
    /// answer, not a network error. The request was delivered and is never retried.
    pub refused: bool,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("len", &self.body.len())
            .field("refused", &self.refused)
            .finish()
    }
}

/// An inbound message of a [`crate::Subscription`].
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The payload.
    pub body: Vec<u8>,
    /// The subject, channel or topic it was published to.
    pub topic: Vec<u8>,
    /// The pattern it matched (Redis `pmessage`), if any.
    pub pattern: Vec<u8>,
    /// Where to reply (NATS), if anywhere.
    pub reply_to: Vec<u8>,
    /// Headers as on the wire (NATS `HMSG`), if any.
    pub headers: Vec<u8>,
}

impl Message {
    /// Bytes counted against the inbound bounds.
    pub(crate) fn size(&self) -> usize {
        self.body.len() + self.topic.len() + self.reply_to.len() + self.headers.len()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &String::from_utf8_lossy(&self.topic))
            .field("len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// One lifecycle event: a core [`Notification`] (everything but message outcomes, which go to
/// receipts) with the error text behind it, where there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// Time since the session started (on the runtime's clock).
    pub at: Duration,
    /// What happened.
    pub notification: Notification,
    /// For a failed attempt or a disconnect: the operating system's error text, or the peer's
    /// words (a refused password, a close reason), truncated.
    pub detail: Option<String>,
    /// The endpoint the notification is about, when it names one (`Addr::Local` endpoints, a
    /// Unix socket, are only named here).
    pub endpoint: Option<crate::target::Endpoint>,
    /// How many events were dropped just before this one because the [`crate::Events`] stream was
    /// full (see [`crate::Builder::event_capacity`]); 0 when none were.
    pub missed: u64,
}
