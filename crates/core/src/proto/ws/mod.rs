//! WebSocket (RFC 6455), client side: the Upgrade handshake, frames both ways, the heartbeat
//! by Ping and Pong, and the closing handshake, all sans-IO.
//!
//! ```
//! use redial_core::proto::ws::WebSocket;
//! let ws = WebSocket::new("example.com:8080", "/chat")
//!     .with_subprotocol("chat.v1")
//!     .with_header("Authorization", "Bearer s3cret");
//! // Header values never reach `Debug` (nor events, logs or errors).
//! assert!(!format!("{ws:?}").contains("s3cret"));
//! ```
//!
//! What each frame means for the session (the attribution table in `docs/PROTOCOLS.md`):
//!
//! | frame | unit |
//! |---|---|
//! | the 101 answer | [`Handshake::Accepted`]; any other status [`Handshake::Refused`] (see [`classify_status`]) |
//! | text, binary (one frame) | [`Unit::Message`], the body borrowed from the read buffer |
//! | text, binary (fragments) | [`Unit::Control`] per fragment, then [`Unit::Assembled`] |
//! | Ping | [`Unit::Control`]; its Pong goes out ahead of anything queued |
//! | Pong echoing our Ping's counter | [`Match::Heartbeat`] with that counter (it answers every earlier Ping) |
//! | any other Pong | [`Unit::Control`]: liveness, not an answer |
//! | Close | [`Unit::Closing`], classified by [`classify_close`]; our Close echoes it |
//!
//! Every message we send is one frame, masked with a fresh key from a generator seeded by the
//! session ([`Open::nonce`]), and waits as an [`Expect::Barrier`]: the Pong of a later Ping
//! proves the server read it (it answers in order), so a message written after the server's
//! Close is in doubt, never claimed delivered. permessage-deflate and WebSocket over HTTP/2
//! (RFC 8441) are not supported: we offer no extension, and refuse a server that picks one.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use rand_core::RngCore;

use crate::error::{ConfigError, FrameError, NetError};
use crate::proto::{
    AfterClose, ControlBuf, Expect, Handshake, Match, Meta, Open, PeerClose, Protocol, ReplyStatus,
    Route, Sending, Unit,
};
use crate::rng::SplitMix64;

mod digest;
pub mod frame;
mod handshake;
#[cfg(test)]
mod tests;

use frame::{Opcode, Violation};

/// What our messages are sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Text frames: every message must be UTF-8 (checked at enqueue).
    Text,
    /// Binary frames.
    Binary,
}

/// Bounds on what the server may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsLimits {
    /// The largest message (one frame, or all fragments together). Default 16 MiB.
    pub max_message: usize,
    /// Most fragments of one message. Default 4096.
    pub max_fragments: u32,
    /// The largest answer head to the Upgrade request (status line and headers). Default
    /// 16 KiB.
    pub max_header: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_message: 16 << 20,
            max_fragments: 4096,
            max_header: 16 << 10,
        }
    }
}

/// A message's [`Meta::topic`]: what kind of data frame carried it.
pub const TEXT: &[u8] = b"text";
/// A binary message's [`Meta::topic`].
pub const BINARY: &[u8] = b"binary";

/// What a Close code means for the session (RFC 6455 §7.4), with `stay` for "reconnect
/// even after a normal close" and `restart` the least delay after 1012/1013.
///
/// | code | then |
/// |---|---|
/// | 1000, none (1005) | done ([`AfterClose::Done`]), or reconnect with `stay` |
/// | 1001, 1009, 1011, 1014, 3000–4999 | reconnect with backoff |
/// | 1012 (service restart), 1013 (try again later) | reconnect, waiting at least `restart` |
/// | 1002, 1003, 1007, 1010 | give up ([`NetError::Unsupported`]) |
/// | 1008 (policy violation) | give up ([`NetError::PermissionDenied`]) |
pub fn classify_close(code: u16, stay: bool, restart: Duration) -> AfterClose {
    match code {
        1000 | 1005 if stay => AfterClose::Reconnect,
        1000 | 1005 => AfterClose::Done,
        1012 | 1013 => AfterClose::ReconnectAfter(restart),
        1002 | 1003 | 1007 | 1010 => AfterClose::GiveUp(NetError::Unsupported),
        1008 => AfterClose::GiveUp(NetError::PermissionDenied),
        _ => AfterClose::Reconnect,
    }
}

