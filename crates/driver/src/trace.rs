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

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn dur(n: u64) -> Duration {
    Duration::from_nanos(n)
}

/// Bytes as lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("{:?} is not a hex digit", c as char)),
    };
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return Err("hex of odd length".into());
    }
    b.chunks_exact(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum JitterRec {
    None,
    Full,
    Equal,
    Decorrelated,
    Proportional(f64),
    Unknown,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct HeartbeatRec {
    interval_ns: u64,
    timeout_ns: u64,
    adaptive_floor_ns: Option<u64>,
}

/// Every field of [`Config`], as plain data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ConfigRec {
    backoff_initial_ns: u64,
    backoff_multiplier: f64,
    backoff_cap_ns: u64,
    backoff_jitter: JitterRec,
    give_up_max_failures: Option<u32>,
    give_up_max_elapsed_ns: Option<u64>,
    give_up_either: bool,
    stable_after_ns: u64,
    connect_timeout_ns: u64,
    heartbeat: Option<HeartbeatRec>,
    read_idle_timeout_ns: Option<u64>,
    write_timeout_ns: Option<u64>,
    close_timeout_ns: u64,
    queue_max_messages: usize,
    queue_max_bytes: usize,
    queue_max_message: usize,
    queue_evict_oldest: bool,
    inbound_max_messages: usize,
    inbound_max_bytes: usize,
    request_timeout_ns: Option<u64>,
    max_replays: u8,
    batch_bytes: usize,
    batch_messages: usize,
    seed: u64,
}

impl From<&Config> for ConfigRec {
    fn from(c: &Config) -> Self {
        ConfigRec {
            backoff_initial_ns: ns(c.backoff.initial),
            backoff_multiplier: c.backoff.multiplier,
            backoff_cap_ns: ns(c.backoff.cap),
            backoff_jitter: match c.backoff.jitter {
                Jitter::None => JitterRec::None,
                Jitter::Full => JitterRec::Full,
                Jitter::Equal => JitterRec::Equal,
                Jitter::Decorrelated => JitterRec::Decorrelated,
                Jitter::Proportional(f) => JitterRec::Proportional(f),
                _ => JitterRec::Unknown,
            },
            give_up_max_failures: c.give_up.max_failures,
            give_up_max_elapsed_ns: c.give_up.max_elapsed.map(ns),
            give_up_either: c.give_up.when == GiveUpWhen::Either,
            stable_after_ns: ns(c.stable_after),
            connect_timeout_ns: ns(c.connect_timeout),
            heartbeat: c.heartbeat.map(|h| HeartbeatRec {
                interval_ns: ns(h.interval),
                timeout_ns: ns(h.timeout),
                adaptive_floor_ns: h.adaptive_floor.map(ns),
            }),
            read_idle_timeout_ns: c.read_idle_timeout.map(ns),
            write_timeout_ns: c.write_timeout.map(ns),
            close_timeout_ns: ns(c.close_timeout),
            queue_max_messages: c.queue.max_messages,
            queue_max_bytes: c.queue.max_bytes,
            queue_max_message: c.queue.max_message,
            queue_evict_oldest: c.queue.overflow == Overflow::EvictOldest,
            inbound_max_messages: c.inbound.max_messages,
            inbound_max_bytes: c.inbound.max_bytes,
            request_timeout_ns: c.request_timeout.map(ns),
            max_replays: c.max_replays,
            batch_bytes: c.batch_bytes,
            batch_messages: c.batch_messages,
            seed: c.seed,
        }
    }
}

impl ConfigRec {
    fn to_config(&self) -> Result<Config, String> {
        let jitter = match self.backoff_jitter {
            JitterRec::None => Jitter::None,
            JitterRec::Full => Jitter::Full,
            JitterRec::Equal => Jitter::Equal,
            JitterRec::Decorrelated => Jitter::Decorrelated,
            JitterRec::Proportional(f) => Jitter::Proportional(f),
            JitterRec::Unknown => return Err("the recorded jitter kind is unknown".into()),
        };
        let mut c = Config::default();
        c.backoff = Backoff::new()
            .with_initial(dur(self.backoff_initial_ns))
            .with_multiplier(self.backoff_multiplier)
            .with_cap(dur(self.backoff_cap_ns))
            .with_jitter(jitter);
        c.give_up = GiveUp {
            max_failures: self.give_up_max_failures,
            max_elapsed: self.give_up_max_elapsed_ns.map(dur),
            when: if self.give_up_either {
                GiveUpWhen::Either
            } else {
                GiveUpWhen::Both
            },
        };
        c.stable_after = dur(self.stable_after_ns);
        c.connect_timeout = dur(self.connect_timeout_ns);
        c.heartbeat = self.heartbeat.as_ref().map(|h| Heartbeat {
            interval: dur(h.interval_ns),
            timeout: dur(h.timeout_ns),
            adaptive_floor: h.adaptive_floor_ns.map(dur),
        });
        c.read_idle_timeout = self.read_idle_timeout_ns.map(dur);
        c.write_timeout = self.write_timeout_ns.map(dur);
        c.close_timeout = dur(self.close_timeout_ns);
        c.queue = QueueLimits {
            max_messages: self.queue_max_messages,
            max_bytes: self.queue_max_bytes,
            max_message: self.queue_max_message,
            overflow: if self.queue_evict_oldest {
                Overflow::EvictOldest
            } else {
                Overflow::Reject
            },
        };
        c.inbound = InboundLimits {
            max_messages: self.inbound_max_messages,
            max_bytes: self.inbound_max_bytes,
        };
        c.request_timeout = self.request_timeout_ns.map(dur);
        c.max_replays = self.max_replays;
        c.batch_bytes = self.batch_bytes;
        c.batch_messages = self.batch_messages;
        c.seed = self.seed;
        Ok(c)
    }
}

/// What stands in for a credential in a replay.
const PLACEHOLDER: &str = "redacted-by-trace";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "p", rename_all = "snake_case")]
enum ProtoRec {
    Line {
        ping: Option<String>,
        pong: Option<String>,
        peer_ping: Option<String>,
        pong_reply: String,
        /// Only the length: a greeting may carry a password.
        greeting_len: Option<usize>,
        greeting_replies: usize,
        handshake_errors: Vec<(String, String)>,
        max_line: usize,
        acks_in_order: bool,
    },
    Length {
        max_payload: usize,
        acks_in_order: bool,
    },
    /// Unframed bytes ([`RawCodec`]).
    Raw { max: usize },
    Resp {
        resp3: bool,
        /// `none`, `password` or `user_password`; never the password (nor the user).
        auth: String,
        database: Option<u32>,
        client_name: Option<String>,
        /// Extra setup commands; `null` for a secret one.
        setup: Vec<Option<String>>,
        max_frame: usize,
        max_depth: usize,
        max_elements: u64,
    },
    Nats {
        /// `none`, `user_password` or `token`; never the credentials.
        auth: String,
        name: Option<String>,
        echo: bool,
        inbox: Option<String>,
        max_control_line: usize,
        max_payload: usize,
    },
}

