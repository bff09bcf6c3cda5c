//! What comes out of the core: actions for the host, notifications and received units for the
//! user.

use crate::addr::Addr;
use alloc::vec::Vec;
use core::time::Duration;

use crate::epoch::Epoch;
use crate::error::{DisconnectReason, NetError};
use crate::message::{MsgId, Outcome};
use crate::proto::Meta;
use crate::subscription::SubId;
use crate::time::Instant;

/// The session's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection; waiting out a backoff delay (or about to start an attempt).
    Disconnected,
    /// Resolving, dialing, or running the protocol's handshake.
    Connecting,
    /// Connected: messages flow, the heartbeat runs.
    Connected,
    /// A connection is ending: draining for a graceful close, or an old socket is still
    /// closing before the next attempt may start.
    Disconnecting,
    /// Terminal: closed by the user, or gave up.
    Closed,
}

/// How the user closes a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// Stop taking messages, keep delivering (reconnecting if needed) until the queue is empty
    /// or the drain deadline passes; whatever is left is then abandoned (or in doubt).
    Graceful {
        /// How long draining may take.
        drain: Duration,
    },
    /// Stop now: queued messages are abandoned, in-flight ones are in doubt.
    Immediate,
}

/// What the core asks the host to do. Call [`crate::Session::poll`] until it returns
/// [`Action::Wait`], which ends the round.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Resolve the target's addresses afresh (DNS or discovery), then report
    /// [`crate::Input::Resolved`] or [`crate::Input::ResolveFailed`] with this epoch.
    Resolve {
        /// The attempt.
        epoch: Epoch,
    },
    /// Open a connection to `addr` (and its transport handshake, such as TLS), bounded by
    /// `deadline`, then report [`crate::Input::DialOk`] or [`crate::Input::DialFailed`].
    Dial {
        /// The attempt.
        epoch: Epoch,
        /// Where to.
        addr: Addr,
        /// When the core gives up on this attempt.
        deadline: Instant,
    },
    /// Call [`crate::Session::encode_transmit`] now, write the bytes it appends as one write,
    /// and report [`crate::Input::Written`] when done. No other transmit is asked for until
    /// then.
    Transmit {
        /// The connection.
        epoch: Epoch,
    },
    /// Close (or abort the dial or resolution of) this epoch's socket, then report
    /// [`crate::Input::Closed`].
    Close {
        /// The connection or attempt.
        epoch: Epoch,
        /// Why.
        reason: DisconnectReason,
    },
    /// Tell the user something.
    Notify(Notification),
    /// Nothing more to do until `until` (wake then and call `poll`), or until an input
    /// arrives. `None`: nothing is scheduled. Always the last action of a round.
    Wait {
        /// The next deadline.
        until: Option<Instant>,
    },
}

/// What the user is told.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// The lifecycle state changed.
    StateChanged {
        /// The previous state.
        from: State,
        /// The new state.
        to: State,
    },
    /// An attempt is dialing an address.
    AttemptStarted {
        /// The attempt's epoch.
        epoch: Epoch,
        /// 1 for the first attempt after a connection (or the start).
        attempt: u32,
        /// The target address.
        addr: Addr,
    },
    /// An attempt failed.
    AttemptFailed {
        /// The attempt's epoch.
        epoch: Epoch,
        /// Its number in the current streak.
        attempt: u32,
        /// The address dialed; `None` when resolution failed.
        addr: Option<Addr>,
        /// The classified error.
        error: NetError,
        /// The delay before the next attempt; `None` when the session gives up.
        next_delay: Option<Duration>,
    },
    /// The peer said why, in its own words (a refused handshake, a close reason, a NATS
    /// `-ERR`): reported just before the failure, disconnection or notice it explains, at
    /// most [`crate::proto::SHOWN_BYTES`] bytes.
    PeerSaid {
        /// The connection or attempt.
        epoch: Epoch,
        /// The words, truncated.
        text: Vec<u8>,
        /// Whether the connection goes on regardless (a NATS permissions violation).
        notice: bool,
    },
    /// A connection is established (and its protocol handshake accepted).
    Connected {
        /// Its epoch.
        epoch: Epoch,
        /// The peer address.
        addr: Addr,
        /// The attempt number that succeeded.
        attempt: u32,
    },
    /// A connection ended.
    Disconnected {
        /// Its epoch.
        epoch: Epoch,
        /// Why.
        reason: DisconnectReason,
        /// How long it had been up.
        uptime: Duration,
        /// The delay before the next attempt; `None` when the session ends.
        next_delay: Option<Duration>,
    },
    /// A heartbeat answer gave an RTT sample.
    Rtt {
        /// This sample.
        sample: Duration,
        /// The smoothed estimate after it.
        smoothed: Duration,
    },
    /// A message ended.
    Outcome {
        /// Which message.
        id: MsgId,
        /// How it ended.
        outcome: Outcome,
        /// The message, handed back unless delivered (for a batch, its records: see
        /// [`crate::Batch::from_vec`]).
        payload: Option<Vec<u8>>,
    },
    /// A subscription is in place on the current connection (first made, or restored after a
    /// reconnect).
    Subscribed {
        /// Which.
        id: SubId,
        /// The connection.
        epoch: Epoch,
    },
    /// A subscription ended: unsubscribed, refused by the peer (`refused`: its words came in
    /// [`Notification::PeerSaid`]), or the session closed.
    Unsubscribed {
        /// Which.
        id: SubId,
        /// Whether the peer refused it.
        refused: bool,
    },
    /// Reading stopped: the user has not taken what was received
    /// ([`crate::config::InboundLimits`]), so TCP pushes back on the peer. The peer's silence
    /// from now on is our doing: the heartbeat is suspended until reading resumes.
    ReadPaused {
        /// The connection.
        epoch: Epoch,
    },
    /// Reading resumed after [`Notification::ReadPaused`].
    ReadResumed {
        /// The connection.
        epoch: Epoch,
        /// How long reading was paused.
        paused_for: Duration,
    },
    /// The session stopped retrying; it is now closed.
    GaveUp {
        /// Consecutive failures.
        failures: u32,
        /// Time since the streak's first failure.
        elapsed: Duration,
        /// The last error.
        last_error: NetError,
    },
}

/// A unit handed to the user by [`crate::Session::handle_read`], borrowed from the read
/// buffer (copy what you keep).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received<'a> {
    /// Inbound data: for subscription `sub`, or (`None`) for the general inbound stream.
    Message {
        /// The subscription it belongs to.
        sub: Option<SubId>,
        /// The payload.
        body: &'a [u8],
        /// Where it was published and how to answer it.
        meta: Meta<'a>,
    },
    /// The reply to message `id`, just before its [`Notification::Outcome`] (or, for a
    /// batch, one reply per message of it).
    Reply {
        /// The message it answers.
        id: MsgId,
        /// The reply.
        body: &'a [u8],
        /// Whether the peer refused the request (an application error such as Redis `-ERR`:
        /// the message is still delivered, never retried).
        refused: bool,
    },
}

impl Received<'_> {
    /// Bytes this unit counts against [`crate::config::InboundLimits::max_bytes`].
    pub fn len(&self) -> usize {
        match self {
            Received::Message { body, meta, .. } => {
                body.len() + meta.topic.len() + meta.reply_to.len() + meta.headers.len()
            }
            Received::Reply { body, .. } => body.len(),
        }
    }

    /// Whether it carries no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
