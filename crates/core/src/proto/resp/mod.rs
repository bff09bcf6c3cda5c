//! RESP2 and RESP3: the protocol of Redis (and Valkey, KeyDB, Dragonfly).
//!
//! A unit is one whole RESP value, however many lines it spans: a value `+PONG` inside a bulk
//! string, CR LF inside data, a 100,000-element array are data, found by the grammar.
//!
//! Attribution:
//! - replies come back in request order ([`crate::proto::Match::Next`]); our heartbeat is a
//!   `PING` among them, so the reply at its position is its answer and a user's own `PING`
//!   gets its own `PONG`;
//! - RESP3 pushes (`>`) are out of band: `message`, `pmessage` and `smessage` go to their
//!   subscription, other pushes (client-side caching invalidations) to the inbound stream;
//!   never a reply;
//! - in RESP2 a subscribed connection sends `message` arrays; while subscriptions are active
//!   such arrays are messages, as the pub/sub protocol defines (prefer RESP3 with
//!   [`Resp::resp3`]: its pushes are typed);
//! - `subscribe`-style confirmations answer their request in order: the protocol counts its
//!   own in-order requests and replies, so it knows which reply answers a `SUBSCRIBE` by its
//!   position, never by what the reply looks like (an `LRANGE` result `["subscribe", "ch",
//!   1]` is data). A confirmation push at no request's position (a shard channel moved) is
//!   protocol chatter.
//!
//! Every connection runs the setup first ([`Resp::with_auth`], [`Resp::resp3`],
//! [`Resp::with_database`], [`Resp::with_client_name`], [`Resp::with_setup`]), each reply
//! checked: a refused password (`WRONGPASS`, `NOPERM`, `NOAUTH`) stops retrying, a busy
//! server (`LOADING`, max clients) is retried.
//!
//! Messages are commands: [`cmd`] encodes one. A message must be exactly one command, and not
//! one that changes how replies are framed (`SUBSCRIBE` and friends: use
//! [`crate::Session::subscribe`] with [`channel`], [`pattern`] or [`shard_channel`];
//! `MONITOR`, `RESET`, `HELLO`, `CLIENT REPLY`).

use alloc::vec::Vec;
use core::fmt;

use crate::error::{ConfigError, FrameError, NetError};
use crate::proto::{
    ControlBuf, Expect, Handshake, Match, Meta, Open, Protocol, ReplyStatus, Route, Sending, Unit,
};
use crate::subscription::SubId;

mod command;
mod scan;
mod value;

pub use command::{cmd, split_args};
pub use scan::Limits;
pub use value::Value;

use scan::{line_end, parse_i64, Scanner};

/// [`Route::Name`] kind of a channel (`SUBSCRIBE`).
pub const CHANNEL: u8 = 0;
/// [`Route::Name`] kind of a pattern (`PSUBSCRIBE`).
pub const PATTERN: u8 = 1;
/// [`Route::Name`] kind of a shard channel (`SSUBSCRIBE`).
pub const SHARD: u8 = 2;

/// The subscription spec of a channel, for [`crate::Session::subscribe`].
pub fn channel(name: impl AsRef<[u8]>) -> Vec<u8> {
    spec(CHANNEL, name.as_ref())
}

/// The subscription spec of a pattern.
pub fn pattern(glob: impl AsRef<[u8]>) -> Vec<u8> {
    spec(PATTERN, glob.as_ref())
}

/// The subscription spec of a shard channel (Redis 7 `SSUBSCRIBE`).
pub fn shard_channel(name: impl AsRef<[u8]>) -> Vec<u8> {
    spec(SHARD, name.as_ref())
}

fn spec(kind: u8, name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + 1);
    v.push(kind);
    v.extend_from_slice(name);
    v
}

/// The protocol version spoken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// RESP2 (every Redis).
    Resp2,
    /// RESP3, negotiated with `HELLO 3` (Redis 6+).
    Resp3,
}

/// A setup command and whether it carries a secret (then never shown).
#[derive(Clone, PartialEq, Eq)]
struct Setup {
    command: Vec<u8>,
    secret: bool,
}