/// A protocol as a trace records it: which built-in protocol, and its settings without
/// credentials. Made by [`Recordable::recorded`].
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedProtocol(ProtoRec);

impl fmt::Display for RecordedProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let acks = |a: bool| if a { "replies ack" } else { "no acks" };
        match &self.0 {
            ProtoRec::Line {
                acks_in_order,
                max_line,
                ..
            } => write!(
                f,
                "line codec (lines up to {max_line} B, {})",
                acks(*acks_in_order)
            ),
            ProtoRec::Length {
                max_payload,
                acks_in_order,
            } => write!(
                f,
                "length codec (payloads up to {max_payload} B, {})",
                acks(*acks_in_order)
            ),
            ProtoRec::Raw { max } => write!(f, "raw bytes (chunks up to {max} B)"),
            ProtoRec::Resp {
                resp3,
                auth,
                database,
                ..
            } => {
                write!(f, "RESP{}", if *resp3 { 3 } else { 2 })?;
                if auth != "none" {
                    write!(f, ", auth ({auth}, not recorded)")?;
                }
                if let Some(db) = database {
                    write!(f, ", database {db}")?;
                }
                Ok(())
            }
            ProtoRec::Nats { auth, inbox, .. } => {
                write!(f, "NATS")?;
                if auth != "none" {
                    write!(f, ", auth ({auth}, not recorded)")?;
                }
                if let Some(i) = inbox {
                    write!(f, ", inbox {i}")?;
                }
                Ok(())
            }
        }
    }
}

/// A protocol a trace can record and replay: the built-in ones ([`Resp`], [`Nats`],
/// `Framed<LineCodec>`, `Framed<LengthCodec>`, `Framed<RawCodec>`).
pub trait Recordable: Protocol + Sized + 'static {
    /// The protocol's kind and settings, without credentials.
    fn recorded(&self) -> RecordedProtocol;
}

fn opt_hex(v: &Option<Vec<u8>>) -> Option<String> {
    v.as_deref().map(hex)
}

impl Recordable for Framed<LineCodec> {
    fn recorded(&self) -> RecordedProtocol {
        let c = self.codec();
        RecordedProtocol(ProtoRec::Line {
            ping: opt_hex(&c.ping),
            pong: opt_hex(&c.pong),
            peer_ping: opt_hex(&c.peer_ping),
            pong_reply: hex(&c.pong_reply),
            greeting_len: c.greeting.as_ref().map(Vec::len),
            greeting_replies: c.greeting_replies,
            handshake_errors: c
                .handshake_errors
                .iter()
                .map(|(p, e)| (hex(p), net_name(*e)))
                .collect(),
            max_line: c.max_line,
            acks_in_order: self.acks() == AckMode::InOrder,
        })
    }
}

impl Recordable for Framed<LengthCodec> {
    fn recorded(&self) -> RecordedProtocol {
        RecordedProtocol(ProtoRec::Length {
            max_payload: self.codec().max_payload,
            acks_in_order: self.acks() == AckMode::InOrder,
        })
    }
}

impl Recordable for Framed<RawCodec> {
    fn recorded(&self) -> RecordedProtocol {
        RecordedProtocol(ProtoRec::Raw {
            max: self.codec().max,
        })
    }
}

impl Recordable for Resp {
    fn recorded(&self) -> RecordedProtocol {
        let limits = self.limits();
        RecordedProtocol(ProtoRec::Resp {
            resp3: self.version() == resp::Version::Resp3,
            auth: match self.auth() {
                None => "none",
                Some(None) => "password",
                Some(Some(_)) => "user_password",
            }
            .into(),
            database: self.database(),
            client_name: self.client_name().map(hex),
            setup: self.setup().map(|c| c.map(hex)).collect(),
            max_frame: limits.max_frame,
            max_depth: limits.max_depth,
            max_elements: limits.max_elements,
        })
    }
}

impl Recordable for Nats {
    fn recorded(&self) -> RecordedProtocol {
        RecordedProtocol(ProtoRec::Nats {
            auth: match self.auth_kind() {
                None => "none",
                Some(true) => "user_password",
                Some(false) => "token",
            }
            .into(),
            name: self.name().map(str::to_owned),
            echo: self.echo(),
            inbox: self.inbox().map(str::to_owned),
            max_control_line: self.max_control_line(),
            max_payload: self.max_payload(),
        })
    }
}

