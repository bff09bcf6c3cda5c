//! Protocols: grammar and reply attribution, sans-IO.
//!
//! A [`Protocol`] turns bytes into [`Unit`]s and outgoing messages into bytes, as the
//! protocol's grammar says: a whole RESP value however many lines it spans, a NATS `MSG` with
//! its byte-counted payload, an MQTT packet, a WebSocket message. **Content never decides what
//! the grammar decides**: a Redis value `+PONG`, a NATS payload `PING`, CR LF inside data are
//! data.
//!
//! The session (not the protocol) decides what each unit means for the conversation, through
//! one attribution mechanism with four keys (see [`Match`] and [`Expect`]):
//!
//! | key | who uses it | example |
//! |---|---|---|
//! | in order ([`Match::Next`]) | replies that come back in request order | RESP replies; NATS `PONG` |
//! | by key ([`Match::Key`]) | replies naming what they answer, any order | NATS reply subject, MQTT packet id |
//! | by type ([`Match::Heartbeat`]) | our heartbeat's answer, recognised by its type | MQTT `PINGRESP`, WebSocket Pong |
//!
//! Out-of-band units (for a subscription, or for nobody) are routed by [`Route`]. Every
//! message the session writes registers what it expects ([`Expect`]) in one table, in
//! write order, beside the session's own heartbeat. A unit that answers nothing is out of band
//! ([`Unit::Message`]: a NATS `MSG`, a RESP3 push, an MQTT `PUBLISH`); a peer that answers
//! more than was asked is a typed error ([`crate::FrameError::UnexpectedReply`]) and a clean
//! reconnect.
//!
//! Built in: `resp` (RESP2 and RESP3), `nats`, `ws` (WebSocket, RFC 6455), framed codecs ([`framed`]: lines and
//! length-delimited frames, and any [`Codec`] of yours). `docs/PROTOCOLS.md` shows how to add one.

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::error::{FrameError, NetError};
use crate::subscription::SubId;

pub mod framed;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
#[cfg(feature = "resp")]
#[cfg_attr(docsrs, doc(cfg(feature = "resp")))]
pub mod resp;
#[cfg(feature = "ws")]
pub mod ws;

pub use framed::{AckMode, Codec, Frame, Framed, LengthCodec, LineCodec, RawCodec};

/// What a [`Protocol`] decoded at the front of the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit<'a> {
    /// Answers something we sent: a message, our heartbeat or a subscription, found by `to`.
    Reply {
        /// How the session finds what it answers.
        to: Match,
        /// The reply as the caller receives it (a whole RESP value, a NATS payload, an MQTT
        /// reason code and properties).
        body: &'a [u8],
        /// Whether the reply completes the exchange, refuses it, or is one step of it.
        status: ReplyStatus,
    },
    /// Data that answers nothing: for a subscription (found by `route`) or, with
    /// [`Route::None`], for the session's general inbound stream.
    Message {
        /// Which subscription it belongs to.
        route: Route<'a>,
        /// The payload.
        body: &'a [u8],
        /// Where it was published and how to answer it.
        meta: Meta<'a>,
    },
    /// One step of the connection's handshake.
    Handshake(Handshake<'a>),
    /// Protocol chatter with nothing for anyone (a peer PING, answered through
    /// [`Protocol::write_control`]; a NATS `INFO` update; an `+OK`): it proves liveness only.
    Control,
    /// The peer ends the conversation: a WebSocket Close, an MQTT `DISCONNECT`, a NATS `-ERR`
    /// that closes the connection.
    Closing(PeerClose<'a>),
    /// A peer error that ends nothing (a NATS permissions violation): reported as an event.
    Notice(&'a [u8]),
    /// A message for the session's general inbound stream that the protocol pieced together
    /// from fragments (WebSocket continuation frames), so its body is not one slice of the
    /// read buffer: it is in [`Protocol::assembled`].
    Assembled {
        /// Where it was published (for WebSocket: [`ws::TEXT`] or [`ws::BINARY`] as topic).
        meta: Meta<'a>,
    },
}

/// How a [`Unit::Reply`] is matched to what it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Match {
    /// The oldest outstanding [`Expect::Next`] (replies in request order). Outstanding
    /// [`Expect::Barrier`] messages written before it are confirmed with it.
    Next,
    /// The outstanding [`Expect::Key`] with this key, in any order; no such key is a protocol
    /// error (the peer acknowledged something never sent).
    Key(u64),
    /// Like [`Match::Key`], but a key that is not outstanding is ignored (a second reply to a
    /// NATS request, a reply that arrives after its request timed out).
    KeyIfAny(u64),
    /// Our heartbeat, by the reply's type (MQTT `PINGRESP`, WebSocket Pong). With a token,
    /// every outstanding heartbeat up to it is answered (a Pong answers every earlier Ping,
    /// RFC 6455 §5.5.3); a heartbeat answer nothing waits for proves liveness only.
    Heartbeat {
        /// The token echoed by the peer, if the protocol carries one.
        token: Option<u64>,
    },
}

/// What a reply says about the exchange it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyStatus {
    /// The exchange is complete.
    Done,
    /// The exchange is complete and the peer refused it (a Redis `-ERR`, an MQTT reason code
    /// ≥ 0x80): an application answer handed to the caller, never a network error and never
    /// retried.
    Refused,
    /// One step of a longer exchange (MQTT `PUBREC` before `PUBCOMP`): the message keeps
    /// waiting on the same key, and its next send is its next stage.
    Continues,
}

