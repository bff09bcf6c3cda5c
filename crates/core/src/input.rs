//! What goes into the core: what the host's sockets, resolver and timers did.
//!
//! Bytes read go in through [`crate::Session::handle_read`]; user commands through the
//! session's methods (`enqueue`, `subscribe`, `close`, ...); time through the `now` of every
//! call. Everything else is an [`Input`], tagged with the [`Epoch`] of the attempt it belongs
//! to: an input of an old epoch never touches the current connection.

use crate::addr::Addr;

use crate::epoch::Epoch;
use crate::error::NetError;

/// Something the host's I/O did, for [`crate::Session::handle_input`].
// An explicit tag: without it the discriminant hides in a niche of an error field, and every
// `match` on an input has to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[repr(u8)]
pub enum Input<'a> {
    /// Resolution for an attempt produced addresses.
    Resolved {
        /// The attempt.
        epoch: Epoch,
        /// The addresses found, in preference order.
        addrs: &'a [Addr],
    },
    /// Resolution for an attempt failed.
    ResolveFailed {
        /// The attempt.
        epoch: Epoch,
        /// The classified error.
        error: NetError,
    },
    /// The transport is up (TCP connected; TLS, if any, handshaken). The protocol's own
    /// handshake, if it has one, runs next, inside the same connect deadline.
    DialOk {
        /// The attempt.
        epoch: Epoch,
    },
    /// The dial (or the transport's handshake) failed.
    DialFailed {
        /// The attempt.
        epoch: Epoch,
        /// The classified error.
        error: NetError,
    },
    /// The bytes of the last [`crate::Action::Transmit`] are written.
    Written {
        /// The connection.
        epoch: Epoch,
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
    /// A socket (or attempt) the core asked to close is fully closed.
    Closed {
        /// The connection or attempt.
        epoch: Epoch,
    },
}

impl Input<'_> {
    /// The epoch the input belongs to.
    pub fn epoch(&self) -> Epoch {
        match *self {
            Input::Resolved { epoch, .. }
            | Input::ResolveFailed { epoch, .. }
            | Input::DialOk { epoch }
            | Input::DialFailed { epoch, .. }
            | Input::Written { epoch }
            | Input::Eof { epoch }
            | Input::IoError { epoch, .. }
            | Input::Closed { epoch } => epoch,
        }
    }
}

/// What the session did with an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a stale input is worth logging"]
pub enum Handled {
    /// It changed the session (or was expected and changed nothing).
    Applied,
    /// It belonged to an epoch that is not current: counted in
    /// [`crate::Stats::stale_inputs`] and otherwise ignored (it can only finish closing its
    /// own socket).
    Stale,
}
