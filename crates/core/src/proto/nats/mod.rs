//! The NATS client protocol.
//!
//! Units follow the grammar: a `MSG` or `HMSG` is its control line plus exactly the payload
//! bytes it declares, so a payload `PING`, `+OK`, `-ERR` or CR LF is data. Control lines are
//! bounded ([`Nats::with_max_control_line`]), declared payloads too ([`Nats::with_max_payload`],
//! and the server's `max_payload`), before the payload is awaited.
//!
//! Attribution:
//! - `PONG` answers our `PING`s in order; a `PUB` has no reply of its own, so it is confirmed
//!   by the `PONG` of a `PING` written after it (the server processes in order): the session
//!   sends one after every write of `PUB`s, so "delivered" means the server has processed it;
//! - a request is a `PUB` with a reply subject in the session's inbox
//!   (`<inbox>.<token>`, one `SUB <inbox>.*` per connection); the `MSG` on that subject
//!   answers it by token, in any order; a second answer is dropped;
//! - other `MSG`/`HMSG` go to their subscription by `sid` ([`crate::SubId`]);
//! - the server's `PING` is answered with `PONG` ahead of anything queued;
//! - `-ERR` after connect: a permissions violation is an event; the others end the
//!   connection (an authorization violation for good).
//!
//! The handshake checks that the first line is `INFO`, answers with `CONNECT` (with the
//! credentials, never shown) and `PING`, and waits for the `PONG`: an authorization error
//! there stops retrying.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::error::{ConfigError, FrameError, NetError};
use crate::proto::{
    parse_u64, push_decimal, AfterClose, ControlBuf, Expect, Handshake, Match, Meta, Open,
    PeerClose, Protocol, ReplyStatus, Route, Sending, Unit,
};
use crate::subscription::SubId;

mod json;
mod wire;

use wire::{parse_pub, publish_to, split_op, status_code, valid_subject, words};
pub use wire::{publish, publish_with_headers, publish_with_reply, subscription};

/// The `sid` of the session's inbox subscription (user subscriptions start at 1).
const INBOX_SID: &[u8] = b"0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the server's `INFO`.
    Info,
    /// `CONNECT` and `PING` sent; waiting for the `PONG`.
    Pong,
    Ready,
}

/// Credentials sent in `CONNECT`.
#[derive(Clone, PartialEq, Eq)]
enum Auth {
    None,
    UserPass(String, String),
    Token(String),
}

/// The NATS protocol (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct Nats {
    auth: Auth,
    name: Option<String>,
    echo: bool,
    /// The inbox prefix, without its trailing `.`.
    inbox: Option<String>,
    max_control_line: usize,
    max_payload: usize,
    // Per connection:
    stage: Stage,
    server_max_payload: Option<usize>,
    control: ControlBuf,
}

impl fmt::Debug for Nats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::UserPass(..) => "user and password (redacted)",
            Auth::Token(_) => "token (redacted)",
        };
        f.debug_struct("Nats")
            .field("auth", &auth)
            .field("name", &self.name)
            .field("inbox", &self.inbox)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

impl Default for Nats {
    fn default() -> Self {
        Nats::new()
    }
}

fn malformed(reason: &'static str) -> FrameError {
    FrameError::Malformed { reason }
}

impl Nats {
    /// No credentials, payloads up to 64 MiB (and the server's `max_payload`), control lines
    /// up to 4 KiB. Requests need an inbox: [`Nats::with_inbox`].
    pub fn new() -> Self {
        Nats {
            auth: Auth::None,
            name: None,
            echo: true,
            inbox: None,
            max_control_line: 4096,
            max_payload: 64 << 20,
            stage: Stage::Info,
            server_max_payload: None,
            control: ControlBuf::default(),
        }
    }

    /// User and password for `CONNECT` (never shown in `Debug`, events, logs or traces).
    pub fn with_user_password(mut self, user: &str, password: &str) -> Self {
        self.auth = Auth::UserPass(user.into(), password.into());
        self
    }

    /// An authentication token for `CONNECT` (never shown).
    pub fn with_token(mut self, token: &str) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// The client name the server shows.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the server sends our own publishes back to our subscriptions (default yes).
    pub fn with_echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// The inbox prefix for requests, such as `_INBOX.3f9a1c`: unique to this client (replies
    /// of two clients with one inbox would cross). The driver picks a random one.
    pub fn with_inbox(mut self, prefix: &str) -> Self {
        self.inbox = Some(prefix.into());
        self
    }