/// Which subscription an inbound unit belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route<'a> {
    /// None: the session's general inbound stream.
    None,
    /// A subscription id the peer echoes (NATS `sid`).
    Sid(u64),
    /// A name the subscription was made with (a Redis channel, pattern or shard channel, an
    /// MQTT topic), with a protocol-defined kind.
    Name {
        /// Protocol-defined (for RESP: channel, pattern or shard channel).
        kind: u8,
        /// The name, as on the wire.
        name: &'a [u8],
    },
}

/// Where an inbound message was published and how to answer it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Meta<'a> {
    /// The subject, channel or topic it was published to.
    pub topic: &'a [u8],
    /// The pattern it matched (Redis `pmessage`), if any.
    pub pattern: &'a [u8],
    /// Where a reply goes (NATS reply subject), if anywhere.
    pub reply_to: &'a [u8],
    /// Headers as on the wire (NATS `HMSG`), if any.
    pub headers: &'a [u8],
}

/// A handshake step (see [`Protocol::open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handshake<'a> {
    /// A step passed; more are coming.
    Progress,
    /// The connection is usable.
    Accepted {
        /// The peer resumed the session's earlier state (MQTT session present): what was
        /// unconfirmed is resent as it was; otherwise the session's own state is restored.
        resumed: bool,
        /// A heartbeat interval the peer imposes (MQTT Server Keep Alive), if any.
        keepalive: Option<Duration>,
    },
    /// The peer refused the connection: the attempt fails with `error` (a permanent class
    /// such as [`NetError::PermissionDenied`] stops retrying).
    Refused {
        /// The class.
        error: NetError,
        /// The peer's words (truncated when reported).
        text: &'a [u8],
        /// A delay the peer asked for before the next attempt (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
}

/// The peer closing the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerClose<'a> {
    /// The protocol's code (WebSocket close code, MQTT reason code); 0 when it has none.
    pub code: u16,
    /// What the session does next.
    pub then: AfterClose,
    /// The peer's words.
    pub text: &'a [u8],
}

/// What the session does after the peer closed the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AfterClose {
    /// Reconnect with the usual backoff.
    Reconnect,
    /// Reconnect, but wait at least this long first (a server restarting).
    ReconnectAfter(Duration),
    /// Stop for good: the peer will refuse us again (a policy violation, a takeover).
    GiveUp(NetError),
    /// The conversation is over: close the session.
    Done,
}

/// What a written message (or the session's own heartbeat or subscription request) waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expect {
    /// Nothing: delivered once written.
    Written,
    /// The next in-order reply ([`Match::Next`]).
    Next,
    /// No reply of its own: confirmed by the next in-order reply to something written after
    /// it (NATS `PUB`, confirmed by the `PONG` of a later `PING`: the server processes in order).
    Barrier,
    /// A reply carrying this key ([`Match::Key`]).
    Key(u64),
    /// Our heartbeat, answered by type ([`Match::Heartbeat`]).
    Heartbeat,
}

/// How a message is sent (first time, or again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sending {
    /// `Some(key)`: sent again on a resumed session with the key it had (MQTT: same packet id,
    /// DUP set).
    pub again: Option<u64>,
    /// How many [`ReplyStatus::Continues`] replies it had (MQTT QoS 2: 1 means resend `PUBREL`).
    pub stage: u8,
}

/// What the session tells a protocol about a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open {
    /// A fresh random number from the session's seeded generator (for handshake nonces and
    /// masking keys: deterministic under a seed).
    pub nonce: u64,
    /// Whether the session holds messages written but unconfirmed on an earlier connection
    /// (a protocol with resumable sessions may ask the peer to resume).
    pub unconfirmed: bool,
}