fn acks(in_order: bool) -> AckMode {
    if in_order {
        AckMode::InOrder
    } else {
        AckMode::None
    }
}

fn opt_unhex(v: &Option<String>) -> Result<Option<Vec<u8>>, String> {
    v.as_deref().map(unhex).transpose()
}

impl ProtoRec {
    fn line(&self) -> Result<Framed<LineCodec>, String> {
        let ProtoRec::Line {
            ping,
            pong,
            peer_ping,
            pong_reply,
            greeting_len,
            greeting_replies,
            handshake_errors,
            max_line,
            acks_in_order,
        } = self
        else {
            return Err("not a line protocol".into());
        };
        if greeting_len.is_some_and(|n| n > MAX_LINE) {
            return Err("the recorded greeting is longer than a trace line".into());
        }
        let mut c = LineCodec::plain().with_max_line(*max_line);
        c.ping = opt_unhex(ping)?;
        c.pong = opt_unhex(pong)?;
        c.peer_ping = opt_unhex(peer_ping)?;
        c.pong_reply = unhex(pong_reply)?;
        // The greeting is written, never read: any bytes of its length will do.
        c.greeting = greeting_len.map(|n| vec![b'*'; n]);
        c.greeting_replies = *greeting_replies;
        c.handshake_errors = handshake_errors
            .iter()
            .map(|(p, e)| Ok((unhex(p)?, parse_net(e)?)))
            .collect::<Result<_, String>>()?;
        Ok(Framed::new(c).with_acks(acks(*acks_in_order)))
    }

    fn resp(&self) -> Result<Resp, String> {
        let ProtoRec::Resp {
            resp3,
            auth,
            database,
            client_name,
            setup,
            max_frame,
            max_depth,
            max_elements,
        } = self
        else {
            return Err("not RESP".into());
        };
        let mut p = Resp::new();
        if *resp3 {
            p = p.resp3();
        }
        p = match auth.as_str() {
            "none" => p,
            "password" => p.with_auth(None, PLACEHOLDER.as_bytes()),
            "user_password" => p.with_auth(Some(b"user"), PLACEHOLDER.as_bytes()),
            other => return Err(format!("unknown RESP auth kind {other:?}")),
        };
        if let Some(db) = database {
            p = p.with_database(*db);
        }
        if let Some(name) = client_name {
            p = p.with_client_name(&unhex(name)?);
        }
        for s in setup {
            p = match s {
                Some(c) => p.with_setup(unhex(c)?, false),
                None => p.with_setup(resp::cmd(["ECHO", PLACEHOLDER]), true),
            };
        }
        Ok(p.with_limits(resp::Limits {
            max_frame: *max_frame,
            max_depth: *max_depth,
            max_elements: *max_elements,
        }))
    }