/// The RESP protocol (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct Resp {
    version: Version,
    auth: Option<(Option<Vec<u8>>, Vec<u8>)>,
    database: Option<u32>,
    client_name: Option<Vec<u8>>,
    setup: Vec<Setup>,
    limits: Limits,
    // Per connection:
    scanner: Scanner,
    /// Setup replies still to read.
    setup_left: usize,
    /// Active subscriptions as the server counts them (RESP2's subscribed mode).
    subscribed: u64,
    /// In-order requests written on this connection, and in-order replies read.
    sent: u64,
    answered: u64,
    /// Positions (in `sent` order) of the subscription requests not yet answered.
    sub_ops: alloc::collections::VecDeque<u64>,
    control: ControlBuf,
}

impl fmt::Debug for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password, never a secret setup command.
        f.debug_struct("Resp")
            .field("version", &self.version)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("setup_commands", &self.setup.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for Resp {
    fn default() -> Self {
        Resp::new()
    }
}

impl Resp {
    /// Writes the (un)subscription request for `spec` with the verb for its kind (channel,
    /// pattern, shard channel), and notes its position: its confirmation comes in order.
    fn sub_op(&mut self, spec: &[u8], verbs: [&'static [u8]; 3], out: &mut Vec<u8>) -> Expect {
        let verb = match spec[0] {
            CHANNEL => verbs[0],
            PATTERN => verbs[1],
            _ => verbs[2],
        };
        command::cmd_into(out, &[verb, &spec[1..]]);
        self.sub_ops.push_back(self.sent);
        self.sent += 1;
        Expect::Next
    }
    /// RESP2, no setup, default limits.
    pub fn new() -> Self {
        Resp {
            version: Version::Resp2,
            auth: None,
            database: None,
            client_name: None,
            setup: Vec::new(),
            limits: Limits::default(),
            scanner: Scanner::default(),
            setup_left: 0,
            subscribed: 0,
            sent: 0,
            answered: 0,
            sub_ops: alloc::collections::VecDeque::new(),
            control: ControlBuf::default(),
        }
    }

    /// RESP3: `HELLO 3` opens every connection (with the credentials, if any).
    pub fn resp3(mut self) -> Self {
        self.version = Version::Resp3;
        self
    }

    /// Authenticates every connection: `AUTH [user] password` (or inside `HELLO 3`). The
    /// password never appears in `Debug`, events, logs or traces.
    pub fn with_auth(mut self, user: Option<&[u8]>, password: &[u8]) -> Self {
        self.auth = Some((user.map(<[u8]>::to_vec), password.to_vec()));
        self
    }

    /// `SELECT n` on every connection.
    pub fn with_database(mut self, n: u32) -> Self {
        self.database = Some(n);
        self
    }

    /// `CLIENT SETNAME name` on every connection.
    pub fn with_client_name(mut self, name: &[u8]) -> Self {
        self.client_name = Some(name.to_vec());
        self
    }

    /// Another setup command (see [`cmd`]) on every connection, after the built-in ones, its
    /// reply checked like theirs. `secret`: it carries a credential and is never shown.
    pub fn with_setup(mut self, command: Vec<u8>, secret: bool) -> Self {
        self.setup.push(Setup { command, secret });
        self
    }

    /// Sets the bounds of one reply.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The version spoken.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether connections authenticate, and with a user name (never the password).
    pub fn auth(&self) -> Option<Option<&[u8]>> {
        self.auth.as_ref().map(|(u, _)| u.as_deref())
    }

    /// The database selected on every connection, if any.
    pub fn database(&self) -> Option<u32> {
        self.database
    }

    /// The client name set on every connection, if any.
    pub fn client_name(&self) -> Option<&[u8]> {
        self.client_name.as_deref()
    }

    /// The extra setup commands ([`Resp::with_setup`]), in order: `None` for a secret one.
    pub fn setup(&self) -> impl Iterator<Item = Option<&[u8]>> + '_ {
        self.setup
            .iter()
            .map(|s| (!s.secret).then_some(&s.command[..]))
    }

    /// The bounds of one reply.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The setup commands of every connection, in order.
    fn setup_commands(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let user = |u: &Option<Vec<u8>>| u.clone().unwrap_or_else(|| b"default".to_vec());
        match (self.version, &self.auth) {
            (Version::Resp3, Some((u, p))) => {
                out.push(cmd([&b"HELLO"[..], b"3", b"AUTH", &user(u), p]));
            }
            (Version::Resp3, None) => out.push(cmd(["HELLO", "3"])),
            (Version::Resp2, Some((Some(u), p))) => out.push(cmd([&b"AUTH"[..], u, p])),
            (Version::Resp2, Some((None, p))) => out.push(cmd([&b"AUTH"[..], p])),
            (Version::Resp2, None) => {}
        }
        if let Some(db) = self.database {
            let mut n = Vec::new();
            crate::proto::push_decimal(&mut n, u64::from(db));
            out.push(cmd([&b"SELECT"[..], &n]));
        }
        if let Some(name) = &self.client_name {
            out.push(cmd([&b"CLIENT"[..], b"SETNAME", name]));
        }
        out.extend(self.setup.iter().map(|s| s.command.clone()));
        out
    }

    /// The reply to a setup command refused the connection: how to retry.
    fn classify_refusal(text: &[u8]) -> NetError {
        let starts = |p: &[u8]| text.len() >= p.len() && text[..p.len()].eq_ignore_ascii_case(p);
        if starts(b"WRONGPASS")
            || starts(b"NOPERM")
            || starts(b"NOAUTH")
            || starts(b"ERR invalid password")
            || starts(b"ERR AUTH")
            || starts(b"ERR Client sent AUTH")
        {
            NetError::PermissionDenied
        } else if starts(b"NOPROTO") || starts(b"ERR unknown command") {
            NetError::Unsupported
        } else {
            // LOADING, MASTERDOWN, BUSY, max clients: another attempt may succeed.
            NetError::Refused
        }
    }

    fn decode_unit<'a>(&mut self, u: &'a [u8]) -> Result<Unit<'a>, FrameError> {
        let (kind, body_at) = top_kind(u)?;
        let error = matches!(kind, b'-' | b'!');
        if self.setup_left > 0 {
            if kind == b'>' {
                return Ok(Unit::Control);
            }
            if error {
                let text = error_text(u, body_at)?;
                return Ok(Unit::Handshake(Handshake::Refused {
                    error: Self::classify_refusal(text),
                    text,
                    retry_after: None,
                }));
            }
            self.setup_left -= 1;
            return Ok(Unit::Handshake(if self.setup_left == 0 {
                Handshake::Accepted {
                    resumed: false,
                    keepalive: None,
                }
            } else {
                Handshake::Progress
            }));
        }
        let subscribed_resp2 = self.version == Version::Resp2 && self.subscribed > 0;
        if kind == b'>' || (kind == b'*' && subscribed_resp2) {
            let items = pubsub_items(u, body_at)?;
            if let Some(message) = pubsub_message(&items, u) {
                return Ok(message);
            }
            if kind == b'>' {
                if self.sub_ops.front() == Some(&self.answered) && confirmation(&items) {
                    return Ok(self.in_order(u, false, Some(&items)));
                }
                // Not at a request's position: the peer's own news (an invalidation, a shard
                // channel that moved) for the inbound stream, never a reply.
                return Ok(Unit::Message {
                    route: Route::None,
                    body: u,
                    meta: Meta::default(),
                });
            }
        }
        let items = if self.sub_ops.front() == Some(&self.answered) && kind == b'*' {
            Some(pubsub_items(u, body_at)?)
        } else {
            None
        };
        Ok(self.in_order(u, error, items.as_deref()))
    }

    /// The next in-order reply: if it answers a subscription request, a confirmation updates
    /// the subscription count.
    fn in_order<'a>(&mut self, u: &'a [u8], error: bool, items: Option<&[Value<'_>]>) -> Unit<'a> {
        if self.sub_ops.front() == Some(&self.answered) {
            self.sub_ops.pop_front();
            if let Some(Value::Integer(n)) =
                items.filter(|i| confirmation(i)).and_then(|i| i.get(2))
            {
                self.subscribed = u64::try_from(*n).unwrap_or(0);
            }
        }
        self.answered += 1;
        Unit::Reply {
            to: Match::Next,
            body: u,
            status: if error {
                ReplyStatus::Refused
            } else {
                ReplyStatus::Done
            },
        }
    }
}