/// A protocol: grammar and attribution for one kind of peer. Implemented by [`resp::Resp`],
/// [`nats::Nats`], [`Framed`] (any [`Codec`]) and, through `Box`, any object.
///
/// The session calls it; a host never does. Decoding is restartable: the session passes the
/// buffer starting at the first byte not yet consumed, with more bytes appended each time, and
/// a protocol may remember how far it scanned an incomplete unit.
pub trait Protocol {
    /// A new connection: reset per-connection state and queue the opening (handshake request,
    /// setup commands) for [`Protocol::write_control`]. Returns whether the connection must
    /// wait for [`Handshake::Accepted`] before it is usable.
    fn open(&mut self, open: Open) -> Result<bool, FrameError>;

    /// Decodes the unit at the start of `buf`: `Ok(None)` when more bytes are needed, or the
    /// unit and the bytes it used. A declared length over a bound is an error before the body
    /// arrives.
    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Unit<'a>, usize)>, FrameError>;

    /// Checks that `msg` is one message this protocol can send (called at enqueue, so an
    /// unencodable message is rejected at once instead of poisoning a connection).
    fn check(&self, msg: &[u8]) -> Result<(), FrameError>;

    /// Appends the wire form of a checked message and says what it expects.
    fn encode(
        &mut self,
        msg: &[u8],
        send: Sending,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError>;

    /// Appends our heartbeat request with `token`, or returns `None` when the protocol has
    /// none (liveness then rests on the peer's own traffic).
    fn encode_ping(&mut self, token: u64, out: &mut Vec<u8>) -> Option<Expect>;

    /// Bytes the protocol owes the peer on its own (the opening, answers to the peer's pings,
    /// acknowledgements, follow-ups such as MQTT `PUBREL`). Written first in every transmit.
    fn control_pending(&self) -> usize;

    /// Appends what [`Protocol::control_pending`] counts, and forgets it.
    fn write_control(&mut self, out: &mut Vec<u8>);

    /// Checks a subscription spec (see [`crate::Session::subscribe`]).
    fn check_subscription(&self, spec: &[u8]) -> Result<(), FrameError> {
        let _ = spec;
        Err(FrameError::Malformed {
            reason: "this protocol has no subscriptions",
        })
    }

    /// Appends a subscription request for `spec` under `id`.
    fn encode_subscribe(
        &mut self,
        spec: &[u8],
        id: SubId,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        let _ = (spec, id, out);
        Err(FrameError::Malformed {
            reason: "this protocol has no subscriptions",
        })
    }

    /// Appends the request that ends subscription `id`.
    fn encode_unsubscribe(
        &mut self,
        spec: &[u8],
        id: SubId,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        let _ = (spec, id, out);
        Err(FrameError::Malformed {
            reason: "this protocol has no subscriptions",
        })
    }

    /// Whether an inbound unit with `route` belongs to subscription `id` made with `spec`.
    fn route_matches(&self, route: &Route<'_>, id: SubId, spec: &[u8]) -> bool {
        let _ = (route, id, spec);
        false
    }

    /// Appends a graceful goodbye (WebSocket Close 1000, MQTT `DISCONNECT`), if the protocol
    /// has one; the session then waits for the peer to close, up to its close timeout.
    fn encode_goodbye(&mut self, out: &mut Vec<u8>) -> bool {
        let _ = out;
        false
    }

    /// Whether the protocol queued a farewell in [`Protocol::write_control`] (a WebSocket
    /// Close answering the peer's, or naming the violation just returned by `decode`): the
    /// session then writes it, within its close timeout, before it closes the socket.
    fn farewell_owed(&self) -> bool {
        false
    }

    /// Where the body of a [`Unit::Assembled`] is. The session takes the buffer for the
    /// delivery and puts it back (keeping its capacity). Default: none.
    fn assembled(&mut self) -> Option<&mut Vec<u8>> {
        None
    }

    /// How many keyed exchanges may be outstanding at once (MQTT Receive Maximum).
    fn max_in_flight(&self) -> usize {
        usize::MAX
    }

    /// Whether the heartbeat must also go out after `interval` without *writing* (MQTT keep
    /// alive): by default only read silence sends a PING.
    fn ping_when_write_idle(&self) -> bool {
        false
    }

    /// Whether the peer may resume the session on a new connection ([`Handshake::Accepted`]
    /// `resumed`): unconfirmed messages then wait for its answer instead of being settled when
    /// the connection is lost.
    fn resumable(&self) -> bool {
        false
    }

    /// The largest unit the decoder accepts, in bytes.
    fn max_frame(&self) -> usize;

    /// Checks the protocol's own settings (called when a session is built). Default: fine.
    fn validate(&self) -> Result<(), crate::error::ConfigError> {
        Ok(())
    }
}

impl<P: Protocol + ?Sized> Protocol for alloc::boxed::Box<P> {
    fn open(&mut self, open: Open) -> Result<bool, FrameError> {
        (**self).open(open)
    }
    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Unit<'a>, usize)>, FrameError> {
        (**self).decode(buf)
    }
    fn check(&self, msg: &[u8]) -> Result<(), FrameError> {
        (**self).check(msg)
    }
    fn encode(
        &mut self,
        msg: &[u8],
        send: Sending,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        (**self).encode(msg, send, out)
    }
    fn encode_ping(&mut self, token: u64, out: &mut Vec<u8>) -> Option<Expect> {
        (**self).encode_ping(token, out)
    }
    fn control_pending(&self) -> usize {
        (**self).control_pending()
    }
    fn write_control(&mut self, out: &mut Vec<u8>) {
        (**self).write_control(out)
    }
    fn check_subscription(&self, spec: &[u8]) -> Result<(), FrameError> {
        (**self).check_subscription(spec)
    }
    fn encode_subscribe(
        &mut self,
        spec: &[u8],
        id: SubId,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        (**self).encode_subscribe(spec, id, out)
    }
    fn encode_unsubscribe(
        &mut self,
        spec: &[u8],
        id: SubId,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        (**self).encode_unsubscribe(spec, id, out)
    }
    fn route_matches(&self, route: &Route<'_>, id: SubId, spec: &[u8]) -> bool {
        (**self).route_matches(route, id, spec)
    }
    fn encode_goodbye(&mut self, out: &mut Vec<u8>) -> bool {
        (**self).encode_goodbye(out)
    }
    fn farewell_owed(&self) -> bool {
        (**self).farewell_owed()
    }
    fn assembled(&mut self) -> Option<&mut Vec<u8>> {
        (**self).assembled()
    }
    fn max_in_flight(&self) -> usize {
        (**self).max_in_flight()
    }
    fn ping_when_write_idle(&self) -> bool {
        (**self).ping_when_write_idle()
    }
    fn resumable(&self) -> bool {
        (**self).resumable()
    }
    fn max_frame(&self) -> usize {
        (**self).max_frame()
    }
    fn validate(&self) -> Result<(), crate::error::ConfigError> {
        (**self).validate()
    }
}