    fn nats(&self) -> Result<Nats, String> {
        let ProtoRec::Nats {
            auth,
            name,
            echo,
            inbox,
            max_control_line,
            max_payload,
        } = self
        else {
            return Err("not NATS".into());
        };
        let mut p = match auth.as_str() {
            "none" => Nats::new(),
            "user_password" => Nats::new().with_user_password("user", PLACEHOLDER),
            "token" => Nats::new().with_token(PLACEHOLDER),
            other => return Err(format!("unknown NATS auth kind {other:?}")),
        };
        if let Some(n) = name {
            p = p.with_name(n);
        }
        if let Some(i) = inbox {
            p = p.with_inbox(i);
        }
        Ok(p.with_echo(*echo)
            .with_max_control_line(*max_control_line)
            .with_max_payload(*max_payload))
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
enum AddrRec {
    Ip(SocketAddr),
    Local(u32),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "e", rename_all = "snake_case")]
enum InputRec {
    Resolved { epoch: u64, addrs: Vec<AddrRec> },
    ResolveFailed { epoch: u64, error: String },
    DialOk { epoch: u64 },
    DialFailed { epoch: u64, error: String },
    Written { epoch: u64 },
    Eof { epoch: u64 },
    IoError { epoch: u64, error: String },
    Closed { epoch: u64 },
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum DeliveryRec {
    AtMostOnce,
    Idempotent,
}

impl From<Delivery> for DeliveryRec {
    fn from(d: Delivery) -> Self {
        match d {
            Delivery::Idempotent => DeliveryRec::Idempotent,
            _ => DeliveryRec::AtMostOnce,
        }
    }
}

impl From<DeliveryRec> for Delivery {
    fn from(d: DeliveryRec) -> Self {
        match d {
            DeliveryRec::AtMostOnce => Delivery::AtMostOnce,
            DeliveryRec::Idempotent => Delivery::Idempotent,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum CloseRec {
    Immediate,
    Graceful { graceful_ns: u64 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "k", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Start {
        version: u32,
        config: Box<ConfigRec>,
        protocol: ProtoRec,
    },
    Poll {
        t: u64,
        a: String,
    },
    Input {
        t: u64,
        input: InputRec,
    },
    Read {
        t: u64,
        epoch: u64,
        kept: usize,
        data: String,
        used: usize,
        units: usize,
    },
    Transmit,
    Enqueue {
        t: u64,
        data: String,
        delivery: DeliveryRec,
    },
    Batch {
        t: u64,
        msgs: Vec<String>,
        delivery: DeliveryRec,
    },
    Subscribe {
        t: u64,
        spec: String,
    },
    Unsubscribe {
        t: u64,
        id: u64,
    },
    Taken {
        t: u64,
        messages: usize,
        bytes: usize,
    },
    Close {
        t: u64,
        mode: CloseRec,
    },
    Reconnect {
        t: u64,
    },
    Truncated {
        reason: String,
    },
}

/// The kinds a line may have, for telling an unknown kind from a malformed line.
const KINDS: [&str; 14] = [
    "start",
    "poll",
    "input",
    "read",
    "transmit",
    "enqueue",
    "batch",
    "subscribe",
    "unsubscribe",
    "taken",
    "close",
    "reconnect",
    "truncated",
    "",
];

const NET_ERRORS: [NetError; 15] = [
    NetError::Refused,
    NetError::ConnectTimeout,
    NetError::TimedOut,
    NetError::Unreachable,
    NetError::Reset,
    NetError::Aborted,
    NetError::BrokenPipe,
    NetError::ResolveFailed,
    NetError::NoAddresses,
    NetError::AddrUnavailable,
    NetError::Protocol,
    NetError::Other,
    NetError::InvalidAddress,
    NetError::PermissionDenied,
    NetError::Unsupported,
];

fn net_name(e: NetError) -> String {
    format!("{e:?}")
}

fn parse_net(s: &str) -> Result<NetError, String> {
    NET_ERRORS
        .into_iter()
        .find(|e| net_name(*e) == s)
        .ok_or_else(|| format!("unknown network error {:?}", cut(s)))
}

/// At most 64 characters of a string from a file, for an error message.
fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

fn input_rec(i: &Input<'_>) -> Option<InputRec> {
    let g = |e: Epoch| e.get();
    Some(match *i {
        Input::Resolved { epoch, addrs } => InputRec::Resolved {
            epoch: g(epoch),
            addrs: addrs
                .iter()
                .map(|a| match *a {
                    Addr::Ip(s) => AddrRec::Ip(s),
                    Addr::Local(n) => AddrRec::Local(n),
                })
                .collect(),
        },
        Input::ResolveFailed { epoch, error } => InputRec::ResolveFailed {
            epoch: g(epoch),
            error: net_name(error),
        },
        Input::DialOk { epoch } => InputRec::DialOk { epoch: g(epoch) },
        Input::DialFailed { epoch, error } => InputRec::DialFailed {
            epoch: g(epoch),
            error: net_name(error),
        },
        Input::Written { epoch } => InputRec::Written { epoch: g(epoch) },
        Input::Eof { epoch } => InputRec::Eof { epoch: g(epoch) },
        Input::IoError { epoch, error } => InputRec::IoError {
            epoch: g(epoch),
            error: net_name(error),
        },
        Input::Closed { epoch } => InputRec::Closed { epoch: g(epoch) },
        _ => return None,
    })
}

/// An action as recorded: its `Debug` text, a handed-back payload shown only as its length
/// (a payload can be large, and can hold anything).
pub fn redacted(action: &Action) -> String {
    match action {
        Action::Notify(Notification::Outcome {
            id,
            outcome,
            payload,
        }) => format!(
            "Notify(Outcome {{ id: {id:?}, outcome: {outcome:?}, payload: {} }})",
            payload
                .as_ref()
                .map_or("None".to_owned(), |p| format!("{} bytes", p.len()))
        ),
        a => format!("{a:?}"),
    }
}

// ----- recording -----

/// A recording asked for on the builder, waiting for the session to be built.
pub(crate) struct Pending<P> {
    out: Box<dyn Write + Send>,
    max_bytes: u64,
    describe: fn(&P) -> RecordedProtocol,
}

impl<P: Recordable> Pending<P> {
    pub(crate) fn new(out: Box<dyn Write + Send>, max_bytes: u64) -> Self {
        Pending {
            out,
            max_bytes: max_bytes.min(MAX_TRACE_BYTES),
            describe: P::recorded,
        }
    }
}

impl<P> Pending<P> {
    /// The builder's protocol changed after `record`: the recording cannot describe it.
    pub(crate) fn dropped<Q>(p: Option<Pending<P>>) -> Option<Pending<Q>> {
        if p.is_some() {
            tracing::warn!("Builder::protocol after Builder::record: nothing is recorded");
        }
        None
    }

    pub(crate) fn into_recorder(self, protocol: &P) -> Recorder {
        Recorder {
            out: Some(self.out),
            max_bytes: self.max_bytes,
            written: 0,
            protocol: (self.describe)(protocol),
            line: Vec::new(),
        }
    }
}

/// Writes a trace; used through [`crate::Builder::record`].
pub(crate) struct Recorder {
    out: Option<Box<dyn Write + Send>>,
    max_bytes: u64,
    written: u64,
    protocol: RecordedProtocol,
    /// The line being written (kept to reuse its allocation).
    line: Vec<u8>,
}

impl Recorder {
    fn line(&mut self, line: &Line) {
        let Some(out) = &mut self.out else { return };
        self.line.clear();
        if let Err(e) = serde_json::to_writer(&mut self.line, line) {
            tracing::warn!(error = %e, "trace recording failed; recording stops");
            self.out = None;
            return;
        }
        self.line.push(b'\n');
        let len = self.line.len() as u64;
        let over_line = self.line.len() > MAX_LINE;
        let over_file = self.written + len + TRUNCATION_RESERVE > self.max_bytes;
        if over_line || over_file {
            let reason = if over_line {
                format!("a line of {len} bytes is over the line limit of {MAX_LINE}")
            } else {
                format!("the trace reached its limit of {} bytes", self.max_bytes)
            };
            self.stop(&reason);
            return;
        }
        let r = out.write_all(&self.line);
        self.written += len;
        if self.line.capacity() > 64 << 10 {
            self.line = Vec::new();
        }
        if let Err(e) = r {
            tracing::warn!(error = %e, "trace recording failed; recording stops");
            self.out = None;
        }
    }

    pub(crate) fn start(&mut self, config: &Config) {
        let protocol = self.protocol.0.clone();
        self.line(&Line::Start {
            version: VERSION,
            config: Box::new(config.into()),
            protocol,
        });
    }

    pub(crate) fn input(&mut self, now: Instant, input: &Input<'_>) {
        match input_rec(input) {
            Some(input) => self.line(&Line::Input {
                t: now.as_nanos(),
                input,
            }),
            None => self.stop(&format!(
                "an input this trace version cannot record: {input:?}"
            )),
        }
    }

    /// Ends the recording with a `truncated` line saying why.
    fn stop(&mut self, reason: &str) {
        if let Some(out) = &mut self.out {
            tracing::warn!(%reason, "trace truncated; recording stops");
            let end = Line::Truncated {
                reason: reason.to_owned(),
            };
            let r = serde_json::to_writer(&mut *out, &end)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            if let Err(e) = r {
                tracing::warn!(error = %e, "trace recording failed");
            }
            self.out = None;
        }
    }

    pub(crate) fn read(
        &mut self,
        now: Instant,
        epoch: Epoch,
        buf: &[u8],
        fresh: usize,
        used: usize,
        units: usize,
    ) {
        if self.out.is_none() {
            return;
        }
        let fresh = fresh.min(buf.len());
        let kept = buf.len() - fresh;
        self.line(&Line::Read {
            t: now.as_nanos(),
            epoch: epoch.get(),
            kept,
            data: hex(&buf[kept..]),
            used,
            units,
        });
    }

    pub(crate) fn transmit(&mut self) {
        self.line(&Line::Transmit);
    }

    pub(crate) fn enqueue(&mut self, now: Instant, payload: &[u8], delivery: Delivery) {
        if self.out.is_none() {
            return;
        }
        self.line(&Line::Enqueue {
            t: now.as_nanos(),
            data: hex(payload),
            delivery: delivery.into(),
        });
    }

    pub(crate) fn batch(&mut self, now: Instant, batch: &Batch, delivery: Delivery) {
        if self.out.is_none() {
            return;
        }
        self.line(&Line::Batch {
            t: now.as_nanos(),
            msgs: batch.iter().map(hex).collect(),
            delivery: delivery.into(),
        });
    }

    pub(crate) fn subscribe(&mut self, now: Instant, spec: &[u8]) {
        self.line(&Line::Subscribe {
            t: now.as_nanos(),
            spec: hex(spec),
        });
    }

    pub(crate) fn unsubscribe(&mut self, now: Instant, id: SubId) {
        self.line(&Line::Unsubscribe {
            t: now.as_nanos(),
            id: id.get(),
        });
    }

    pub(crate) fn taken(&mut self, now: Instant, messages: usize, bytes: usize) {
        self.line(&Line::Taken {
            t: now.as_nanos(),
            messages,
            bytes,
        });
    }

    pub(crate) fn close(&mut self, now: Instant, mode: CloseMode) {
        let mode = match mode {
            CloseMode::Immediate => CloseRec::Immediate,
            CloseMode::Graceful { drain } => CloseRec::Graceful {
                graceful_ns: ns(drain),
            },
        };
        self.line(&Line::Close {
            t: now.as_nanos(),
            mode,
        });
    }

    pub(crate) fn reconnect(&mut self, now: Instant) {
        self.line(&Line::Reconnect { t: now.as_nanos() });
    }

    pub(crate) fn poll(&mut self, now: Instant, action: &Action) {
        self.line(&Line::Poll {
            t: now.as_nanos(),
            a: redacted(action),
        });
        if matches!(action, Action::Wait { .. }) {
            // One flush per round keeps a crashed process's trace whole up to its last round.
            if let Some(Err(e)) = self.out.as_mut().map(|o| o.flush()) {
                tracing::warn!(error = %e, "trace flush failed; recording stops");
                self.out = None;
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(Err(e)) = self.out.as_mut().map(|o| o.flush()) {
            tracing::warn!(error = %e, "trace flush failed");
        }
    }
}

// ----- replay -----

/// A read whose replay differs from the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadMismatch {
    /// The trace line (1-based).
    pub line: usize,
    /// `(kept, used, units)` as recorded.
    pub recorded: (usize, usize, usize),
    /// `(kept, used, units)` in the replay.
    pub replayed: (usize, usize, usize),
}

/// The result of [`replay`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Replayed {
    /// The configuration from the `start` line.
    pub config: Config,
    /// The protocol from the `start` line.
    pub protocol: RecordedProtocol,
    /// Every action the fresh session produced, with the time of the poll that produced it.
    pub actions: Vec<(Instant, Action)>,
    /// The actions as recorded (see [`redacted`]), for comparison.
    pub recorded: Vec<String>,
    /// Reads: how many there were, and the first whose bytes used or units decoded differ.
    pub reads: usize,
    /// The first read that decoded differently, if any.
    pub read_mismatch: Option<ReadMismatch>,
    /// Why the recording stopped early, if it did (its `truncated` line).
    pub truncated: Option<String>,
}

impl Replayed {
    /// Index of the first action that differs from the recording (or where one of the two
    /// sequences ends early); `None` when the replay took exactly the recorded decisions.
    pub fn first_mismatch(&self) -> Option<usize> {
        let n = self.actions.len().max(self.recorded.len());
        (0..n).find(|&i| {
            let replayed = self.actions.get(i).map(|(_, a)| redacted(a));
            replayed.as_ref() != self.recorded.get(i)
        })
    }

    /// Whether the replay took exactly the recorded decisions and decoded every read the same.
    pub fn identical(&self) -> bool {
        self.first_mismatch().is_none() && self.read_mismatch.is_none()
    }
}

/// Reads bounded lines: never more than [`MAX_LINE`] per line or [`MAX_TRACE_BYTES`] in all.
struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    n: usize,
    total: u64,
}

impl<R: BufRead> Lines<R> {
    /// The next non-blank line and its number, or `None` at the end.
    fn next(&mut self) -> Result<Option<(usize, &str)>, TraceError> {
        loop {
            self.buf.clear();
            self.n += 1;
            let limit = (MAX_LINE + 1) as u64;
            let got = <&mut R as io::Read>::take(&mut self.reader, limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(TraceError::Io)?;
            if got == 0 {
                return Ok(None);
            }
            self.total += got as u64;
            if self.total > MAX_TRACE_BYTES {
                return Err(TraceError::TooLarge {
                    max: MAX_TRACE_BYTES,
                });
            }
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            } else if self.buf.len() > MAX_LINE {
                return Err(TraceError::LineTooLong {
                    line: self.n,
                    max: MAX_LINE,
                });
            }
            if self.buf.len() > MAX_LINE {
                return Err(TraceError::LineTooLong {
                    line: self.n,
                    max: MAX_LINE,
                });
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.n;
            let text = std::str::from_utf8(&self.buf).map_err(|_| TraceError::Invalid {
                line,
                reason: "not UTF-8".into(),
            })?;
            return Ok(Some((line, text)));
        }
    }
}

fn parse(n: usize, text: &str) -> Result<Line, TraceError> {
    serde_json::from_str(text).map_err(|error| {
        // An unknown kind is its own error; anything else is malformed JSON for its kind.
        #[derive(Deserialize)]
        struct Kind {
            k: String,
        }
        match serde_json::from_str::<Kind>(text) {
            Ok(Kind { k }) if !KINDS.contains(&k.as_str()) => TraceError::UnknownKind {
                line: n,
                kind: cut(&k),
            },
            _ => TraceError::Json { line: n, error },
        }
    })
}

/// Runs a fresh [`Session`] on a recorded trace and returns the actions it produced.
pub fn replay(reader: impl BufRead) -> Result<Replayed, TraceError> {
    let mut lines = Lines {
        reader,
        buf: Vec::new(),
        n: 0,
        total: 0,
    };
    let Some((n, text)) = lines.next()? else {
        return Err(TraceError::Invalid {
            line: 0,
            reason: "empty trace".into(),
        });
    };
    let invalid = |reason: String| TraceError::Invalid { line: n, reason };
    let Line::Start {
        version,
        config,
        protocol,
    } = parse(n, text)?
    else {
        return Err(invalid("the first line must be `start`".into()));
    };
    if version != VERSION {
        return Err(invalid(format!(
            "trace version {version}, expected {VERSION}"
        )));
    }
    let config = config.to_config().map_err(invalid)?;
    let recorded = RecordedProtocol(protocol.clone());
    let mut out = Replayed {
        config: config.clone(),
        protocol: recorded,
        actions: Vec::new(),
        recorded: Vec::new(),
        reads: 0,
        read_mismatch: None,
        truncated: None,
    };
    let bad_config =
        |e: redial_core::ConfigError| invalid(format!("recorded config is invalid: {e}"));
    match &protocol {
        ProtoRec::Line { .. } => {
            let p = protocol.line().map_err(invalid)?;
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Length {
            max_payload,
            acks_in_order,
        } => {
            let p = Framed::new(LengthCodec::new(*max_payload)).with_acks(acks(*acks_in_order));
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Raw { max } => {
            let p = Framed::new(RawCodec::new(*max));
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Resp { .. } => {
            let p = protocol.resp().map_err(invalid)?;
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Nats { .. } => {
            let p = protocol.nats().map_err(invalid)?;
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
    }
    Ok(out)
}

/// The replay proper, on a session of the recorded protocol.
fn run<P: Protocol, R: BufRead>(
    mut s: Session<P>,
    lines: &mut Lines<R>,
    out: &mut Replayed,
) -> Result<(), TraceError> {
    // The driver's read buffer: what the last read left unused, on the connection it came from.
    let mut kept: Vec<u8> = Vec::new();
    let mut kept_epoch = Epoch::NONE;
    let mut scratch = Vec::new();
    while let Some((n, text)) = lines.next()? {
        let line = parse(n, text)?;
        let invalid = |reason: String| TraceError::Invalid { line: n, reason };
        let at = Instant::from_nanos;
        match line {
            Line::Start { .. } => return Err(invalid("a second `start` line".into())),
            Line::Poll { t, a } => {
                let action = s.poll(at(t));
                out.actions.push((at(t), action));
                out.recorded.push(a);
            }
            Line::Input { t, input } => {
                let e = Epoch::from_raw;
                let addrs: Vec<Addr>;
                let input = match &input {
                    InputRec::Resolved { epoch, addrs: a } => {
                        addrs = a
                            .iter()
                            .map(|a| match *a {
                                AddrRec::Ip(s) => Addr::Ip(s),
                                AddrRec::Local(n) => Addr::Local(n),
                            })
                            .collect();
                        Input::Resolved {
                            epoch: e(*epoch),
                            addrs: &addrs,
                        }
                    }
                    InputRec::ResolveFailed { epoch, error } => Input::ResolveFailed {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    InputRec::DialOk { epoch } => Input::DialOk { epoch: e(*epoch) },
                    InputRec::DialFailed { epoch, error } => Input::DialFailed {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    InputRec::Written { epoch } => Input::Written { epoch: e(*epoch) },
                    InputRec::Eof { epoch } => Input::Eof { epoch: e(*epoch) },
                    InputRec::IoError { epoch, error } => Input::IoError {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    InputRec::Closed { epoch } => Input::Closed { epoch: e(*epoch) },
                };
                let _ = s.handle_input(at(t), input);
            }
            Line::Read {
                t,
                epoch,
                kept: rec_kept,
                data,
                used,
                units,
            } => {
                let epoch = Epoch::from_raw(epoch);
                if epoch != kept_epoch {
                    // A new connection starts with an empty buffer.
                    kept.clear();
                    kept_epoch = epoch;
                }
                let fresh = unhex(&data).map_err(invalid)?;
                let had = kept.len();
                kept.extend_from_slice(&fresh);
                let mut got = 0usize;
                let u = s.handle_read(at(t), epoch, &kept, fresh.len(), &mut |_| got += 1);
                let u = u.min(kept.len());
                kept.drain(..u);
                out.reads += 1;
                if out.read_mismatch.is_none() && (had, u, got) != (rec_kept, used, units) {
                    out.read_mismatch = Some(ReadMismatch {
                        line: n,
                        recorded: (rec_kept, used, units),
                        replayed: (had, u, got),
                    });
                }
            }
            Line::Transmit => {
                scratch.clear();
                s.encode_transmit(&mut scratch);
                if scratch.capacity() > 1 << 20 {
                    scratch = Vec::new();
                }
            }
            Line::Enqueue { t, data, delivery } => {
                let data = unhex(&data).map_err(invalid)?;
                let _ = s.enqueue(at(t), data, delivery.into());
            }
            Line::Batch { t, msgs, delivery } => {
                let mut b = Batch::new();
                for m in &msgs {
                    b.push(&unhex(m).map_err(invalid)?);
                }
                let _ = s.enqueue_batch(at(t), b, delivery.into());
            }
            Line::Subscribe { t, spec } => {
                let spec = unhex(&spec).map_err(invalid)?;
                let _ = s.subscribe(at(t), spec);
            }
            Line::Unsubscribe { t, id } => {
                let _ = s.unsubscribe(at(t), SubId::from_raw(id));
            }
            Line::Taken { t, messages, bytes } => s.inbound_taken(at(t), messages, bytes),
            Line::Close { t, mode } => {
                let mode = match mode {
                    CloseRec::Immediate => CloseMode::Immediate,
                    CloseRec::Graceful { graceful_ns } => CloseMode::Graceful {
                        drain: dur(graceful_ns),
                    },
                };
                s.close(at(t), mode);
            }
            Line::Reconnect { t } => s.reconnect_now(at(t)),
            Line::Truncated { reason } => {
                out.truncated = Some(cut(&reason));
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(protocol: &impl Recordable) -> String {
        serde_json::to_string(&Line::Start {
            version: VERSION,
            config: Box::new((&Config::default()).into()),
            protocol: protocol.recorded().0,
        })
        .unwrap()
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&all)).unwrap(), all);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn config_round_trips() {
        let mut c = Config::default()
            .with_seed(7)
            .with_heartbeat(None)
            .with_request_timeout(Some(Duration::from_secs(3)));
        c.backoff = c.backoff.with_jitter(Jitter::Proportional(0.25));
        c.inbound.max_messages = 17;
        let rec = ConfigRec::from(&c);
        let json = serde_json::to_string(&rec).unwrap();
        let back: ConfigRec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_config().unwrap(), c);
    }

    #[test]
    fn protocols_round_trip_without_secrets() {
        let r = Resp::new()
            .resp3()
            .with_auth(Some(b"alice"), b"s3cret-pw")
            .with_database(3)
            .with_client_name(b"me")
            .with_setup(resp::cmd(["CLIENT", "NO-EVICT", "on"]), false)
            .with_setup(resp::cmd(["AUTH", "other-s3cret"]), true);
        let json = start(&r);
        assert!(!json.contains(&hex(b"s3cret")), "{json}");
        assert!(
            !json.contains("s3cret") && !json.contains("alice"),
            "{json}"
        );
        let back = r.recorded().0.resp().unwrap();
        assert_eq!(back.recorded(), r.recorded());

        let n = Nats::new()
            .with_token("tok-s3cret")
            .with_name("svc")
            .with_inbox("_INBOX.abc");
        let json = start(&n);
        assert!(
            !json.contains("s3cret") && !json.contains(&hex(b"s3cret")),
            "{json}"
        );
        assert_eq!(n.recorded().0.nats().unwrap().recorded(), n.recorded());
        let n = Nats::new().with_user_password("bob", "pw-s3cret");
        assert!(!start(&n).contains("s3cret"));

        let l = Framed::new(
            LineCodec::plain()
                .with_greeting(Some(b"AUTH s3cret"))
                .with_greeting_replies(1)
                .with_handshake_error(b"-ERR", NetError::PermissionDenied),
        )
        .with_acks(AckMode::InOrder);
        let json = start(&l);
        assert!(!json.contains(&hex(b"s3cret")), "{json}");
        let back = l.recorded().0.line().unwrap();
        assert_eq!(back.recorded(), l.recorded());
        assert_eq!(back.acks(), AckMode::InOrder);
    }

    fn replay_str(s: &str) -> Result<Replayed, TraceError> {
        replay(s.as_bytes())
    }

    #[test]
    fn hostile_traces_are_typed_errors() {
        let st = start(&Resp::new());
        type Check = fn(&TraceError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            (String::new(), |e| matches!(e, TraceError::Invalid { .. })),
            ("{not json".into(), |e| matches!(e, TraceError::Json { line: 1, .. })),
            (
                format!("{st}\n{{\"k\":\"explode\",\"t\":1}}\n"),
                |e| matches!(e, TraceError::UnknownKind { line: 2, kind } if kind == "explode"),
            ),
            (
                format!("{st}\n{{\"k\":\"poll\"}}\n"),
                |e| matches!(e, TraceError::Json { line: 2, .. }),
            ),
            (
                "{\"k\":\"poll\",\"t\":0,\"a\":\"x\"}\n".to_string(),
                |e| matches!(e, TraceError::Invalid { line: 1, .. }),
            ),
            (
                format!("{st}\n{st}\n"),
                |e| matches!(e, TraceError::Invalid { line: 2, .. }),
            ),
            (
                format!("{st}\n{{\"k\":\"enqueue\",\"t\":0,\"data\":\"zz\",\"delivery\":\"at_most_once\"}}\n"),
                |e| matches!(e, TraceError::Invalid { line: 2, .. }),
            ),
            (
                format!("{st}\n{{\"k\":\"input\",\"t\":0,\"input\":{{\"e\":\"dial_failed\",\"epoch\":1,\"error\":\"Gremlins\"}}}}\n"),
                |e| matches!(e, TraceError::Invalid { line: 2, .. }),
            ),
            (
                // An absurd length field cannot allocate: lengths are never trusted, only bytes.
                format!("{st}\n{{\"k\":\"read\",\"t\":0,\"epoch\":1,\"kept\":18446744073709551615,\"data\":\"\",\"used\":18446744073709551615,\"units\":1}}\n{{\"k\":\"nope\"}}\n"),
                |e| matches!(e, TraceError::UnknownKind { line: 3, .. }),
            ),
            (
                st.replace("\"version\":2", "\"version\":99"),
                |e| matches!(e, TraceError::Invalid { line: 1, .. }),
            ),
            (
                st.replace("\"queue_max_messages\":1024", "\"queue_max_messages\":0"),
                |e| matches!(e, TraceError::Invalid { line: 1, .. }),
            ),
        ];
        for (text, ok) in cases {
            let r = replay_str(&text);
            match r {
                Err(e) => assert!(ok(&e), "{text}: {e:?}"),
                Ok(r) => panic!("{text}: replayed {:?}", r.actions.len()),
            }
        }
        // A line over the bound is refused without being buffered whole.
        let mut long = st.clone();
        long.push('\n');
        long.push_str(&" ".repeat(MAX_LINE + 10));
        long.push_str("x\n");
        assert!(matches!(
            replay_str(&long),
            Err(TraceError::LineTooLong { line: 2, .. })
        ));
    }

    /// Records a session driven by hand through the real recorder, then replays it.
    #[test]
    fn scripted_trace_replays_identically_and_truncation_is_a_prefix() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let script = |limit: u64| {
            let buf = Buf::default();
            let proto = Resp::new();
            let mut rec = Pending::<Resp>::new(Box::new(buf.clone()), limit).into_recorder(&proto);
            let cfg = Config::default();
            rec.start(&cfg);
            let mut s = Session::new(cfg, proto, Instant::ZERO).unwrap();
            let mut t = 0;
            let round = |s: &mut Session<Resp>, rec: &mut Recorder, t: u64| {
                let mut acts = Vec::new();
                loop {
                    let a = s.poll(Instant::from_nanos(t));
                    rec.poll(Instant::from_nanos(t), &a);
                    let done = matches!(a, Action::Wait { .. });
                    acts.push(a);
                    if done {
                        return acts;
                    }
                }
            };
            let now = |t| Instant::from_nanos(t);
            let m = resp::cmd(["GET", "a"]);
            rec.enqueue(now(t), &m, Delivery::AtMostOnce);
            s.enqueue(now(t), m, Delivery::AtMostOnce).unwrap();
            let mut epoch = Epoch::NONE;
            for step in 0..6 {
                t += 1000;
                for a in round(&mut s, &mut rec, t) {
                    let input = match a {
                        Action::Resolve { epoch: e } => Input::Resolved {
                            epoch: e,
                            addrs: &[Addr::Local(1)],
                        },
                        Action::Dial { epoch: e, .. } => {
                            epoch = e;
                            Input::DialOk { epoch: e }
                        }
                        Action::Transmit { epoch: e } => {
                            rec.transmit();
                            s.encode_transmit(&mut Vec::new());
                            Input::Written { epoch: e }
                        }
                        _ => continue,
                    };
                    rec.input(now(t), &input);
                    let _ = s.handle_input(now(t), input);
                }
                if step == 3 {
                    // The value `+PONG` split over two reads: data, never a heartbeat.
                    for part in [&b"$5\r\n+PO"[..], b"NG\r\n"] {
                        let used = s.handle_read(now(t), epoch, part, part.len(), &mut |_| {});
                        rec.read(now(t), epoch, part, part.len(), used, 0);
                        if used < part.len() {
                            // Kept for the next read, as the driver does.
                            let whole = [&part[used..], b"NG\r\n"].concat();
                            let mut units = 0;
                            let u = s.handle_read(now(t), epoch, &whole, 4, &mut |_| units += 1);
                            rec.read(now(t), epoch, &whole, 4, u, units);
                            break;
                        }
                    }
                }
            }
            drop(rec);
            let v = buf.0.lock().unwrap().clone();
            v
        };
        let full = script(DEFAULT_MAX_BYTES);
        let r = replay(&full[..]).unwrap();
        assert!(r.recorded.len() > 5, "{}", String::from_utf8_lossy(&full));
        assert_eq!(r.first_mismatch(), None);
        assert_eq!(r.reads, 2);
        assert_eq!(r.read_mismatch, None, "{}", String::from_utf8_lossy(&full));
        assert!(r.identical());
        assert!(r.truncated.is_none());

        // A tampered read is caught as a read mismatch.
        let text = String::from_utf8(full.clone()).unwrap();
        let tampered = text.replace("\"units\":1", "\"units\":2");
        assert_ne!(tampered, text);
        let r = replay(tampered.as_bytes()).unwrap();
        assert!(r.read_mismatch.is_some());

        // A small cap: the trace ends with `truncated` and replays as a prefix.
        let cut = script(2048);
        assert!(cut.len() <= 2048, "{}", cut.len());
        let r = replay(&cut[..]).unwrap();
        assert!(r.truncated.as_deref().is_some_and(|t| t.contains("limit")));
        assert_eq!(r.first_mismatch(), None);
    }
}