/// The elements of a top-level aggregate.
fn pubsub_items(u: &[u8], at: usize) -> Result<Vec<Value<'_>>, FrameError> {
    let (v, _) = Value::parse(&u[at..])?;
    Ok(match v {
        Value::Push(items) | Value::Array(items) => items,
        _ => Vec::new(),
    })
}

/// Whether the elements are a `subscribe`-style confirmation: kind, name, count.
fn confirmation(items: &[Value<'_>]) -> bool {
    let kind = items.first().and_then(Value::as_bytes);
    items.len() == 3
        && matches!(items[2], Value::Integer(_))
        && matches!(
            kind,
            Some(
                b"subscribe"
                    | b"psubscribe"
                    | b"ssubscribe"
                    | b"unsubscribe"
                    | b"punsubscribe"
                    | b"sunsubscribe"
            )
        )
}

/// A pub/sub message (`message`, `pmessage`, `smessage`) for its subscription.
fn pubsub_message<'a>(items: &[Value<'a>], _u: &'a [u8]) -> Option<Unit<'a>> {
    let text = |i: usize| items.get(i).and_then(Value::as_bytes);
    let (kind, name, topic, pattern, body) = match (text(0)?, items.len()) {
        (b"message", 3) => (CHANNEL, text(1)?, text(1)?, &[][..], text(2)?),
        (b"smessage", 3) => (SHARD, text(1)?, text(1)?, &[][..], text(2)?),
        (b"pmessage", 4) => (PATTERN, text(1)?, text(2)?, text(1)?, text(3)?),
        _ => return None,
    };
    Some(Unit::Message {
        route: Route::Name { kind, name },
        body,
        meta: Meta {
            topic,
            pattern,
            ..Meta::default()
        },
    })
}