/// Bytes shown for a peer's words or a payload in errors and events: at most this many.
pub const SHOWN_BYTES: usize = 200;

/// Bytes for display: lossy UTF-8, truncated to [`SHOWN_BYTES`] with the full length said.
pub struct Shown<'a>(pub &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = &self.0[..self.0.len().min(SHOWN_BYTES)];
        for chunk in cut.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if self.0.len() > SHOWN_BYTES {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// A control-output buffer for protocols: what they owe the peer on their own, bounded so a
/// peer that floods pings while not reading cannot grow it without limit (the session stops
/// reading while it is over [`ControlBuf::SOFT_LIMIT`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ControlBuf(Vec<u8>);

impl ControlBuf {
    /// Above this many owed bytes the session stops decoding until they are written.
    pub const SOFT_LIMIT: usize = 64 << 10;

    /// Bytes owed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// The buffer, to encode into.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// Moves everything owed to `out`.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
        self.0.clear();
        if self.0.capacity() > Self::SOFT_LIMIT {
            self.0 = Vec::new();
        }
    }

    /// Forgets everything owed (a new connection).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl fmt::Debug for ControlBuf {
    // Control bytes can hold a handshake's credentials: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ControlBuf({} bytes)", self.0.len())
    }
}

/// Parses an unsigned decimal number (no sign, no spaces), refusing overflow.
#[cfg(any(feature = "resp", feature = "nats"))]
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

/// Appends `n` in decimal.
#[cfg(any(feature = "resp", feature = "nats"))]
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    #[cfg(any(feature = "resp", feature = "nats"))]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        let mut v = Vec::new();
        push_decimal(&mut v, 0);
        push_decimal(&mut v, 1234567890);
        assert_eq!(v, b"01234567890");
    }

    #[test]
    fn shown_truncates_and_escapes() {
        let long = [b'a'; 300];
        let s = format!("{}", Shown(&long));
        assert!(s.starts_with("aaa") && s.ends_with("(300 bytes)"), "{s}");
        assert_eq!(format!("{}", Shown(b"a\r\n\xff")), "a\\r\\n\\xff");
    }
}