    /// The largest payload accepted or sent.
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The longest control line accepted.
    pub fn with_max_control_line(mut self, bytes: usize) -> Self {
        self.max_control_line = bytes;
        self
    }

    /// The inbox prefix, if set.
    pub fn inbox(&self) -> Option<&str> {
        self.inbox.as_deref()
    }

    /// Which credentials `CONNECT` carries (never the secrets): `None`, or `Some(true)` for a
    /// user and password, `Some(false)` for a token.
    pub fn auth_kind(&self) -> Option<bool> {
        match self.auth {
            Auth::None => None,
            Auth::UserPass(..) => Some(true),
            Auth::Token(_) => Some(false),
        }
    }

    /// The client name, if set.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether the server echoes our own publishes.
    pub fn echo(&self) -> bool {
        self.echo
    }

    /// The largest payload accepted or sent.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The longest control line accepted.
    pub fn max_control_line(&self) -> usize {
        self.max_control_line
    }

    /// A request: `PUB subject <inbox>.<token> payload`, answered by the reply to that token.
    /// `token` must be unique among the session's outstanding requests (the driver counts).
    pub fn request(
        &self,
        token: u64,
        subject: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, FrameError> {
        let inbox = self
            .inbox
            .as_deref()
            .ok_or(malformed("requests need an inbox (Nats::with_inbox)"))?;
        let mut reply = String::with_capacity(inbox.len() + 21);
        reply.push_str(inbox);
        reply.push('.');
        let mut digits = Vec::new();
        push_decimal(&mut digits, token);
        reply.push_str(core::str::from_utf8(&digits).unwrap_or("0"));
        publish_to(subject, Some(&reply), None, payload)
    }

    fn connect_line(&self) -> Vec<u8> {
        let mut j = Vec::with_capacity(256);
        j.extend_from_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"rust\",");
        j.extend_from_slice(b"\"version\":\"");
        j.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        j.extend_from_slice(b"\",\"protocol\":1,\"headers\":true,\"no_responders\":true,\"echo\":");
        j.extend_from_slice(if self.echo { b"true" } else { b"false" });
        let mut field = |k: &str, v: &str| {
            j.extend_from_slice(b",\"");
            j.extend_from_slice(k.as_bytes());
            j.extend_from_slice(b"\":");
            json::push_string(&mut j, v);
        };
        if let Some(n) = &self.name {
            field("name", n);
        }
        match &self.auth {
            Auth::None => {}
            Auth::UserPass(u, p) => {
                field("user", u);
                field("pass", p);
            }
            Auth::Token(t) => field("auth_token", t),
        }
        j.extend_from_slice(b"}\r\n");
        j
    }

    fn payload_bound(&self) -> usize {
        self.server_max_payload
            .map_or(self.max_payload, |s| s.min(self.max_payload))
    }

    /// The token of a reply subject in our inbox.
    fn inbox_token(&self, subject: &[u8]) -> Option<u64> {
        let inbox = self.inbox.as_deref()?.as_bytes();
        let rest = subject.strip_prefix(inbox)?.strip_prefix(b".")?;
        parse_u64(rest)
    }