/// The type byte of the value (past any attribute) and where that value starts.
fn top_kind(u: &[u8]) -> Result<(u8, usize), FrameError> {
    if u.first() != Some(&b'|') {
        return Ok((u[0], 0));
    }
    let cr = line_end(u, 1)?.ok_or(FrameError::Malformed {
        reason: "RESP attribute cut short",
    })?;
    let pairs = parse_i64(&u[1..cr]).and_then(|n| usize::try_from(n).ok());
    let mut pos = cr + 2;
    for _ in 0..pairs.unwrap_or(0).saturating_mul(2) {
        let (_, used) = Value::parse(&u[pos..])?;
        pos += used;
    }
    match u.get(pos) {
        Some(&kind) => Ok((kind, pos)),
        None => Err(FrameError::Malformed {
            reason: "RESP attribute without its value",
        }),
    }
}

/// The text of an error value starting at `at`.
fn error_text(u: &[u8], at: usize) -> Result<&[u8], FrameError> {
    let (v, _) = Value::parse(&u[at..])?;
    Ok(match v {
        Value::Error(t) => t,
        _ => &u[at..],
    })
}

/// Commands that change how replies are framed or counted: refused as messages.
const FRAMING_COMMANDS: [&[u8]; 10] = [
    b"SUBSCRIBE",
    b"PSUBSCRIBE",
    b"SSUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PUNSUBSCRIBE",
    b"SUNSUBSCRIBE",
    b"MONITOR",
    b"RESET",
    b"HELLO",
    b"SYNC",
];