/// What an HTTP status answering the Upgrade means (the class of the failed attempt):
///
/// | status | class | retried |
/// |---|---|---|
/// | 101 (with the right headers) | accepted | |
/// | 429, 5xx | [`NetError::Refused`], honouring `Retry-After` (seconds) | yes |
/// | 401, 403, 407 | [`NetError::PermissionDenied`] | no |
/// | 404, 410 | [`NetError::InvalidAddress`] | no |
/// | other 3xx and 4xx (400, 426, a redirect: not followed) | [`NetError::Unsupported`] | no |
/// | other 1xx, 2xx | [`NetError::Protocol`] | yes |
///
/// A 101 with a wrong `Sec-WebSocket-Accept`, no `Upgrade: websocket` or `Connection:
/// Upgrade`, an extension or a subprotocol we did not offer is [`NetError::Unsupported`].
pub fn classify_status(status: u16) -> Option<NetError> {
    match status {
        101 => None,
        429 | 500..=599 => Some(NetError::Refused),
        401 | 403 | 407 => Some(NetError::PermissionDenied),
        404 | 410 => Some(NetError::InvalidAddress),
        300..=499 => Some(NetError::Unsupported),
        _ => Some(NetError::Protocol),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the answer head; `scanned` bytes of it were searched for its end.
    Upgrade {
        scanned: usize,
    },
    Open,
}

/// A fragmented message being pieced together.
#[derive(Clone, Copy, Debug)]
struct Fragments {
    text: bool,
    count: u32,
    /// How much of the assembled text is known to be valid UTF-8 (the rest, at most three
    /// bytes, is an incomplete character).
    valid: usize,
}

/// A violation of the grammar, with the close code that names it (RFC 6455 §7.4.1).
struct Fail {
    code: u16,
    error: FrameError,
}

fn fail(code: u16, reason: &'static str) -> Fail {
    Fail {
        code,
        error: FrameError::Malformed { reason },
    }
}

impl From<Violation> for Fail {
    fn from(v: Violation) -> Fail {
        fail(1002, v.reason())
    }
}

/// A WebSocket client conversation (RFC 6455): see the [module docs](self).
#[derive(Clone)]
pub struct WebSocket {
    host: String,
    path: String,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    kind: Kind,
    limits: WsLimits,
    stay: bool,
    restart: Duration,
    // Per connection.
    stage: Stage,
    accept: [u8; 28],
    rng: SplitMix64,
    control: ControlBuf,
    close_sent: bool,
    close_queued: bool,
    fragments: Option<Fragments>,
    assembled: Vec<u8>,
    /// Our Ping counters sent on this connection: (first, last); 0 is none.
    tokens: (u64, u64),
}

impl fmt::Debug for WebSocket {
    // Extra headers carry credentials (Authorization, cookies): only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("WebSocket")
            .field("host", &self.host)
            .field("path", &self.path)
            .field("protocols", &self.protocols)
            .field("headers", &names)
            .field("values", &"<redacted>")
            .field("kind", &self.kind)
            .field("limits", &self.limits)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// Headers the handshake writes itself; a user's header may not replace them.
const OWN_HEADERS: [&str; 9] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

impl WebSocket {
    /// A client for `path` (starting with `/`, with any query) on `host` (the `Host` header:
    /// `name` or `name:port`). Sends text; see [`WebSocket::binary`].
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        WebSocket {
            host: host.into(),
            path: path.into(),
            protocols: Vec::new(),
            headers: Vec::new(),
            kind: Kind::Text,
            limits: WsLimits::default(),
            stay: false,
            restart: Duration::from_secs(2),
            stage: Stage::Upgrade { scanned: 0 },
            accept: [0; 28],
            rng: SplitMix64::new(0),
            control: ControlBuf::default(),
            close_sent: false,
            close_queued: false,
            fragments: None,
            assembled: Vec::new(),
            tokens: (0, 0),
        }
    }

    /// Offers subprotocol `p` (`Sec-WebSocket-Protocol`); may be called for several, in order
    /// of preference.
    pub fn with_subprotocol(mut self, p: impl Into<String>) -> Self {
        self.protocols.push(p.into());
        self
    }

    /// Sends header `name: value` with the Upgrade request (an `Authorization`, an `Origin`).
    /// Its value is never shown in `Debug`, events or errors.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends every message as a binary frame.
    pub fn binary(mut self) -> Self {
        self.kind = Kind::Binary;
        self
    }

    /// What messages are sent as.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The `Host` header.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The request path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The subprotocols offered.
    pub fn subprotocols(&self) -> &[String] {
        &self.protocols
    }

    /// The names of the extra headers (their values are never shown).
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().map(|(n, _)| n.as_str())
    }

    /// The bounds on what the server may send.
    pub fn limits(&self) -> WsLimits {
        self.limits
    }

    /// Whether a normal close (1000) reconnects.
    pub fn stays_connected(&self) -> bool {
        self.stay
    }

    /// The least delay after 1012 or 1013.
    pub fn restart_delay(&self) -> Duration {
        self.restart
    }

    /// Sets the bounds on what the server may send.
    pub fn with_limits(mut self, limits: WsLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Reconnects after a normal close (1000) instead of ending the session.
    pub fn stay_connected(mut self) -> Self {
        self.stay = true;
        self
    }

    /// The least delay before reconnecting after 1012 (service restart) or 1013 (try again
    /// later). Default 2 s.
    pub fn with_restart_delay(mut self, d: Duration) -> Self {
        self.restart = d;
        self
    }

    fn upgrade_request(&mut self, key: &[u8]) {
        let b = self.control.buf();
        let mut put = |parts: &[&[u8]]| {
            for p in parts {
                b.extend_from_slice(p);
            }
        };
        put(&[b"GET ", self.path.as_bytes(), b" HTTP/1.1\r\n"]);
        put(&[b"Host: ", self.host.as_bytes(), b"\r\n"]);
        put(&[b"Upgrade: websocket\r\nConnection: Upgrade\r\n"]);
        put(&[
            b"Sec-WebSocket-Key: ",
            key,
            b"\r\nSec-WebSocket-Version: 13\r\n",
        ]);
        for (i, p) in self.protocols.iter().enumerate() {
            let lead: &[u8] = if i == 0 {
                b"Sec-WebSocket-Protocol: "
            } else {
                b", "
            };
            put(&[lead, p.as_bytes()]);
        }
        if !self.protocols.is_empty() {
            put(&[b"\r\n"]);
        }
        for (n, v) in &self.headers {
            put(&[n.as_bytes(), b": ", v.as_bytes(), b"\r\n"]);
        }
        put(&[b"\r\n"]);
    }

    fn mask(&mut self) -> [u8; 4] {
        self.rng.next_u32().to_ne_bytes()
    }

    /// Queues our Close (once): a reply to the server's, or the code of its violation.
    fn queue_close(&mut self, code: Option<u16>) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        self.close_queued = true;
        let mask = self.mask();
        let bytes = code.map(u16::to_be_bytes);
        let parts: &[&[u8]] = match &bytes {
            Some(b) => &[b],
            None => &[],
        };
        frame::encode_parts(self.control.buf(), Opcode::Close, parts, Some(mask));
    }

    /// The next unit of an open connection.
    fn frame<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Unit<'a>, usize)>, Fail> {
        let Some(h) = frame::parse_header(buf)? else {
            return Ok(None);
        };
        if h.mask.is_some() {
            return Err(fail(1002, "masked WebSocket frame from the server"));
        }
        let max = self.limits.max_message;
        if h.len > max as u64 {
            return Err(Fail {
                code: 1009,
                error: FrameError::TooLarge {
                    size: usize::try_from(h.len).unwrap_or(usize::MAX),
                    max,
                },
            });
        }
        // Within the bound, so it fits a usize.
        let len = h.len as usize;
        let end = h.header_len + len;
        if buf.len() < end {
            return Ok(None);
        }
        let payload = &buf[h.header_len..end];
        let unit = match h.opcode {
            Opcode::Text | Opcode::Binary => {
                if self.fragments.is_some() {
                    return Err(fail(1002, "new WebSocket message inside a fragmented one"));
                }
                let text = h.opcode == Opcode::Text;
                if h.fin {
                    if text && core::str::from_utf8(payload).is_err() {
                        return Err(fail(1007, "invalid UTF-8 in a WebSocket text message"));
                    }
                    Unit::Message {
                        route: Route::None,
                        body: payload,
                        meta: meta(text),
                    }
                } else {
                    self.assembled.clear();
                    self.fragments = Some(Fragments {
                        text,
                        count: 0,
                        valid: 0,
                    });
                    self.piece(payload, false)?
                }
            }
            Opcode::Continuation => {
                if self.fragments.is_none() {
                    return Err(fail(1002, "WebSocket continuation with no message begun"));
                }
                self.piece(payload, h.fin)?
            }
            Opcode::Ping => {
                if !self.close_sent {
                    let mask = self.mask();
                    frame::encode(self.control.buf(), Opcode::Pong, payload, Some(mask));
                }
                Unit::Control
            }
            Opcode::Pong => {
                let (first, last) = self.tokens;
                match <[u8; 8]>::try_from(payload).map(u64::from_be_bytes) {
                    Ok(t) if first != 0 && (first..=last).contains(&t) => Unit::Reply {
                        to: Match::Heartbeat { token: Some(t) },
                        body: payload,
                        status: ReplyStatus::Done,
                    },
                    // Unsolicited, or not ours: the peer is alive, nothing is answered.
                    _ => Unit::Control,
                }
            }
            Opcode::Close => {
                let (code, reason) = match payload {
                    [] => (None, &[][..]),
                    [_] => return Err(fail(1002, "WebSocket Close with a one-byte payload")),
                    [a, b, reason @ ..] => (Some(u16::from_be_bytes([*a, *b])), reason),
                };
                if let Some(c) = code {
                    if !frame::close_code_allowed(c) {
                        return Err(fail(1002, "WebSocket Close with a reserved code"));
                    }
                }
                if core::str::from_utf8(reason).is_err() {
                    return Err(fail(1007, "invalid UTF-8 in a WebSocket Close reason"));
                }
                self.queue_close(code);
                let code = code.unwrap_or(1005);
                Unit::Closing(PeerClose {
                    code,
                    then: classify_close(code, self.stay, self.restart),
                    text: reason,
                })
            }
        };
        Ok(Some((unit, end)))
    }

    /// One fragment of the message being pieced together.
    fn piece<'a>(&mut self, payload: &[u8], fin: bool) -> Result<Unit<'a>, Fail> {
        let max = self.limits.max_message;
        let max_fragments = self.limits.max_fragments;
        let Some(f) = &mut self.fragments else {
            return Err(fail(1002, "WebSocket continuation with no message begun"));
        };
        f.count += 1;
        if f.count > max_fragments {
            return Err(Fail {
                code: 1009,
                error: FrameError::TooMany {
                    what: "WebSocket fragments",
                    count: u64::from(f.count),
                    max: u64::from(max_fragments),
                },
            });
        }
        let size = self.assembled.len() + payload.len();
        if size > max {
            return Err(Fail {
                code: 1009,
                error: FrameError::TooLarge { size, max },
            });
        }
        self.assembled.extend_from_slice(payload);
        if f.text {
            // Checked as it comes, so a bad byte fails at its fragment (RFC 6455 §8.1).
            match core::str::from_utf8(&self.assembled[f.valid..]) {
                Ok(_) => f.valid = self.assembled.len(),
                Err(e) if e.error_len().is_none() && !fin => f.valid += e.valid_up_to(),
                Err(_) => return Err(fail(1007, "invalid UTF-8 in a WebSocket text message")),
            }
        }
        if !fin {
            return Ok(Unit::Control);
        }
        let text = f.text;
        self.fragments = None;
        Ok(Unit::Assembled { meta: meta(text) })
    }
}

