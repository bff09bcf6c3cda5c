//! What goes into the core (events, commands) and what comes out (actions, notifications).

use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use crate::epoch::Epoch;
use crate::error::{DisconnectReason, FrameError, NetError};
use crate::message::{MsgId, Outcome};
use crate::time::Instant;

/// The session's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection; waiting out a backoff delay (or about to start an attempt).
    Disconnected,
    /// Resolving addresses or dialing.
    Connecting,
    /// Connected: messages flow, the heartbeat runs.
    Connected,
    /// A connection is ending: draining for a graceful close, or an old socket is still
    /// closing before the next attempt may start.
    Disconnecting,
    /// Terminal: closed by the user, or gave up.
    Closed,
}

/// Something that happened, reported by the adapter. Socket events carry the [`Epoch`] of the
/// attempt they belong to; events of an old epoch never touch the current connection.
// An explicit tag: without it the discriminant hides in a niche of an error field, and every
// `match` on an event has to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[repr(u8)]
pub enum Event<'a> {
    /// A timer fired (early, late or twice is harmless: deadlines are absolute).
    Timer,
    /// Resolution for an attempt produced addresses.
    Resolved {
        /// The attempt.
        epoch: Epoch,
        /// The addresses found, in preference order.
        addrs: &'a [SocketAddr],
    },
    /// Resolution for an attempt failed.
    ResolveFailed {
        /// The attempt.
        epoch: Epoch,
        /// The classified error.
        error: NetError,
    },
    /// The dial (and the codec handshake, if any) succeeded.
    DialOk {
        /// The attempt.
        epoch: Epoch,
    },
    /// The dial failed.
    DialFailed {
        /// The attempt.
        epoch: Epoch,
        /// The classified error.
        error: NetError,
    },
    /// Bytes were read (any inbound bytes prove the peer alive).
    BytesRead {
        /// The connection.
        epoch: Epoch,
        /// How many.
        len: usize,
    },
    /// The peer answered our PING.
    Pong {
        /// The connection.
        epoch: Epoch,
    },
    /// The peer sent its own PING; the core answers it.
    PeerPing {
        /// The connection.
        epoch: Epoch,
    },
    /// The write requested by the last [`Action::Transmit`] completed.
    Written {
        /// The connection.
        epoch: Epoch,
    },
    /// The peer confirmed the next `count` messages (protocols with acks); each message of a
    /// batch is confirmed on its own.
    Acked {
        /// The connection.
        epoch: Epoch,
        /// How many messages, in order.
        count: usize,
    },
    /// The peer closed its side.
    Eof {
        /// The connection.
        epoch: Epoch,
    },
    /// A read or write failed.
    IoError {
        /// The connection.
        epoch: Epoch,
        /// The classified error.
        error: NetError,
    },
    /// Inbound bytes broke the framing.
    ProtocolError {
        /// The connection.
        epoch: Epoch,
        /// What was wrong.
        error: FrameError,
    },
    /// A socket the core asked to close is fully closed.
    Closed {
        /// The connection.
        epoch: Epoch,
    },
}

impl Event<'_> {
    /// The epoch a socket event belongs to; `None` for [`Event::Timer`].
    pub fn epoch(&self) -> Option<Epoch> {
        match *self {
            Event::Timer => None,
            Event::Resolved { epoch, .. }
            | Event::ResolveFailed { epoch, .. }
            | Event::DialOk { epoch }
            | Event::DialFailed { epoch, .. }
            | Event::BytesRead { epoch, .. }
            | Event::Pong { epoch }
            | Event::PeerPing { epoch }
            | Event::Written { epoch }
            | Event::Acked { epoch, .. }
            | Event::Eof { epoch }
            | Event::IoError { epoch, .. }
            | Event::ProtocolError { epoch, .. }
            | Event::Closed { epoch } => Some(epoch),
        }
    }
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

/// What the core asks the adapter to do. Call `Session::poll` until it returns
/// [`Action::Wait`], which ends the round.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Resolve the target's addresses afresh (DNS or discovery), then report `Resolved` or
    /// `ResolveFailed` with this epoch.
    Resolve {
        /// The attempt.
        epoch: Epoch,
    },
    /// Open a TCP connection, bounded by `deadline`, run the codec handshake, then report
    /// `DialOk` or `DialFailed` with this epoch.
    Dial {
        /// The attempt.
        epoch: Epoch,
        /// Where to.
        addr: SocketAddr,
        /// When the core gives up on this dial.
        deadline: Instant,
    },
    /// Encode and write, as one write: `pongs` PONG frames, a PING if `ping`, then every
    /// payload of `Session::transmit_payloads` (the `messages` queued messages, a batch
    /// giving one payload per message it holds), in that order. Report `Written` when it
    /// completed. No other write is requested until then.
    Transmit {
        /// The connection.
        epoch: Epoch,
        /// PONG frames answering the peer's PINGs.
        pongs: u8,
        /// Whether to send a PING.
        ping: bool,
        /// How many queued messages (a [`crate::Batch`] counts as one).
        messages: usize,
    },
    /// Close (or abort the dial or resolution of) this epoch's socket, then report `Closed`.
    Close {
        /// The connection or attempt.
        epoch: Epoch,
        /// Why.
        reason: DisconnectReason,
    },
    /// Tell the user something.
    Notify(Notification),
    /// Nothing more to do until `until` (wake then and call `poll`), or until an event arrives.
    /// `None`: nothing is scheduled. Always the last action of a round.
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
        addr: SocketAddr,
    },
    /// An attempt failed.
    AttemptFailed {
        /// The attempt's epoch.
        epoch: Epoch,
        /// Its number in the current streak.
        attempt: u32,
        /// The address dialed; `None` when resolution failed.
        addr: Option<SocketAddr>,
        /// The classified error.
        error: NetError,
        /// The delay before the next attempt; `None` when the session gives up.
        next_delay: Option<Duration>,
    },
    /// A connection is established.
    Connected {
        /// Its epoch.
        epoch: Epoch,
        /// The peer address.
        addr: SocketAddr,
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
    /// A PONG gave an RTT sample.
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
