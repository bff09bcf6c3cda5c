//! Record and replay (feature `record`).
//!
//! The core is deterministic: the same config and the same inputs give the same actions. With
//! [`crate::Builder::record`] the driver writes every input it gives the core — and every
//! action it gets back — as JSON lines; [`replay`] runs a fresh [`Session`] on those inputs and
//! returns its actions, so a production incident can be studied offline and
//! [`Replayed::first_mismatch`] proves the replay took the very same decisions.
//!
//! ## Format
//!
//! One JSON object per line, tagged by `"k"`. Times `"t"` are nanoseconds since the session
//! started (the core's [`Instant`]); durations are `*_ns` integers; epochs are integers.
//!
//! | `k` | fields | core call |
//! |---|---|---|
//! | `start` | `version` (1), `config` (every [`Config`] field) | `Session::new(config, 0)` — always the first line |
//! | `round` | `t` | `poll(t)` until `Wait` |
//! | `event` | `t`, `event` (tagged by `"e"`: `timer`, `resolved {epoch, addrs}`, `resolve_failed {epoch, error}`, `dial_ok`, `dial_failed`, `bytes_read {epoch, len}`, `pong`, `peer_ping`, `written`, `acked {epoch, count}`, `eof`, `io_error`, `protocol_error {epoch, error}`, `closed`) | `handle(t, event)` |
//! | `enqueue` | `t`, `len`, `delivery` (`at_most_once` / `idempotent`) | `enqueue(t, len zero bytes, delivery)` |
//! | `close` | `t`, `mode` (`immediate` or `{"graceful_ns": N}`) | `close(t, mode)` |
//! | `reconnect` | `t` | `reconnect_now(t)` |
//! | `action` | `a`: the action's `Debug` text, payloads replaced by zero bytes of the same length | output, not replayed |
//!
//! `NetError`s are their variant names (`"Refused"`); frame errors are
//! `{"too_large": {size, max}}`, `{"malformed": reason}` or `{"unexpected_ack": {acked, in_flight}}`.
//! Payload contents are never recorded, only their lengths.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::time::Duration;

use redial_core::{
    AckMode, Action, Backoff, Batch, CloseMode, Config, Delivery, Epoch, Event, FrameError, GiveUp,
    GiveUpWhen, Heartbeat, Instant, Jitter, NetError, Notification, Overflow, QueueLimits, Session,
    BATCH_RECORD_OVERHEAD,
};
use serde::{Deserialize, Serialize};

use crate::tap::Tap;

/// Version of the trace format written in the `start` line.
pub const VERSION: u32 = 1;