/// The `Sec-WebSocket-Accept` a server answers to `key` (RFC 6455 §4.2.2): for test servers
/// and differential checks.
pub fn accept_for_key(key: &[u8]) -> [u8; 28] {
    digest::accept_for(key)
}

fn meta(text: bool) -> Meta<'static> {
    Meta {
        topic: if text { TEXT } else { BINARY },
        ..Meta::default()
    }
}

fn valid_header_value(v: &str) -> bool {
    !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

impl Protocol for WebSocket {
    fn open(&mut self, open: Open) -> Result<bool, FrameError> {
        self.rng = SplitMix64::new(open.nonce);
        self.stage = Stage::Upgrade { scanned: 0 };
        self.control.clear();
        self.close_sent = false;
        self.close_queued = false;
        self.fragments = None;
        self.assembled.clear();
        if self.assembled.capacity() > ControlBuf::SOFT_LIMIT {
            self.assembled = Vec::new();
        }
        self.tokens = (0, 0);
        let mut nonce = [0u8; 16];
        self.rng.fill_bytes(&mut nonce);
        let mut key = [0u8; 24];
        digest::base64(&nonce, &mut key);
        self.accept = digest::accept_for(&key);
        self.upgrade_request(&key);
        Ok(true)
    }

    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Unit<'a>, usize)>, FrameError> {
        if let Stage::Upgrade { scanned } = self.stage {
            let Some(end) = handshake::head_end(buf, scanned, self.limits.max_header)? else {
                self.stage = Stage::Upgrade { scanned: buf.len() };
                return Ok(None);
            };
            let head = handshake::Head::parse(&buf[..end])?;
            let unit = match handshake::judge(&head, &self.accept, &self.protocols) {
                handshake::Answer::Accepted => {
                    self.stage = Stage::Open;
                    Handshake::Accepted {
                        resumed: false,
                        keepalive: None,
                    }
                }
                handshake::Answer::Refused {
                    error,
                    text,
                    retry_after,
                } => Handshake::Refused {
                    error,
                    text,
                    retry_after,
                },
            };
            return Ok(Some((Unit::Handshake(unit), end)));
        }
        match self.frame(buf) {
            Ok(u) => Ok(u),
            Err(Fail { code, error }) => {
                // Fail the connection (RFC 6455 §7.1.7), telling the server why.
                self.queue_close(Some(code));
                self.fragments = None;
                Err(error)
            }
        }
    }

    fn check(&self, msg: &[u8]) -> Result<(), FrameError> {
        if self.kind == Kind::Text && core::str::from_utf8(msg).is_err() {
            return Err(FrameError::Malformed {
                reason: "a WebSocket text message must be UTF-8",
            });
        }
        Ok(())
    }

    fn encode(
        &mut self,
        msg: &[u8],
        _send: Sending,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        let opcode = match self.kind {
            Kind::Text => Opcode::Text,
            Kind::Binary => Opcode::Binary,
        };
        let mask = self.mask();
        frame::encode(out, opcode, msg, Some(mask));
        Ok(Expect::Barrier)
    }

    fn encode_ping(&mut self, token: u64, out: &mut Vec<u8>) -> Option<Expect> {
        if self.tokens.0 == 0 {
            self.tokens.0 = token;
        }
        self.tokens.1 = token;
        let mask = self.mask();
        frame::encode(out, Opcode::Ping, &token.to_be_bytes(), Some(mask));
        Some(Expect::Heartbeat)
    }

    fn control_pending(&self) -> usize {
        self.control.len()
    }

    fn write_control(&mut self, out: &mut Vec<u8>) {
        self.close_queued = false;
        self.control.drain_into(out);
    }

    fn encode_goodbye(&mut self, out: &mut Vec<u8>) -> bool {
        if self.close_sent {
            return false;
        }
        self.close_sent = true;
        let mask = self.mask();
        frame::encode(out, Opcode::Close, &1000u16.to_be_bytes(), Some(mask));
        true
    }

    fn farewell_owed(&self) -> bool {
        self.close_queued
    }

    fn assembled(&mut self) -> Option<&mut Vec<u8>> {
        Some(&mut self.assembled)
    }

    fn max_frame(&self) -> usize {
        self.limits.max_message.saturating_add(14)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.host.is_empty() || !self.host.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Protocol(
                "WebSocket host must be visible ASCII",
            ));
        }
        if !self.path.starts_with('/') || !self.path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Protocol(
                "WebSocket path must start with / and be visible ASCII",
            ));
        }
        for (i, p) in self.protocols.iter().enumerate() {
            if p.is_empty()
                || !p.bytes().all(handshake::is_tchar)
                || self.protocols[..i].contains(p)
            {
                return Err(ConfigError::Protocol(
                    "WebSocket subprotocols must be distinct HTTP tokens",
                ));
            }
        }
        for (n, v) in &self.headers {
            if n.is_empty() || !n.bytes().all(handshake::is_tchar) {
                return Err(ConfigError::Protocol("header name is not an HTTP token"));
            }
            if OWN_HEADERS.iter().any(|o| o.eq_ignore_ascii_case(n)) {
                return Err(ConfigError::Protocol(
                    "that header is written by the WebSocket handshake itself",
                ));
            }
            if !valid_header_value(v) {
                return Err(ConfigError::Protocol(
                    "header value with a line break or NUL",
                ));
            }
        }
        let l = self.limits;
        if l.max_message == 0 || l.max_fragments == 0 || l.max_header < 64 {
            return Err(ConfigError::Protocol(
                "WebSocket limits must be positive (headers at least 64 bytes)",
            ));
        }
        if l.max_message > 1 << 30 {
            return Err(ConfigError::Protocol("WebSocket messages over 1 GiB"));
        }
        Ok(())
    }
}
