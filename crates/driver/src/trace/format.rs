//! The trace's line format: config, inputs, actions and bytes as JSON.

use super::*;

pub(super) fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(super) fn dur(n: u64) -> Duration {
    Duration::from_nanos(n)
}

/// Bytes as lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

pub(super) fn unhex(s: &str) -> Result<Vec<u8>, String> {
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
pub(super) enum JitterRec {
    None,
    Full,
    Equal,
    Decorrelated,
    Proportional(f64),
    Unknown,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(super) struct HeartbeatRec {
    pub(super) interval_ns: u64,
    pub(super) timeout_ns: u64,
    pub(super) adaptive_floor_ns: Option<u64>,
}

/// Every field of [`Config`], as plain data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(super) struct ConfigRec {
    pub(super) backoff_initial_ns: u64,
    pub(super) backoff_multiplier: f64,
    pub(super) backoff_cap_ns: u64,
    pub(super) backoff_jitter: JitterRec,
    pub(super) give_up_max_failures: Option<u32>,
    pub(super) give_up_max_elapsed_ns: Option<u64>,
    pub(super) give_up_either: bool,
    pub(super) stable_after_ns: u64,
    pub(super) connect_timeout_ns: u64,
    pub(super) heartbeat: Option<HeartbeatRec>,
    pub(super) read_idle_timeout_ns: Option<u64>,
    pub(super) write_timeout_ns: Option<u64>,
    pub(super) close_timeout_ns: u64,
    pub(super) queue_max_messages: usize,
    pub(super) queue_max_bytes: usize,
    pub(super) queue_max_message: usize,
    pub(super) queue_evict_oldest: bool,
    pub(super) inbound_max_messages: usize,
    pub(super) inbound_max_bytes: usize,
    pub(super) request_timeout_ns: Option<u64>,
    pub(super) max_replays: u8,
    pub(super) batch_bytes: usize,
    pub(super) batch_messages: usize,
    pub(super) seed: u64,
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
    pub(super) fn to_config(&self) -> Result<Config, String> {
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub(super) enum AddrRec {
    Ip(SocketAddr),
    Local(u32),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "e", rename_all = "snake_case")]
pub(super) enum InputRec {
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
pub(super) enum DeliveryRec {
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
pub(super) enum CloseRec {
    Immediate,
    Graceful { graceful_ns: u64 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "k", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Line {
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
    /// `Session::move_off`.
    Move {
        t: u64,
        drain_ns: u64,
    },
    /// `Session::defer_attempt`.
    Defer {
        t: u64,
        epoch: u64,
        retry_ns: u64,
    },
    Truncated {
        reason: String,
    },
}

/// The kinds a line may have, for telling an unknown kind from a malformed line.
pub(super) const KINDS: [&str; 16] = [
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
    "move",
    "defer",
    "truncated",
    "",
];

pub(super) const NET_ERRORS: [NetError; 15] = [
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

pub(super) fn net_name(e: NetError) -> String {
    format!("{e:?}")
}

pub(super) fn parse_net(s: &str) -> Result<NetError, String> {
    NET_ERRORS
        .into_iter()
        .find(|e| net_name(*e) == s)
        .ok_or_else(|| format!("unknown network error {:?}", cut(s)))
}

/// At most 64 characters of a string from a file, for an error message.
pub(super) fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(super) fn input_rec(i: &Input<'_>) -> Option<InputRec> {
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