    fn err_unit<'a>(&self, text: &'a [u8]) -> Unit<'a> {
        let t = text.strip_prefix(b"'").unwrap_or(text);
        let t = t.strip_suffix(b"'").unwrap_or(t);
        let starts = |p: &[u8]| t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p);
        if self.stage != Stage::Ready {
            let error = if starts(b"Authorization Violation")
                || starts(b"Authentication")
                || starts(b"User Authentication")
            {
                NetError::PermissionDenied
            } else {
                NetError::Refused
            };
            return Unit::Handshake(Handshake::Refused {
                error,
                text: t,
                retry_after: None,
            });
        }
        if starts(b"Permissions Violation") || starts(b"Invalid Subject") {
            return Unit::Notice(t);
        }
        let then = if starts(b"Authorization Violation") || starts(b"User Authentication Revoked") {
            AfterClose::GiveUp(NetError::PermissionDenied)
        } else {
            AfterClose::Reconnect
        };
        Unit::Closing(PeerClose {
            code: 0,
            then,
            text: t,
        })
    }

    /// `MSG subject sid [reply] n` / `HMSG subject sid [reply] hdr total`.
    fn message<'a>(
        &self,
        buf: &'a [u8],
        args: &'a [u8],
        line_len: usize,
        headers: bool,
    ) -> Result<Option<(Unit<'a>, usize)>, FrameError> {
        let (w, count) = words::<5>(args).ok_or(malformed("NATS MSG with too many fields"))?;
        let (subject, sid, reply, hdr, total) = match (headers, count) {
            (false, 3) => (w[0], w[1], &[][..], None, w[2]),
            (false, 4) => (w[0], w[1], w[2], None, w[3]),
            (true, 4) => (w[0], w[1], &[][..], Some(w[2]), w[3]),
            (true, 5) => (w[0], w[1], w[2], Some(w[3]), w[4]),
            _ => return Err(malformed("NATS MSG with a wrong number of fields")),
        };
        let total = usize::try_from(
            parse_u64(total).ok_or(malformed("NATS payload size is not a number"))?,
        )
        .map_err(|_| malformed("NATS payload size overflows"))?;
        let bound = self.payload_bound();
        if total > bound {
            return Err(FrameError::TooLarge {
                size: total,
                max: bound,
            });
        }
        let hdr = match hdr {
            Some(h) => {
                let h = parse_u64(h).ok_or(malformed("NATS header size is not a number"))?;
                let h = usize::try_from(h).map_err(|_| malformed("NATS header size overflows"))?;
                if h > total {
                    return Err(malformed("NATS header size beyond the payload"));
                }
                h
            }
            None => 0,
        };
        let end = line_len + total + 2;
        if buf.len() < end {
            return Ok(None);
        }
        if &buf[end - 2..end] != b"\r\n" {
            return Err(malformed("NATS payload not followed by CR LF"));
        }
        let block = &buf[line_len..line_len + total];
        let (head, body) = block.split_at(hdr);
        if sid == INBOX_SID {
            if let Some(token) = self.inbox_token(subject) {
                // "NATS/1.0 503" and the like: a status the caller sees as a refusal.
                let status = status_code(head);
                let refused = status.is_some_and(|s| s >= 400);
                let unit = Unit::Reply {
                    to: Match::KeyIfAny(token),
                    body,
                    status: if refused {
                        ReplyStatus::Refused
                    } else {
                        ReplyStatus::Done
                    },
                };
                return Ok(Some((unit, end)));
            }
        }
        let sid = parse_u64(sid).ok_or(malformed("NATS sid is not a number"))?;
        let unit = Unit::Message {
            route: Route::Sid(sid),
            body,
            meta: Meta {
                topic: subject,
                reply_to: reply,
                headers: head,
                pattern: &[],
            },
        };
        Ok(Some((unit, end)))
    }
}