/// A trace that cannot be replayed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TraceError {
    /// Reading failed.
    Io(io::Error),
    /// A line is not valid trace JSON.
    Json {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        error: serde_json::Error,
    },
    /// A line holds a value the core does not know (or the first line is not `start`).
    Invalid {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceError::Io(e) => write!(f, "reading the trace: {e}"),
            TraceError::Json { line, error } => write!(f, "line {line}: {error}"),
            TraceError::Invalid { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

impl std::error::Error for TraceError {}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn dur(n: u64) -> Duration {
    Duration::from_nanos(n)
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
    acks_in_order: bool,
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
            acks_in_order: c.acks == AckMode::InOrder,
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
        c.acks = if self.acks_in_order {
            AckMode::InOrder
        } else {
            AckMode::None
        };
        c.max_replays = self.max_replays;
        c.batch_bytes = self.batch_bytes;
        c.batch_messages = self.batch_messages;
        c.seed = self.seed;
        Ok(c)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
enum FrameRec {
    TooLarge { size: usize, max: usize },
    Malformed(String),
    UnexpectedAck { acked: usize, in_flight: usize },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "e", rename_all = "snake_case")]
enum EventRec {
    Timer,
    Resolved { epoch: u64, addrs: Vec<SocketAddr> },
    ResolveFailed { epoch: u64, error: String },
    DialOk { epoch: u64 },
    DialFailed { epoch: u64, error: String },
    BytesRead { epoch: u64, len: usize },
    Pong { epoch: u64 },
    PeerPing { epoch: u64 },
    Written { epoch: u64 },
    Acked { epoch: u64, count: usize },
    Eof { epoch: u64 },
    IoError { epoch: u64, error: String },
    ProtocolError { epoch: u64, error: FrameRec },
    Closed { epoch: u64 },
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum DeliveryRec {
    AtMostOnce,
    Idempotent,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum CloseRec {
    Immediate,
    Graceful { graceful_ns: u64 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Line {
    Start {
        version: u32,
        config: ConfigRec,
    },
    Round {
        t: u64,
    },
    Event {
        t: u64,
        event: EventRec,
    },
    Enqueue {
        t: u64,
        len: usize,
        /// A batch: (messages, largest message); its records are `len` bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<(usize, usize)>,
        delivery: DeliveryRec,
    },
    Close {
        t: u64,
        mode: CloseRec,
    },
    Reconnect {
        t: u64,
    },
    Action {
        a: String,
    },
}

const NET_ERRORS: [NetError; 14] = [
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
        .ok_or_else(|| format!("unknown network error {s:?}"))
}

fn frame_rec(e: FrameError) -> FrameRec {
    match e {
        FrameError::TooLarge { size, max } => FrameRec::TooLarge { size, max },
        FrameError::UnexpectedAck { acked, in_flight } => {
            FrameRec::UnexpectedAck { acked, in_flight }
        }
        FrameError::Malformed { reason } => FrameRec::Malformed(reason.to_owned()),
        other => FrameRec::Malformed(other.to_string()),
    }
}

fn frame_error(r: &FrameRec) -> FrameError {
    match r {
        FrameRec::TooLarge { size, max } => FrameError::TooLarge {
            size: *size,
            max: *max,
        },
        FrameRec::UnexpectedAck { acked, in_flight } => FrameError::UnexpectedAck {
            acked: *acked,
            in_flight: *in_flight,
        },
        // The core wants a `&'static str`: a replay is a short-lived tool, so the (rare)
        // malformed-frame reasons are leaked rather than threaded through a lifetime.
        FrameRec::Malformed(s) => FrameError::Malformed {
            reason: Box::leak(s.clone().into_boxed_str()),
        },
    }
}

fn event_rec(e: &Event<'_>) -> EventRec {
    let g = |e: Epoch| e.get();
    match *e {
        Event::Resolved { epoch, addrs } => EventRec::Resolved {
            epoch: g(epoch),
            addrs: addrs.to_vec(),
        },
        Event::ResolveFailed { epoch, error } => EventRec::ResolveFailed {
            epoch: g(epoch),
            error: net_name(error),
        },
        Event::DialOk { epoch } => EventRec::DialOk { epoch: g(epoch) },
        Event::DialFailed { epoch, error } => EventRec::DialFailed {
            epoch: g(epoch),
            error: net_name(error),
        },
        Event::BytesRead { epoch, len } => EventRec::BytesRead {
            epoch: g(epoch),
            len,
        },
        Event::Pong { epoch } => EventRec::Pong { epoch: g(epoch) },
        Event::PeerPing { epoch } => EventRec::PeerPing { epoch: g(epoch) },
        Event::Written { epoch } => EventRec::Written { epoch: g(epoch) },
        Event::Acked { epoch, count } => EventRec::Acked {
            epoch: g(epoch),
            count,
        },
        Event::Eof { epoch } => EventRec::Eof { epoch: g(epoch) },
        Event::IoError { epoch, error } => EventRec::IoError {
            epoch: g(epoch),
            error: net_name(error),
        },
        Event::ProtocolError { epoch, error } => EventRec::ProtocolError {
            epoch: g(epoch),
            error: frame_rec(error),
        },
        Event::Closed { epoch } => EventRec::Closed { epoch: g(epoch) },
        _ => EventRec::Timer,
    }
}

/// An action as recorded: its `Debug` text with payloads replaced by zeros.
pub fn redacted(action: &Action) -> String {
    match action {
        Action::Notify(Notification::Outcome {
            id,
            outcome,
            payload,
        }) => {
            let a = Action::Notify(Notification::Outcome {
                id: *id,
                outcome: *outcome,
                payload: payload.as_ref().map(|p| vec![0; p.len()]),
            });
            format!("{a:?}")
        }
        a => format!("{a:?}"),
    }
}

/// Writes a trace; used through [`crate::Builder::record`].
pub(crate) struct Recorder {
    out: Option<Box<dyn Write + Send>>,
}

impl Recorder {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Self {
        Recorder { out: Some(out) }
    }

    fn line(&mut self, line: &Line) {
        let Some(out) = &mut self.out else { return };
        let r = serde_json::to_writer(&mut *out, line)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        if let Err(e) = r {
            tracing::warn!(error = %e, "trace recording failed; recording stops");
            self.out = None;
        }
    }
}

impl Tap for Recorder {
    fn start(&mut self, config: &Config) {
        self.line(&Line::Start {
            version: VERSION,
            config: config.into(),
        });
    }

    fn event(&mut self, now: Instant, event: &Event<'_>) {
        let event = event_rec(event);
        self.line(&Line::Event {
            t: now.as_nanos(),
            event,
        });
    }

    fn enqueue(
        &mut self,
        now: Instant,
        len: usize,
        batch: Option<(usize, usize)>,
        delivery: Delivery,
    ) {
        let delivery = match delivery {
            Delivery::AtMostOnce => DeliveryRec::AtMostOnce,
            Delivery::Idempotent => DeliveryRec::Idempotent,
        };
        self.line(&Line::Enqueue {
            t: now.as_nanos(),
            len,
            batch,
            delivery,
        });
    }

    fn close(&mut self, now: Instant, mode: CloseMode) {
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

    fn reconnect(&mut self, now: Instant) {
        self.line(&Line::Reconnect { t: now.as_nanos() });
    }

    fn round(&mut self, now: Instant) {
        self.line(&Line::Round { t: now.as_nanos() });
    }

    fn action(&mut self, action: &Action) {
        self.line(&Line::Action {
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

/// The result of [`replay`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Replayed {
    /// The configuration from the `start` line.
    pub config: Config,
    /// Every action the fresh session produced, with the time of its round.
    pub actions: Vec<(Instant, Action)>,
    /// The actions as recorded (redacted `Debug` text), for comparison.
    pub recorded: Vec<String>,
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
}

/// Runs a fresh [`Session`] on a recorded trace and returns the actions it produced.
pub fn replay(reader: impl BufRead) -> Result<Replayed, TraceError> {
    let mut session: Option<(Session, Config)> = None;
    let mut actions = Vec::new();
    let mut recorded = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(TraceError::Io)?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line =
            serde_json::from_str(&line).map_err(|error| TraceError::Json { line: n, error })?;
        let invalid = |reason: String| TraceError::Invalid { line: n, reason };
        if let Line::Start { version, config } = &parsed {
            if *version != VERSION {
                return Err(invalid(format!(
                    "trace version {version}, expected {VERSION}"
                )));
            }
            let config = config.to_config().map_err(invalid)?;
            let s = Session::new(config.clone(), Instant::ZERO)
                .map_err(|e| invalid(format!("recorded config is invalid: {e}")))?;
            session = Some((s, config));
            continue;
        }
        let Some((s, _)) = &mut session else {
            return Err(invalid("the first line must be `start`".into()));
        };
        let at = |t: u64| Instant::from_nanos(t);
        match parsed {
            Line::Start { .. } => {}
            Line::Round { t } => loop {
                let a = s.poll(at(t));
                let done = matches!(a, Action::Wait { .. });
                actions.push((at(t), a));
                if done {
                    break;
                }
            },
            Line::Event { t, event } => {
                let addrs;
                let e = |x: u64| Epoch::from_raw(x);
                let event = match &event {
                    EventRec::Timer => Event::Timer,
                    EventRec::Resolved { epoch, addrs: a } => {
                        addrs = a.clone();
                        Event::Resolved {
                            epoch: e(*epoch),
                            addrs: &addrs,
                        }
                    }
                    EventRec::ResolveFailed { epoch, error } => Event::ResolveFailed {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    EventRec::DialOk { epoch } => Event::DialOk { epoch: e(*epoch) },
                    EventRec::DialFailed { epoch, error } => Event::DialFailed {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    EventRec::BytesRead { epoch, len } => Event::BytesRead {
                        epoch: e(*epoch),
                        len: *len,
                    },
                    EventRec::Pong { epoch } => Event::Pong { epoch: e(*epoch) },
                    EventRec::PeerPing { epoch } => Event::PeerPing { epoch: e(*epoch) },
                    EventRec::Written { epoch } => Event::Written { epoch: e(*epoch) },
                    EventRec::Acked { epoch, count } => Event::Acked {
                        epoch: e(*epoch),
                        count: *count,
                    },
                    EventRec::Eof { epoch } => Event::Eof { epoch: e(*epoch) },
                    EventRec::IoError { epoch, error } => Event::IoError {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    EventRec::ProtocolError { epoch, error } => Event::ProtocolError {
                        epoch: e(*epoch),
                        error: frame_error(error),
                    },
                    EventRec::Closed { epoch } => Event::Closed { epoch: e(*epoch) },
                };
                s.handle(at(t), event);
            }
            Line::Enqueue {
                t,
                len,
                batch,
                delivery,
            } => {
                let delivery = match delivery {
                    DeliveryRec::AtMostOnce => Delivery::AtMostOnce,
                    DeliveryRec::Idempotent => Delivery::Idempotent,
                };
                // The lengths come from a file: refuse absurd ones instead of allocating them.
                if len > MAX_REPLAYED_MESSAGE {
                    return Err(invalid(format!(
                        "a message of {len} bytes (over {MAX_REPLAYED_MESSAGE}) cannot be replayed"
                    )));
                }
                let _ = match batch {
                    None => s.enqueue(at(t), vec![0; len], delivery),
                    Some((count, largest)) => {
                        let b = same_shape(len, count, largest).ok_or_else(|| {
                            invalid(format!("no batch of {count} messages has {len} bytes"))
                        })?;
                        s.enqueue_batch(at(t), b, delivery)
                    }
                };
            }
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
            Line::Action { a } => recorded.push(a),
        }
    }
    let Some((_, config)) = session else {
        return Err(TraceError::Invalid {
            line: 0,
            reason: "empty trace".into(),
        });
    };
    Ok(Replayed {
        config,
        actions,
        recorded,
    })
}

/// The largest enqueued message (or batch) a trace may replay: 1 GiB.
const MAX_REPLAYED_MESSAGE: usize = 1 << 30;

/// A batch the core cannot tell from the recorded one: `count` messages, the largest
/// `largest` bytes, `len` bytes of records. The core looks only at those three.
fn same_shape(len: usize, count: usize, largest: usize) -> Option<Batch> {
    if largest > len || count > len {
        return None;
    }
    let mut rest = len.checked_sub(count.checked_mul(BATCH_RECORD_OVERHEAD)?)?;
    let mut b = Batch::with_capacity(len);
    let filler = vec![0; largest];
    for i in 0..count {
        // The first message is the largest; the others share what is left.
        let n = if i == 0 { largest } else { rest.min(largest) };
        rest = rest.checked_sub(n)?;
        b.push(&filler[..n]);
    }
    (rest == 0 && b.byte_len() == len).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_lengths_are_an_error_not_an_allocation() {
        let cfg = Config::default();
        let start = serde_json::to_string(&Line::Start {
            version: VERSION,
            config: (&cfg).into(),
        })
        .unwrap();
        for (len, batch) in [
            (1 << 40, None),
            (64, Some((2, 1 << 40))),
            (64, Some((100, 8))),
        ] {
            let enqueue = serde_json::to_string(&Line::Enqueue {
                t: 0,
                len,
                batch,
                delivery: DeliveryRec::AtMostOnce,
            })
            .unwrap();
            let trace = format!("{start}\n{enqueue}\n");
            let r = replay(trace.as_bytes());
            assert!(
                matches!(r, Err(TraceError::Invalid { .. })),
                "{enqueue}: {r:?}"
            );
        }
    }

    #[test]
    fn config_round_trips() {
        let mut c = Config::default()
            .with_seed(7)
            .with_heartbeat(None)
            .with_acks(AckMode::InOrder);
        c.backoff = c.backoff.with_jitter(Jitter::Proportional(0.25));
        let rec = ConfigRec::from(&c);
        let json = serde_json::to_string(&rec).unwrap();
        let back: ConfigRec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_config().unwrap(), c);
    }

    #[test]
    fn scripted_trace_replays_identically() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut buf = Vec::new();
        // Drive a session by hand, recording exactly what the driver would.
        let cfg = Config::default();
        let mut s = Session::new(cfg.clone(), Instant::ZERO).unwrap();
        let mut lines = Vec::new();
        let mut push = |l: Line| lines.push(serde_json::to_string(&l).unwrap());
        push(Line::Start {
            version: VERSION,
            config: (&cfg).into(),
        });
        let round = |s: &mut Session, t: u64, push: &mut dyn FnMut(Line)| {
            push(Line::Round { t });
            loop {
                let a = s.poll(Instant::from_nanos(t));
                push(Line::Action { a: redacted(&a) });
                if matches!(a, Action::Wait { .. }) {
                    break;
                }
            }
        };
        round(&mut s, 0, &mut push);
        let ev = Event::Resolved {
            epoch: Epoch::from_raw(1),
            addrs: &[addr],
        };
        push(Line::Event {
            t: 5,
            event: event_rec(&ev),
        });
        s.handle(Instant::from_nanos(5), ev);
        round(&mut s, 5, &mut push);
        let ev = Event::DialFailed {
            epoch: Epoch::from_raw(1),
            error: NetError::Refused,
        };
        push(Line::Event {
            t: 9,
            event: event_rec(&ev),
        });
        s.handle(Instant::from_nanos(9), ev);
        round(&mut s, 9, &mut push);
        for l in &lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        let r = replay(&buf[..]).unwrap();
        assert!(r.recorded.len() > 5);
        assert_eq!(r.first_mismatch(), None);
    }
}
