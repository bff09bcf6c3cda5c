//! Record and replay (feature `record`).
//!
//! The core is deterministic: the same config, protocol and inputs give the same actions.
//! With [`crate::Builder::record`] the driver writes every call it makes into the core, and
//! every action it gets back, as JSON lines; [`replay`] runs a fresh [`Session`] on those
//! calls and returns its actions, so a production incident can be studied offline, and
//! [`Replayed::first_mismatch`] proves the replay took the very same decisions.
//!
//! ## Format (version 2)
//!
//! One JSON object per line, tagged by `"k"`. Times `"t"` are nanoseconds since the session
//! started (the core's [`Instant`]); durations are `*_ns` integers; epochs and ids are
//! integers; bytes are lowercase hex strings.
//!
//! | `k` | fields | core call |
//! |---|---|---|
//! | `start` | `version` (2), `config` (every [`Config`] field), `protocol` | `Session::new` — always the first line |
//! | `poll` | `t`, `a`: the action's `Debug` text (payloads as their length) | `poll(t)`, compared |
//! | `input` | `t`, `input` (tagged by `"e"`: `resolved {epoch, addrs}`, `resolve_failed`, `dial_ok`, `dial_failed`, `written`, `eof`, `io_error`, `closed`) | `handle_input` |
//! | `read` | `t`, `epoch`, `data` (the fresh bytes), `kept` (bytes kept from before), `used`, `units` | `handle_read`; `used` and `units` compared |
//! | `transmit` | | `encode_transmit` |
//! | `enqueue` | `t`, `data`, `delivery` (`at_most_once` / `idempotent`) | `enqueue` |
//! | `batch` | `t`, `msgs` (one hex string each), `delivery` | `enqueue_batch` |
//! | `subscribe` / `unsubscribe` | `t`, `spec` / `id` | `subscribe` / `unsubscribe` |
//! | `taken` | `t`, `messages`, `bytes` | `inbound_taken` |
//! | `close` | `t`, `mode` (`"immediate"` or `{"graceful": {"graceful_ns": N}}`) | `close` |
//! | `reconnect` | `t` | `reconnect_now` |
//! | `truncated` | `reason` | the recording stopped here (a bound was reached) |
//!
//! `protocol` names the built-in protocol and its settings: `line` (every [`LineCodec`] field;
//! the greeting only as its length), `length`, `resp` (version, database, client name, whether
//! auth is set, setup commands, limits) or `nats` (options). **Credentials are never
//! recorded**: not a Redis password (nor a setup command marked secret), not a NATS token or
//! password. The replay puts placeholders in their place: what the session *writes* is not an
//! input, so its decisions are the same.
//! What the *user* hands the session is recorded in full, though: the messages enqueued (the
//! protocol validates them) and the bytes read. A message that carries a credential (a Redis
//! `AUTH` sent as a request) is in the trace; use the protocol's own auth settings instead.
//!
//! ## Bounds
//!
//! A recording is at most [`DEFAULT_MAX_BYTES`] (or the limit given to
//! [`crate::Builder::record_limited`], at most [`MAX_TRACE_BYTES`]), and no line is longer
//! than [`MAX_LINE`]: when the next line would pass either bound, one `truncated` line says
//! why and the recording stops (the session goes on). A replay of a truncated trace replays
//! the prefix and says so ([`Replayed::truncated`]). A trace that fails to be written stops
//! the recording too (logged with `tracing`; a caller who wants to know wraps its writer).
//!
//! [`replay`] refuses a hostile trace with a [`TraceError`]: a line over [`MAX_LINE`], a
//! trace over [`MAX_TRACE_BYTES`], bad JSON, an unknown kind, a value the core does not know,
//! bad hex. It never panics and never allocates beyond what the trace holds.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::time::Duration;

use redial_core::proto::nats::Nats;
use redial_core::proto::resp::{self, Resp};
use redial_core::{
    AckMode, Action, Addr, Backoff, Batch, CloseMode, Config, Delivery, Epoch, Framed, GiveUp,
    GiveUpWhen, Heartbeat, InboundLimits, Input, Instant, Jitter, LengthCodec, LineCodec, NetError,
    Notification, Overflow, Protocol, QueueLimits, RawCodec, Session, SubId,
};
use serde::{Deserialize, Serialize};

mod format;
mod protocol;
mod record;
mod replay;

pub use format::redacted;
use format::*;
use protocol::*;
pub use protocol::{Recordable, RecordedProtocol};
pub(crate) use record::{Pending, Recorder};
pub use replay::{replay, ReadMismatch, Replayed};

/// Version of the trace format written in the `start` line.
pub const VERSION: u32 = 2;

/// The longest line a recorder writes and [`replay`] reads: 8 MiB (about 4 MiB of bytes read
/// or of one message, as hex).
pub const MAX_LINE: usize = 8 << 20;

/// A recording's size unless [`crate::Builder::record_limited`] says otherwise: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The largest trace written or replayed: 1 GiB.
pub const MAX_TRACE_BYTES: u64 = 1 << 30;

/// Room kept below the cap for the `truncated` line.
const TRUNCATION_RESERVE: u64 = 256;

/// A trace that cannot be replayed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TraceError {
    /// Reading failed.
    Io(io::Error),
    /// A line is longer than [`MAX_LINE`].
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// The bound.
        max: usize,
    },
    /// The trace is longer than [`MAX_TRACE_BYTES`].
    TooLarge {
        /// The bound.
        max: u64,
    },
    /// A line is not valid JSON, or not a valid line of its kind.
    Json {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        error: serde_json::Error,
    },
    /// A line's kind (`"k"`) is not one this version knows.
    UnknownKind {
        /// 1-based line number.
        line: usize,
        /// The kind found (at most 64 characters of it).
        kind: String,
    },
    /// A line holds a value the core does not know, or the lines are out of order (the first
    /// must be `start`, and only once).
    Invalid {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io(e) => write!(f, "reading the trace: {e}"),
            TraceError::LineTooLong { line, max } => {
                write!(f, "line {line}: longer than {max} bytes")
            }
            TraceError::TooLarge { max } => write!(f, "the trace is over {max} bytes"),
            TraceError::Json { line, error } => write!(f, "line {line}: {error}"),
            TraceError::UnknownKind { line, kind } => {
                write!(f, "line {line}: unknown kind {kind:?}")
            }
            TraceError::Invalid { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

impl std::error::Error for TraceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TraceError::Io(e) => Some(e),
            TraceError::Json { error, .. } => Some(error),
            _ => None,
        }
    }
}

// ----- plain-data forms -----

#[cfg(test)]
mod tests;