impl Protocol for Nats {
    fn open(&mut self, _open: Open) -> Result<bool, FrameError> {
        self.stage = Stage::Info;
        self.server_max_payload = None;
        self.control.clear();
        Ok(true)
    }

    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Unit<'a>, usize)>, FrameError> {
        let window = &buf[..buf.len().min(self.max_control_line + 2)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            if buf.len() > self.max_control_line + 1 {
                return Err(FrameError::TooLarge {
                    size: buf.len(),
                    max: self.max_control_line,
                });
            }
            return Ok(None);
        };
        let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
        let used = nl + 1;
        let (op, args) = split_op(line);
        let mut op_upper = [0u8; 8];
        if op.len() > op_upper.len() {
            return Err(malformed("unknown NATS operation"));
        }
        for (d, s) in op_upper.iter_mut().zip(op) {
            *d = s.to_ascii_uppercase();
        }
        let op = &op_upper[..op.len()];
        if self.stage == Stage::Info && op != b"INFO" && op != b"-ERR" {
            return Err(malformed(
                "the server's first line is not INFO: not a NATS server",
            ));
        }
        let unit = match op {
            b"INFO" => {
                let info = json::Info::parse(args)?;
                self.server_max_payload = info.max_payload;
                if self.stage != Stage::Info {
                    return Ok(Some((Unit::Control, used)));
                }
                let connect = self.connect_line();
                self.control.push(&connect);
                if let Some(inbox) = &self.inbox {
                    let mut sub = b"SUB ".to_vec();
                    sub.extend_from_slice(inbox.as_bytes());
                    sub.extend_from_slice(b".* ");
                    sub.extend_from_slice(INBOX_SID);
                    sub.extend_from_slice(b"\r\n");
                    self.control.push(&sub);
                }
                self.control.push(b"PING\r\n");
                self.stage = Stage::Pong;
                Unit::Handshake(Handshake::Progress)
            }
            b"PING" => {
                self.control.push(b"PONG\r\n");
                Unit::Control
            }
            b"PONG" if self.stage == Stage::Pong => {
                self.stage = Stage::Ready;
                Unit::Handshake(Handshake::Accepted {
                    resumed: false,
                    keepalive: None,
                })
            }
            b"PONG" => Unit::Reply {
                to: Match::Next,
                body: &[],
                status: ReplyStatus::Done,
            },
            b"+OK" => Unit::Control,
            b"-ERR" => self.err_unit(args),
            b"MSG" | b"HMSG" if self.stage == Stage::Ready => {
                return self.message(buf, args, used, op == b"HMSG");
            }
            b"MSG" | b"HMSG" => return Err(malformed("NATS MSG before the handshake completed")),
            _ => return Err(malformed("unknown NATS operation")),
        };
        Ok(Some((unit, used)))
    }

    fn check(&self, msg: &[u8]) -> Result<(), FrameError> {
        let (_, total, _) = parse_pub(msg, self.max_control_line)?;
        let bound = self.payload_bound();
        if total > bound {
            return Err(FrameError::TooLarge {
                size: total,
                max: bound,
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
        let (reply, _, _) = parse_pub(msg, self.max_control_line)?;
        let expect = match self.inbox_token(reply) {
            Some(token) => Expect::Key(token),
            None => Expect::Barrier,
        };
        out.extend_from_slice(msg);
        Ok(expect)
    }

    fn encode_ping(&mut self, _token: u64, out: &mut Vec<u8>) -> Option<Expect> {
        out.extend_from_slice(b"PING\r\n");
        Some(Expect::Next)
    }

    fn control_pending(&self) -> usize {
        self.control.len()
    }

    fn write_control(&mut self, out: &mut Vec<u8>) {
        self.control.drain_into(out);
    }

    fn check_subscription(&self, spec: &[u8]) -> Result<(), FrameError> {
        let mut parts = spec.split(|&b| b == b' ');
        let subject = parts.next().unwrap_or(&[]);
        let queue = parts.next();
        if !valid_subject(subject, true)
            || parts.next().is_some()
            || queue.is_some_and(|q| q.is_empty() || !valid_subject(q, false))
        {
            return Err(malformed(
                "not a NATS subscription (use nats::subscription)",
            ));
        }
        if self
            .inbox
            .as_deref()
            .is_some_and(|i| subject.starts_with(i.as_bytes()))
        {
            return Err(malformed(
                "the session's inbox is reserved for its requests",
            ));
        }
        Ok(())
    }

    fn encode_subscribe(
        &mut self,
        spec: &[u8],
        id: SubId,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        out.extend_from_slice(b"SUB ");
        out.extend_from_slice(spec);
        out.push(b' ');
        push_decimal(out, id.get());
        out.extend_from_slice(b"\r\n");
        Ok(Expect::Barrier)
    }

    fn encode_unsubscribe(
        &mut self,
        _spec: &[u8],
        id: SubId,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        out.extend_from_slice(b"UNSUB ");
        push_decimal(out, id.get());
        out.extend_from_slice(b"\r\n");
        Ok(Expect::Barrier)
    }

    fn route_matches(&self, route: &Route<'_>, id: SubId, _spec: &[u8]) -> bool {
        *route == Route::Sid(id.get())
    }

    fn max_frame(&self) -> usize {
        self.max_payload
            .saturating_add(self.max_control_line)
            .saturating_add(2)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_control_line < 64 {
            return Err(ConfigError::Protocol("NATS control lines under 64 bytes"));
        }
        if let Some(i) = &self.inbox {
            if !valid_subject(i.as_bytes(), false) {
                return Err(ConfigError::Protocol("the NATS inbox is not a subject"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