impl Protocol for Resp {
    fn open(&mut self, _open: Open) -> Result<bool, FrameError> {
        self.scanner.reset();
        self.subscribed = 0;
        self.sent = 0;
        self.answered = 0;
        self.sub_ops.clear();
        self.control.clear();
        let setup = self.setup_commands();
        self.setup_left = setup.len();
        for c in &setup {
            self.control.push(c);
        }
        Ok(self.setup_left > 0)
    }

    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Unit<'a>, usize)>, FrameError> {
        let Some(len) = self
            .scanner
            .scan(buf, &self.limits, self.version == Version::Resp3)?
        else {
            return Ok(None);
        };
        let unit = self.decode_unit(&buf[..len])?;
        Ok(Some((unit, len)))
    }

    fn check(&self, msg: &[u8]) -> Result<(), FrameError> {
        check_command(msg)
    }

    fn encode(
        &mut self,
        msg: &[u8],
        _send: Sending,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        out.extend_from_slice(msg);
        self.sent += 1;
        Ok(Expect::Next)
    }

    fn encode_ping(&mut self, _token: u64, out: &mut Vec<u8>) -> Option<Expect> {
        out.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        self.sent += 1;
        Some(Expect::Next)
    }

    fn control_pending(&self) -> usize {
        self.control.len()
    }

    fn write_control(&mut self, out: &mut Vec<u8>) {
        self.control.drain_into(out);
    }

    fn check_subscription(&self, spec: &[u8]) -> Result<(), FrameError> {
        match spec.split_first() {
            Some((&k, name)) if k <= SHARD && !name.is_empty() => Ok(()),
            _ => Err(FrameError::Malformed {
                reason: "not a RESP subscription (use resp::channel, pattern or shard_channel)",
            }),
        }
    }

    fn encode_subscribe(
        &mut self,
        spec: &[u8],
        _id: SubId,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        Ok(self.sub_op(spec, [b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"], out))
    }

    fn encode_unsubscribe(
        &mut self,
        spec: &[u8],
        _id: SubId,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        Ok(self.sub_op(
            spec,
            [b"UNSUBSCRIBE", b"PUNSUBSCRIBE", b"SUNSUBSCRIBE"],
            out,
        ))
    }

    fn route_matches(&self, route: &Route<'_>, _id: SubId, spec: &[u8]) -> bool {
        match route {
            Route::Name { kind, name } => spec.first() == Some(kind) && &spec[1..] == *name,
            _ => false,
        }
    }

    fn max_frame(&self) -> usize {
        self.limits.max_frame
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.limits.max_frame < 16 || self.limits.max_depth == 0 || self.limits.max_elements == 0
        {
            return Err(ConfigError::Protocol("RESP limits too small"));
        }
        for s in &self.setup {
            if check_command(&s.command).is_err() {
                return Err(ConfigError::Protocol(
                    "a RESP setup command is not one command (use resp::cmd)",
                ));
            }
        }
        Ok(())
    }
}

/// Checks that `msg` is exactly one command: a RESP array of bulk strings, whose name does not
/// change the reply framing.
pub fn check_command(msg: &[u8]) -> Result<(), FrameError> {
    let bad = |reason| Err(FrameError::Malformed { reason });
    if msg.first() != Some(&b'*') {
        return bad("a RESP command is an array of bulk strings (use resp::cmd)");
    }
    let (v, used) = Value::parse(msg)?;
    if used != msg.len() {
        return bad("one message must hold exactly one RESP command");
    }
    let Value::Array(args) = v else {
        return bad("a RESP command is an array of bulk strings (use resp::cmd)");
    };
    if args.is_empty() || !args.iter().all(|a| matches!(a, Value::Bulk(_))) {
        return bad("a RESP command is a non-empty array of bulk strings (use resp::cmd)");
    }
    let name = args[0].as_bytes().unwrap_or(&[]);
    if FRAMING_COMMANDS
        .iter()
        .any(|c| c.eq_ignore_ascii_case(name))
    {
        return bad("this command changes the reply framing: use subscribe() for pub/sub");
    }
    if name.eq_ignore_ascii_case(b"CLIENT")
        && args
            .get(1)
            .and_then(Value::as_bytes)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"REPLY"))
    {
        return bad("CLIENT REPLY breaks the one-reply-per-command attribution");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
