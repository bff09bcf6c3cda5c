//! An invariant-checking host shared by the property tests and the `session` fuzz target.
//!
//! Input is plain bytes: the first bytes pick a configuration and a protocol (length-framed
//! without acks, length-framed with in-order acks, RESP2, RESP3, NATS), the rest decode into
//! operations: inputs with current, old or made-up epochs, user commands, time steps, and a
//! **peer model** that reads what the session wrote with the protocol's grammar and answers
//! like a server would: in order (RESP, NATS `PONG`), by key and out of order (NATS requests
//! through the inbox, "no responders" among them), with replies whose bytes name the request
//! they answer (values such as `+PONG`, `PING`, CR LF and `-ERR` included), messages for its
//! subscriptions (NATS `MSG` and `HMSG` by sid), its own pings, answers split at any byte, and
//! now and then a reply to nothing. `run` applies them and
//! asserts, after every step, the invariants of DESIGN.md, that every reply is credited to
//! the request it answers (checked by value), and that the peer executed each message within
//! [delivered, delivered + in doubt]; it panics with a message naming the broken one.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use redial_core::proto::resp::{self, cmd, Value};
use redial_core::*;

/// Reads bytes, yielding zeros once exhausted (so every input decodes).
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const ADDRS: [Addr; 3] = [
    Addr::Ip(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        1,
    )),
    Addr::Ip(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        2,
    )),
    Addr::Ip(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        3,
    )),
];

const ERRORS: [NetError; 8] = [
    NetError::Refused,
    NetError::ConnectTimeout,
    NetError::TimedOut,
    NetError::Unreachable,
    NetError::Reset,
    NetError::ResolveFailed,
    NetError::Other,
    NetError::InvalidAddress,
];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The protocol the session speaks to the peer model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Length-delimited frames, delivered once written; the peer's data is inbound messages.
    Frames,
    /// Length-delimited frames, one echo reply per message, in order.
    Acked,
    /// RESP2.
    Resp2,
    /// RESP3 (a `HELLO 3` handshake on every connection).
    Resp3,
    /// The NATS client protocol: `INFO` from the peer, `CONNECT` and `PING` back; publishes
    /// confirmed by a later `PONG`, requests answered by key through the inbox, in any order.
    Nats,
}

/// The inbox of the NATS sessions.
const INBOX: &str = "_INBOX.chk";

impl Kind {
    fn resp(self) -> bool {
        matches!(self, Kind::Resp2 | Kind::Resp3)
    }

    pub fn protocol(self) -> Box<dyn Protocol> {
        let len = LengthCodec::new(256);
        match self {
            Kind::Frames => Box::new(Framed::new(len)),
            Kind::Acked => Box::new(Framed::new(len).with_acks(AckMode::InOrder)),
            Kind::Resp2 => Box::new(Resp::new()),
            Kind::Resp3 => Box::new(Resp::new().resp3()),
            Kind::Nats => Box::new(Nats::new().with_inbox(INBOX)),
        }
    }
}

use redial_core::proto::nats::{self, Nats};
use redial_core::proto::resp::Resp;

/// A configuration chosen by bytes; always valid.
#[derive(Clone, Debug)]
pub struct Setup {
    pub cfg: Config,
    pub kind: Kind,
}

/// A configuration chosen by 16 bytes; always valid.
pub fn config(b: &mut Bytes<'_>) -> Setup {
    let initial = ms(1 + u64::from(b.u8()) * 4);
    let cap = initial + ms(u64::from(b.u16()) * 2);
    let jitter = match b.u8() % 5 {
        0 => Jitter::None,
        1 => Jitter::Full,
        2 => Jitter::Equal,
        3 => Jitter::Decorrelated,
        _ => Jitter::Proportional(f64::from(b.u8() % 101) / 100.0),
    };
    let backoff = Backoff::new()
        .with_initial(initial)
        .with_cap(cap)
        .with_multiplier(1.0 + f64::from(b.u8() % 40) / 10.0)
        .with_jitter(jitter);
    let flags = b.u8();
    let give_up = match flags % 4 {
        0 => GiveUp::NEVER,
        1 => GiveUp::default(),
        2 => GiveUp {
            max_failures: Some(1 + u32::from(b.u8() % 12)),
            max_elapsed: Some(ms(1 + u64::from(b.u16()))),
            when: GiveUpWhen::Either,
        },
        _ => GiveUp {
            max_failures: Some(1 + u32::from(b.u8() % 12)),
            max_elapsed: None,
            when: GiveUpWhen::Both,
        },
    };
    let hb_byte = b.u8();
    let heartbeat = (hb_byte % 4 != 0).then(|| {
        let interval = ms(1 + u64::from(hb_byte) * 20);
        let timeout = ms(1 + u64::from(b.u8()) * 20);
        Heartbeat {
            interval,
            timeout,
            adaptive_floor: (hb_byte % 4 == 3).then(|| (timeout / 4).max(ms(1)).min(timeout)),
        }
    });
    let t = b.u8();
    // (Half of what was RESP2 before NATS came: kept inputs keep their protocol otherwise.)
    let kind = match b.u8() % 8 {
        0 | 4 => Kind::Frames,
        1 | 5 => Kind::Acked,
        2 => Kind::Resp2,
        6 => Kind::Nats,
        _ => Kind::Resp3,
    };
    let extra = b.u8();
    let mut cfg = Config::default()
        .with_backoff(backoff)
        .with_give_up(give_up)
        .with_heartbeat(heartbeat)
        .with_stable_after(ms(u64::from(t % 16) * 250))
        .with_connect_timeout(ms(1 + u64::from(t) * 10))
        .with_close_timeout(ms(1 + u64::from(b.u8()) * 10))
        .with_read_idle_timeout((flags & 4 != 0).then(|| ms(1 + u64::from(b.u8()) * 50)))
        .with_write_timeout((flags & 8 != 0).then(|| ms(1 + u64::from(b.u8()) * 50)))
        .with_request_timeout((extra & 1 != 0).then(|| ms(1 + u64::from(b.u8()) * 30)))
        .with_inbound(InboundLimits {
            max_messages: 1 + usize::from(extra >> 1 & 7),
            max_bytes: 16 + usize::from(b.u8()),
        })
        .with_max_replays(b.u8() % 4)
        .with_queue(QueueLimits {
            max_messages: 1 + usize::from(flags >> 5),
            max_bytes: 256,
            max_message: 128,
            overflow: if flags & 32 != 0 {
                Overflow::EvictOldest
            } else {
                Overflow::Reject
            },
        })
        .with_seed(u64::from(b.u16()));
    cfg.batch_messages = 1 + usize::from(b.u8() % 4);
    cfg.batch_bytes = 1 + usize::from(b.u8() % 128);
    Setup { cfg, kind }
}

/// One step of input.
#[derive(Clone, Debug)]
pub enum Op {
    Advance(Duration),
    /// Jump to the session's next deadline.
    Jump,
    /// Poll with an instant this far in the past.
    Backwards(Duration),
    Input(Ev, EpochSel),
    /// Answer the oldest outstanding Resolve / Dial / Transmit / Close as a healthy network
    /// would (a transmit's bytes reach the peer).
    Respond,
    /// The oldest unanswered transmit's bytes reach the peer, its completion not yet seen.
    Deliver,
    /// A healthy round trip, up to this many times: every outstanding network action is
    /// answered, the peer answers all it has (with error replies where the byte is odd) and
    /// its bytes are read.
    Converse(u8),
    /// The peer answers up to this many requests in order (`true`: with error replies).
    PeerReply(u8, bool),
    /// The peer answers our oldest heartbeat by type (framed protocols).
    PeerPong,
    /// The peer sends its own PING (framed protocols).
    PeerPing,
    /// The peer publishes to one of its subscribers (or, framed, sends unsolicited data).
    PeerMessage(u8),
    /// The peer answers with nothing outstanding: the session must drop the connection.
    PeerExtra,
    /// The peer's bytes arrive garbled.
    Garbage(u8),
    /// Up to this many of the peer's bytes arrive (0: all).
    Feed(u8, EpochSel),
    /// The user stops (false) or resumes (true) taking what was received.
    Consume(bool),
    Enqueue(u8, Delivery),
    /// A batch of `1 + n % 4` messages (0 makes an empty batch, which is refused).
    EnqueueBatch(u8, u8, Delivery),
    Subscribe(u8),
    Unsubscribe(u8),
    CloseGraceful(Duration),
    CloseImmediate,
    ReconnectNow,
}

#[derive(Clone, Copy, Debug)]
pub enum EpochSel {
    Latest,
    Previous,
    Raw(u8),
}

#[derive(Clone, Copy, Debug)]
pub enum Ev {
    Resolved(u8),
    ResolveFailed(NetError),
    DialOk,
    DialFailed(NetError),
    Written,
    Eof,
    IoError(NetError),
    Closed,
}

fn sel(b: &mut Bytes<'_>) -> EpochSel {
    match b.u8() {
        0..=199 => EpochSel::Latest,
        200..=239 => EpochSel::Previous,
        r => EpochSel::Raw(r % 8),
    }
}

fn delivery(x: u8) -> Delivery {
    if x & 1 == 0 {
        Delivery::AtMostOnce
    } else {
        Delivery::Idempotent
    }
}

pub fn op(b: &mut Bytes<'_>) -> Op {
    let k = b.u8();
    match k % 40 {
        0..=3 => Op::Advance(ms(u64::from(b.u8()) * 4)),
        4 => Op::Advance(ms(u64::from(b.u16()) * 8)),
        5..=7 => Op::Jump,
        8 if k >= 240 => Op::Advance(Duration::MAX),
        8 => Op::Backwards(ms(u64::from(b.u8()) * 10)),
        9..=13 => Op::Respond,
        14 => Op::Deliver,
        34..=37 => Op::Converse(b.u8()),
        15..=17 => {
            let x = b.u8();
            Op::PeerReply(1 + x % 4, x >= 224)
        }
        18 => Op::PeerPong,
        19 => Op::PeerPing,
        20 => Op::PeerMessage(b.u8()),
        21 if k >= 200 => Op::PeerExtra,
        21 => Op::Garbage(b.u8()),
        22..=24 => Op::Feed(b.u8() % 32, sel(b)),
        25 => Op::Consume(k & 64 != 0),
        26..=27 => Op::Enqueue(b.u8() % 40, Delivery::AtMostOnce),
        28 => Op::Enqueue(b.u8() % 40, Delivery::Idempotent),
        29 => {
            let x = b.u8();
            Op::EnqueueBatch(x >> 1 & 7, b.u8() % 12, delivery(x))
        }
        30 => Op::Subscribe(b.u8() % 3),
        31 => Op::Unsubscribe(b.u8() % 4),
        32 if k & 64 != 0 => Op::CloseGraceful(ms(u64::from(b.u8()) * 20)),
        32 => Op::ReconnectNow,
        33 if k >= 240 => Op::CloseImmediate,
        _ => {
            let s = sel(b);
            let x = b.u8();
            let err = ERRORS[usize::from(x) % ERRORS.len()];
            let ev = match x % 8 {
                0 => Ev::Resolved(x >> 3 & 3),
                1 => Ev::ResolveFailed(err),
                2 => Ev::DialOk,
                3 => Ev::DialFailed(err),
                4 => Ev::Written,
                5 => Ev::Eof,
                6 => Ev::IoError(err),
                _ => Ev::Closed,
            };
            Op::Input(ev, s)
        }
    }
}

/// Decodes a whole input into a setup and operations.
pub fn decode(data: &[u8]) -> (Setup, Vec<Op>) {
    let mut b = Bytes(data);
    let setup = config(&mut b);
    let mut ops = Vec::new();
    while !b.is_empty() && ops.len() < 2000 {
        ops.push(op(&mut b));
    }
    (setup, ops)
}

/// One operation a NATS client wrote, read by its grammar (a payload by its declared count).
#[derive(Debug)]
enum NatsOp<'a> {
    Connect,
    Ping,
    Pong,
    /// `PUB`/`HPUB`: the whole operation (what the user enqueued) and its reply subject.
    Pub {
        whole: &'a [u8],
        reply: &'a [u8],
    },
    Sub {
        subject: &'a [u8],
        sid: u64,
    },
    Unsub {
        sid: u64,
    },
}

fn number(w: &[u8]) -> u64 {
    std::str::from_utf8(w)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number in a NATS line: {w:?}"))
}

/// Every operation in bytes a NATS session wrote; they must be whole.
fn nats_ops(mut rest: &[u8]) -> Vec<NatsOp<'_>> {
    let mut ops = Vec::new();
    while !rest.is_empty() {
        let nl = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("NATS operations end with CR LF");
        let line = &rest[..nl];
        let words: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        let mut used = nl + 2;
        let op = match (words.first().copied().unwrap_or(b""), words.len()) {
            (b"CONNECT", _) => NatsOp::Connect,
            (b"PING", 1) => NatsOp::Ping,
            (b"PONG", 1) => NatsOp::Pong,
            (b"PUB", 3 | 4) | (b"HPUB", 4 | 5) => {
                let total = number(words[words.len() - 1]) as usize;
                used += total + 2;
                assert_eq!(&rest[used - 2..used], b"\r\n", "a payload ends with CR LF");
                let with_reply = words.len() == if words[0] == b"PUB" { 4 } else { 5 };
                NatsOp::Pub {
                    whole: &rest[..used],
                    reply: if with_reply { words[2] } else { b"" },
                }
            }
            (b"SUB", 3) => NatsOp::Sub {
                subject: words[1],
                sid: number(words[2]),
            },
            (b"UNSUB", 2 | 3) => NatsOp::Unsub {
                sid: number(words[1]),
            },
            _ => panic!("the session wrote {:?}", String::from_utf8_lossy(line)),
        };
        ops.push(op);
        rest = &rest[used..];
    }
    ops
}

/// The token of a reply subject in the checker's inbox.
fn inbox_token(reply: &[u8]) -> Option<u64> {
    let rest = reply.strip_prefix(INBOX.as_bytes())?.strip_prefix(b".")?;
    Some(number(rest))
}

/// A request the peer read and has not answered yet.
#[derive(Clone, Debug)]
enum Req {
    /// The session's heartbeat (answered in order, RESP).
    Ping,
    /// A user message, and the reply it gets.
    Msg(MsgId, Vec<u8>),
    /// Setup (`HELLO 3`).
    Hello,
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
}

/// What the peer knows of the current connection.
#[derive(Default)]
struct Peer {
    /// In-order requests, oldest first.
    fifo: VecDeque<Req>,
    /// Our heartbeats answered by type (framed protocols).
    pings: u32,
    /// Channels subscribed on this connection.
    channels: BTreeSet<Vec<u8>>,
    /// NATS: subscriptions on this connection, by sid.
    sids: BTreeMap<u64, Vec<u8>>,
    /// NATS: requests read and not answered (the message, its reply subject's token).
    requests: Vec<(MsgId, u64)>,
    /// NATS: whether the next answer prefers a request over the oldest `PONG` owed.
    requests_first: bool,
    /// NATS: our `PING`s not yet answered with `PONG`.
    peer_pings: u32,
    /// Bytes on their way to the session.
    to_session: Vec<u8>,
    /// A garbled byte went out: what follows proves nothing.
    garbled: bool,
}

/// The checking host.
pub struct Run {
    pub s: Session<Box<dyn Protocol>>,
    cfg: Config,
    kind: Kind,
    now: Instant,
    /// Every action, with the session's time when it was emitted.
    pub trace: Vec<(Instant, Action)>,
    latest: Epoch,
    outstanding: VecDeque<Action>,
    /// Bytes of transmits not yet answered, oldest first, with their epoch.
    in_transit: VecDeque<(Epoch, Vec<u8>)>,
    peer: Peer,
    /// The host's read buffer: bytes handed to `handle_read` and not used yet.
    rx: Vec<u8>,
    rx_epoch: Epoch,
    /// `rx` holds bytes the session stopped decoding for backpressure.
    rx_blocked: bool,
    consume: bool,
    held: (usize, usize),
    next_payload: u64,
    /// id -> (payload, delivery); a batch's payload is its records.
    sent: BTreeMap<MsgId, (Vec<u8>, Delivery)>,
    /// Wire payload -> the message it belongs to.
    by_payload: BTreeMap<Vec<u8>, MsgId>,
    outcomes: BTreeMap<MsgId, Outcome>,
    /// Times each message reached the peer.
    executed: BTreeMap<MsgId, u32>,
    /// Replies the peer sent for each message, not yet received, and whether each refuses.
    expected: BTreeMap<MsgId, VecDeque<(Vec<u8>, bool)>>,
    /// Messages the peer published: body -> channel.
    published: BTreeMap<Vec<u8>, Vec<u8>>,
    subs: BTreeMap<SubId, Vec<u8>>,
    writes: BTreeMap<MsgId, u32>,
    last_delivered: Option<MsgId>,
    earliest_retry: Option<Instant>,
    skip_backoff: bool,
    closing: Option<(Epoch, Instant)>,
    ended: bool,
    /// The peer sent garbage on some connection: bytes that merge into valid values can
    /// fabricate replies, so "delivered" no longer proves "executed" (the reverse still holds).
    lied: bool,
    /// The current connection and the last instant its peer was heard from (None: reading
    /// paused by us).
    conn: Option<(Epoch, Option<Instant>)>,
}

fn channel_name(n: u8) -> Vec<u8> {
    format!("ch{}", n % 3).into_bytes()
}

impl Run {
    pub fn new(setup: Setup) -> Run {
        let Setup { cfg, kind } = setup;
        Run {
            s: Session::new(cfg.clone(), kind.protocol(), Instant::ZERO)
                .expect("generated configs are valid"),
            cfg,
            kind,
            now: Instant::ZERO,
            trace: Vec::new(),
            latest: Epoch::NONE,
            outstanding: VecDeque::new(),
            in_transit: VecDeque::new(),
            peer: Peer::default(),
            rx: Vec::new(),
            rx_epoch: Epoch::NONE,
            rx_blocked: false,
            consume: true,
            held: (0, 0),
            next_payload: 0,
            sent: BTreeMap::new(),
            by_payload: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            executed: BTreeMap::new(),
            expected: BTreeMap::new(),
            published: BTreeMap::new(),
            subs: BTreeMap::new(),
            writes: BTreeMap::new(),
            last_delivered: None,
            earliest_retry: None,
            skip_backoff: false,
            closing: None,
            ended: false,
            lied: false,
            conn: None,
        }
    }

    fn epoch(&self, sel: EpochSel) -> Epoch {
        match sel {
            EpochSel::Latest => self.latest,
            EpochSel::Previous => Epoch::from_raw(self.latest.get().saturating_sub(1)),
            EpochSel::Raw(r) => Epoch::from_raw(u64::from(r)),
        }
    }

    /// Polls until Wait, checking every action (and encoding every transmit).
    fn drain(&mut self, at: Instant) -> Vec<Action> {
        let mut round = Vec::new();
        for _ in 0..10_000 {
            let a = self.s.poll(at);
            if let Action::Wait { until } = a {
                if !self.ended && self.s.connection().is_none() {
                    assert!(
                        until.is_some(),
                        "an unconnected live session has a deadline"
                    );
                }
                self.check_liveness();
                self.refeed();
                return round;
            }
            self.check(&a);
            self.trace.push((self.s.now(), a.clone()));
            round.push(a);
        }
        panic!("poll never returned Wait");
    }

    /// The wire payloads the session wrote: which messages they are, in order.
    fn written_messages(&mut self, epoch: Epoch, bytes: &[u8]) {
        let mut ids = Vec::new();
        match self.kind {
            Kind::Frames | Kind::Acked => {
                let mut c = LengthCodec::new(256);
                let mut rest = bytes;
                while let Ok(Some((f, n))) = c.decode(rest) {
                    if let Frame::Data(p) = f {
                        ids.push(
                            self.by_payload
                                .get(p)
                                .copied()
                                .expect("written data is ours"),
                        );
                    }
                    rest = &rest[n..];
                }
                assert!(rest.is_empty(), "transmit bytes are whole frames");
            }
            Kind::Resp2 | Kind::Resp3 => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let (_, n) = Value::parse(rest).expect("transmit bytes are whole commands");
                    if let Some(id) = self.by_payload.get(&rest[..n]) {
                        ids.push(*id);
                    }
                    rest = &rest[n..];
                }
            }
            Kind::Nats => {
                for op in nats_ops(bytes) {
                    if let NatsOp::Pub { whole, .. } = op {
                        ids.push(self.by_payload.get(whole).copied().expect("a PUB is ours"));
                    }
                }
            }
        }
        // A batch's messages come together; check order and counts per message.
        let mut last = None;
        for id in ids {
            if last == Some(id) {
                continue;
            }
            assert!(
                !self.outcomes.contains_key(&id),
                "inv4: {id:?} written after its outcome"
            );
            if let Some(l) = last {
                assert!(
                    id > l,
                    "inv4: order broken on {epoch:?}: {id:?} after {l:?}"
                );
            }
            last = Some(id);
            let n = self.writes.entry(id).or_default();
            *n += 1;
            let limit = match self.sent[&id].1 {
                Delivery::AtMostOnce => 1,
                Delivery::Idempotent => 1 + u32::from(self.cfg.max_replays),
            };
            assert!(*n <= limit, "inv4: {id:?} written {n} times");
        }
    }

    fn check(&mut self, a: &Action) {
        let now = self.s.now();
        let cap = self.cfg.backoff.cap;
        match a {
            Action::Resolve { epoch } => {
                assert!(!self.ended, "inv3: resolve after give-up/close");
                assert!(*epoch > self.latest, "epochs only grow");
                self.latest = *epoch;
                if let Some(t) = self.earliest_retry.take() {
                    assert!(
                        self.skip_backoff || now >= t,
                        "inv3: attempt at {now:?} before its backoff deadline {t:?}"
                    );
                }
                if let Some((e, deadline)) = self.closing.take() {
                    assert!(
                        now >= deadline,
                        "inv2: new attempt at {now:?} while {e:?} may still be open (until {deadline:?})"
                    );
                }
                self.skip_backoff = false;
                self.outstanding.push_back(a.clone());
            }
            Action::Dial { epoch, .. } => {
                assert!(!self.ended, "inv3: dial after give-up/close");
                assert_eq!(*epoch, self.latest, "dials use the latest epoch");
                self.outstanding.push_back(a.clone());
            }
            Action::Transmit { epoch } => {
                assert!(!self.ended, "transmit after close");
                assert_eq!(
                    self.s.reading(),
                    Some(*epoch),
                    "inv2: transmit on a stale socket"
                );
                let mut bytes = Vec::new();
                self.s.encode_transmit(&mut bytes);
                self.written_messages(*epoch, &bytes);
                self.in_transit.push_back((*epoch, bytes));
                self.outstanding.push_back(a.clone());
            }
            Action::Close { epoch, .. } => {
                self.in_transit.retain(|(e, _)| e != epoch);
                if *epoch == self.rx_epoch {
                    self.rx.clear();
                    self.rx_blocked = false;
                    self.peer = Peer::default();
                    // Replies the session never read died with the connection.
                    self.expected.clear();
                }
                self.outstanding.push_back(a.clone());
            }
            Action::Notify(n) => self.notified(n, now, cap),
            Action::Wait { .. } => unreachable!(),
            _ => {}
        }
    }

    fn notified(&mut self, n: &Notification, now: Instant, cap: Duration) {
        match n {
            Notification::AttemptFailed {
                next_delay: Some(d),
                ..
            } => {
                // A delay the peer asked for may exceed the cap; none does here.
                assert!(*d <= cap, "inv3: delay {d:?} above cap {cap:?}");
                self.earliest_retry = Some(now + *d);
                self.skip_backoff = false;
            }
            Notification::Disconnected {
                epoch, next_delay, ..
            } => {
                assert_eq!(
                    self.conn.map(|c| c.0),
                    Some(*epoch),
                    "disconnect of a non-current connection"
                );
                self.conn = None;
                if let Some(d) = next_delay {
                    assert!(*d <= cap, "inv3: delay {d:?} above cap {cap:?}");
                    self.earliest_retry = Some(now + *d);
                    self.skip_backoff = false;
                    self.closing = Some((*epoch, now + self.cfg.close_timeout));
                }
            }
            Notification::Connected { epoch, .. } => {
                assert!(self.conn.is_none(), "inv2: two current connections");
                assert_eq!(*epoch, self.latest, "inv2: connected on a stale epoch");
                self.conn = Some((*epoch, Some(now)));
            }
            Notification::ReadPaused { epoch } => {
                if let Some(c) = self.conn.as_mut().filter(|c| c.0 == *epoch) {
                    c.1 = None;
                }
            }
            Notification::ReadResumed { epoch, .. } => {
                if let Some(c) = self.conn.as_mut().filter(|c| c.0 == *epoch) {
                    c.1 = Some(now);
                }
            }
            Notification::GaveUp { .. } => self.ended = true,
            Notification::StateChanged {
                to: State::Closed, ..
            } => {
                self.ended = true;
                self.closing = None;
            }
            Notification::Unsubscribed { id, .. } => {
                self.subs.remove(id);
            }
            Notification::Outcome {
                id,
                outcome,
                payload,
            } => {
                let prev = self.outcomes.insert(*id, *outcome);
                assert!(
                    prev.is_none(),
                    "inv4: {id:?} got a second outcome {outcome:?} after {prev:?}"
                );
                let (orig, _) = &self.sent[id];
                let executed = self.executed.get(id).copied().unwrap_or(0);
                match outcome {
                    Outcome::Delivered => {
                        assert!(payload.is_none());
                        assert!(
                            self.writes.contains_key(id),
                            "inv4: {id:?} delivered unwritten"
                        );
                        if self.kind != Kind::Frames && !self.lied {
                            assert!(executed > 0, "{id:?} delivered but the peer never had it");
                        }
                        if self.kind != Kind::Nats {
                            // One connection at a time answers in order (NATS requests are
                            // answered by key, in any order).
                            if let Some(last) = self.last_delivered {
                                assert!(*id > last, "inv4: delivered out of order");
                            }
                        }
                        self.last_delivered = Some(*id);
                    }
                    Outcome::InDoubt => {
                        assert!(
                            self.writes.contains_key(id),
                            "inv4: {id:?} in doubt, never written"
                        );
                        assert_eq!(payload.as_ref(), Some(orig), "payload handed back");
                    }
                    Outcome::Abandoned(_) => {
                        assert!(
                            !self.writes.contains_key(id),
                            "inv4: {id:?} abandoned after being written"
                        );
                        assert_eq!(executed, 0, "{id:?} abandoned but executed");
                        assert_eq!(payload.as_ref(), Some(orig), "payload handed back");
                    }
                    Outcome::Rejected(_) => {
                        assert_eq!(payload.as_ref(), Some(orig), "payload handed back")
                    }
                }
            }
            _ => {}
        }
    }

    /// Invariant 5: a peer silent for interval + timeout (or the read-idle time) is dead,
    /// unless we are the ones not reading.
    fn check_liveness(&mut self) {
        let Some((epoch, Some(last_read))) = self.conn else {
            return;
        };
        let hb = self
            .cfg
            .heartbeat
            .map(|hb| last_read + hb.interval + hb.timeout);
        let idle = self.cfg.read_idle_timeout.map(|d| last_read + d);
        let deadline = match (hb, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(d) = deadline {
            assert!(
                self.s.now() < d || self.s.connection() != Some(epoch),
                "inv5: silent since {last_read:?}, still connected at {:?} (deadline {d:?})",
                self.s.now()
            );
        }
    }

    fn snapshot(&self) -> impl PartialEq + std::fmt::Debug {
        let mut st = self.s.stats();
        st.stale_inputs = 0;
        (
            self.s.state(),
            self.s.connection(),
            self.s.queue_len(),
            self.s.in_flight(),
            self.s.next_deadline(),
            st,
        )
    }

    pub fn input(&mut self, input: Input<'_>) {
        let epoch = input.epoch();
        let stale = epoch != self.latest;
        let before = stale.then(|| (self.snapshot(), self.s.stats().stale_inputs));
        let was_reading = self.s.reading() == Some(epoch);
        let handled = self.s.handle_input(self.now, input);
        if matches!(input, Input::DialOk { .. }) && !was_reading {
            self.peer_connected(epoch);
        }
        if let (Some((ce, _)), Input::Closed { .. }) = (self.closing, input) {
            if ce == epoch {
                self.closing = None;
            }
        }
        if let Some((snap, stale0)) = before {
            assert_eq!(
                snap,
                self.snapshot(),
                "inv2: stale input {input:?} changed the session"
            );
            if !matches!(input, Input::Closed { .. }) {
                assert_eq!(handled, Handled::Stale);
                assert!(
                    self.s.stats().stale_inputs > stale0,
                    "stale {input:?} not counted"
                );
            }
            let at = self.now;
            for a in self.drain(at) {
                let ok = matches!(a, Action::Close { epoch: e, .. } if e == epoch)
                    || matches!(a, Action::Notify(_));
                assert!(ok, "inv2: stale input {input:?} caused {a:?}");
            }
        } else {
            let at = self.now;
            self.drain(at);
        }
    }

    /// The peer reads bytes the session wrote on `epoch`.
    fn peer_reads(&mut self, epoch: Epoch, bytes: Vec<u8>) {
        if self.s.reading() != Some(epoch) {
            return; // That socket is gone; its bytes went nowhere.
        }
        if self.rx_epoch != epoch {
            self.rx_epoch = epoch;
            self.rx.clear();
            self.rx_blocked = false;
            self.peer = Peer::default();
            self.expected.clear();
        }
        // A batch is written whole in one transmit: it executes once per write.
        let mut seen = BTreeSet::new();
        match self.kind {
            Kind::Frames | Kind::Acked => {
                let mut c = LengthCodec::new(256);
                let mut rest = &bytes[..];
                while let Ok(Some((f, n))) = c.decode(rest) {
                    match f {
                        Frame::Data(p) => {
                            let id = self.by_payload[p];
                            if seen.insert(id) {
                                self.execute(id);
                            }
                            if self.kind == Kind::Acked {
                                let reply = [b"re:", p].concat();
                                self.peer.fifo.push_back(Req::Msg(id, reply));
                            }
                        }
                        Frame::Ping => self.peer.pings += 1,
                        Frame::Pong => {}
                    }
                    rest = &rest[n..];
                }
            }
            Kind::Resp2 | Kind::Resp3 => {
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let (v, n) = Value::parse(rest).expect("whole commands");
                    let whole = rest[..n].to_vec();
                    rest = &rest[n..];
                    let Value::Array(args) = v else {
                        panic!("commands are arrays")
                    };
                    let arg = |i: usize| {
                        args.get(i)
                            .and_then(Value::as_bytes)
                            .unwrap_or(b"")
                            .to_vec()
                    };
                    let name = arg(0).to_ascii_uppercase();
                    let req = match (&name[..], self.by_payload.get(&whole)) {
                        (_, Some(&id)) => {
                            if seen.insert(id) {
                                self.execute(id);
                            }
                            // `ECHO x` and `PING x` both answer `x`, as a bulk string.
                            let x = arg(1);
                            let mut reply = format!("${}\r\n", x.len()).into_bytes();
                            reply.extend_from_slice(&x);
                            reply.extend_from_slice(b"\r\n");
                            Req::Msg(id, reply)
                        }
                        (b"PING", None) => Req::Ping,
                        (b"HELLO", None) => Req::Hello,
                        (b"SUBSCRIBE", None) => Req::Subscribe(arg(1)),
                        (b"UNSUBSCRIBE", None) => Req::Unsubscribe(arg(1)),
                        (other, None) => {
                            panic!("the session wrote {:?}", String::from_utf8_lossy(other))
                        }
                    };
                    self.peer.fifo.push_back(req);
                }
            }
            Kind::Nats => {
                for op in nats_ops(&bytes) {
                    match op {
                        // Not verbose: nothing answers CONNECT, PUB, SUB or UNSUB.
                        NatsOp::Connect => {}
                        NatsOp::Ping => self.peer.fifo.push_back(Req::Ping),
                        NatsOp::Pong => {
                            assert!(self.peer.peer_pings > 0, "a PONG to a PING never sent");
                            self.peer.peer_pings -= 1;
                        }
                        NatsOp::Pub { whole, reply } => {
                            let id = self.by_payload[whole];
                            if seen.insert(id) {
                                self.execute(id);
                            }
                            // A responder answers through the inbox, if it is in place.
                            if let Some(token) = inbox_token(reply) {
                                if self.peer.sids.contains_key(&0) {
                                    self.peer.requests.push((id, token));
                                }
                            }
                        }
                        NatsOp::Sub { subject, sid } => {
                            self.peer.sids.insert(sid, subject.to_vec());
                        }
                        NatsOp::Unsub { sid } => {
                            self.peer.sids.remove(&sid);
                        }
                    }
                }
            }
        }
    }

    /// A NATS server accepted the connection on `epoch`: it speaks first, with `INFO`.
    fn peer_connected(&mut self, epoch: Epoch) {
        if self.kind != Kind::Nats || self.s.reading() != Some(epoch) {
            return;
        }
        self.rx_epoch = epoch;
        self.rx.clear();
        self.rx_blocked = false;
        self.peer = Peer::default();
        self.expected.clear();
        self.peer.to_session.extend_from_slice(
            b"INFO {\"server_id\":\"chk\",\"max_payload\":1048576,\"headers\":true}\r\n",
        );
    }

    /// The NATS peer answers a request it read, chosen by `pick` among those outstanding
    /// (so in any order): with the reply, or with "no responders" when `refuse`.
    fn nats_answer(&mut self, pick: usize, refuse: bool) {
        let (id, token) = self.peer.requests.remove(pick % self.peer.requests.len());
        let subject = format!("{INBOX}.{token}");
        let (out, body) = if refuse {
            let head = b"NATS/1.0 503\r\n\r\n";
            let mut out =
                format!("HMSG {subject} 0 {} {}\r\n", head.len(), head.len()).into_bytes();
            out.extend_from_slice(head);
            out.extend_from_slice(b"\r\n");
            (out, Vec::new())
        } else {
            // The reply names its request, in bytes that look like the protocol.
            let body = format!("re:{}\r\nPONG\r\n+OK\r\nMSG x 1 2", id.get()).into_bytes();
            let mut out = format!("MSG {subject} 0 {}\r\n", body.len()).into_bytes();
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n");
            (out, body)
        };
        self.expected
            .entry(id)
            .or_default()
            .push_back((body, refuse));
        self.peer.to_session.extend_from_slice(&out);
    }

    fn execute(&mut self, id: MsgId) {
        let n = self.executed.entry(id).or_default();
        *n += 1;
        let limit = match self.sent[&id].1 {
            Delivery::AtMostOnce => 1,
            Delivery::Idempotent => 1 + u32::from(self.cfg.max_replays),
        };
        assert!(*n <= limit, "{id:?} executed {n} times by the peer");
    }

    /// The peer answers its oldest request (NATS: that, or a request, by turns).
    fn peer_reply(&mut self, error: bool) {
        if self.kind == Kind::Nats {
            self.peer.requests_first = !self.peer.requests_first;
            let requests = !self.peer.requests.is_empty();
            if requests && (self.peer.requests_first || self.peer.fifo.is_empty()) {
                let pick = self.next_payload as usize;
                self.nats_answer(pick, error);
                return;
            }
        }
        let Some(req) = self.peer.fifo.pop_front() else {
            return;
        };
        let bytes = match req {
            Req::Ping if self.kind == Kind::Nats => b"PONG\r\n".to_vec(),
            Req::Ping => b"+PONG\r\n".to_vec(),
            Req::Hello => b"%1\r\n+server\r\n+redis\r\n".to_vec(),
            Req::Msg(id, reply) => {
                let reply = if error && self.kind.resp() {
                    format!("-ERR for {}\r\n", id.get()).into_bytes()
                } else {
                    reply
                };
                let refused = reply.first() == Some(&b'-');
                self.expected
                    .entry(id)
                    .or_default()
                    .push_back((reply.clone(), refused));
                if self.kind.resp() {
                    reply
                } else {
                    let mut out = Vec::new();
                    LengthCodec::new(256)
                        .encode(Frame::Data(&reply), &mut out)
                        .unwrap();
                    out
                }
            }
            Req::Subscribe(ref ch) | Req::Unsubscribe(ref ch) => {
                let ch = ch.clone();
                let verb: &[u8] = if matches!(req, Req::Subscribe(_)) {
                    self.peer.channels.insert(ch.clone());
                    b"subscribe"
                } else {
                    self.peer.channels.remove(&ch);
                    b"unsubscribe"
                };
                let head = if self.kind == Kind::Resp3 { ">3" } else { "*3" };
                let mut out = format!("{head}\r\n${}\r\n", verb.len()).into_bytes();
                out.extend_from_slice(verb);
                out.extend_from_slice(format!("\r\n${}\r\n", ch.len()).as_bytes());
                out.extend_from_slice(&ch);
                out.extend_from_slice(format!("\r\n:{}\r\n", self.peer.channels.len()).as_bytes());
                out
            }
        };
        self.peer.to_session.extend_from_slice(&bytes);
    }

    /// The peer publishes on channel `n` (if anyone listens), or sends unsolicited data.
    fn peer_message(&mut self, n: u8) {
        self.next_payload += 1;
        let body = format!("+PONG\r\n-ERR {}\r\n", self.next_payload).into_bytes();
        match self.kind {
            Kind::Nats => {
                let ch = channel_name(n);
                let body = [&body[..], b"PING\r\nMSG ch0 1 3\r\n"].concat();
                let sids: Vec<u64> = self
                    .peer
                    .sids
                    .iter()
                    .filter(|(_, subject)| **subject == ch)
                    .map(|(sid, _)| *sid)
                    .collect();
                for sid in sids {
                    // Every other one with headers (HMSG): the payload is what follows them.
                    let ch = String::from_utf8_lossy(&ch);
                    if self.next_payload % 2 == 0 {
                        let head = b"NATS/1.0\r\nK: PING\r\n\r\n";
                        let total = head.len() + body.len();
                        let line = format!("HMSG {ch} {sid} {} {total}\r\n", head.len());
                        self.peer.to_session.extend_from_slice(line.as_bytes());
                        self.peer.to_session.extend_from_slice(head);
                    } else {
                        let line = format!("MSG {ch} {sid} {}\r\n", body.len());
                        self.peer.to_session.extend_from_slice(line.as_bytes());
                    }
                    self.peer.to_session.extend_from_slice(&body);
                    self.peer.to_session.extend_from_slice(b"\r\n");
                }
                self.published.insert(body, ch);
            }
            Kind::Frames => {
                LengthCodec::new(256)
                    .encode(Frame::Data(&body), &mut self.peer.to_session)
                    .unwrap();
            }
            Kind::Acked => {}
            Kind::Resp2 | Kind::Resp3 => {
                let ch = channel_name(n);
                if !self.peer.channels.contains(&ch) {
                    return;
                }
                let head = if self.kind == Kind::Resp3 { ">3" } else { "*3" };
                let mut out = format!("{head}\r\n$7\r\nmessage\r\n${}\r\n", ch.len()).into_bytes();
                out.extend_from_slice(&ch);
                out.extend_from_slice(format!("\r\n${}\r\n", body.len()).as_bytes());
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\r\n");
                self.published.insert(body, ch);
                self.peer.to_session.extend_from_slice(&out);
            }
        }
    }

    /// The peer answers what nobody asked: once every byte is read, the connection must end.
    fn peer_extra(&mut self) {
        let Some(epoch) = self.s.connection() else {
            return;
        };
        let quiet = self.peer.fifo.is_empty()
            && self.in_transit.iter().all(|(e, _)| *e != epoch)
            && !self.peer.garbled
            && self.rx_epoch == epoch;
        if !quiet || self.kind == Kind::Frames {
            return;
        }
        // Everything the session wrote was answered: nothing waits for an in-order reply.
        if self.kind.resp() {
            self.peer.to_session.extend_from_slice(b"+OK\r\n");
        } else if self.kind == Kind::Nats {
            self.peer.to_session.extend_from_slice(b"PONG\r\n");
        } else {
            LengthCodec::new(256)
                .encode(Frame::Data(b"extra"), &mut self.peer.to_session)
                .unwrap();
        }
        // Read it all, taking what is handed out as it comes: with a small inbound bound the
        // session pauses reading after each message, and the `+OK` waits behind them.
        self.consume = true;
        let mut rounds = 0;
        loop {
            let (m, b) = std::mem::take(&mut self.held);
            self.s.inbound_taken(self.now, m, b);
            let at = self.now;
            self.drain(at);
            if self.s.connection() != Some(epoch) {
                return; // Dropped: the reply to nothing was refused (or a deadline due now hit).
            }
            if !self.s.wants_read() {
                return; // Paused for a reason no taking clears: nothing to prove.
            }
            if self.rx.is_empty() && self.peer.to_session.is_empty() {
                break;
            }
            rounds += 1;
            assert!(rounds < 10_000, "the session never finished reading");
            self.feed(0, EpochSel::Latest);
        }
        assert_ne!(
            self.s.connection(),
            Some(epoch),
            "a reply to nothing was accepted"
        );
    }

    /// Feeds up to `n` of the peer's bytes (0: all) to the session, as a host reading a socket.
    fn feed(&mut self, n: usize, sel: EpochSel) {
        let epoch = self.epoch(sel);
        if self.s.reading() != Some(epoch) {
            // Bytes of a socket that is not the current one: stale.
            let before = self.snapshot();
            let used = self.s.handle_read(self.now, epoch, b"x", 1, &mut |_| {
                panic!("inv2: a stale read delivered something")
            });
            assert_eq!(used, 1);
            if self.s.reading() != Some(epoch) {
                assert_eq!(
                    before,
                    self.snapshot(),
                    "inv2: a stale read changed the session"
                );
            }
            let at = self.now;
            self.drain(at);
            return;
        }
        if epoch != self.rx_epoch {
            return; // The peer has sent nothing on this connection.
        }
        if !self.s.wants_read() {
            return; // Paused: the bytes wait in the kernel.
        }
        let take = if n == 0 {
            self.peer.to_session.len()
        } else {
            n.min(self.peer.to_session.len())
        };
        let fresh: Vec<u8> = self.peer.to_session.drain(..take).collect();
        if fresh.is_empty() && self.rx.is_empty() {
            return;
        }
        if !fresh.is_empty() {
            if let Some(c) = self.conn.as_mut().filter(|c| c.0 == epoch && c.1.is_some()) {
                c.1 = Some(self.now.max(self.s.now()));
            }
        }
        self.rx.extend_from_slice(&fresh);
        self.read(epoch, fresh.len());
    }

    /// Passes the host's buffer to the session and checks what it hands out.
    fn read(&mut self, epoch: Epoch, fresh: usize) {
        let rx = std::mem::take(&mut self.rx);
        let mut got = Vec::new();
        let used = self
            .s
            .handle_read(self.now, epoch, &rx, fresh, &mut |r| match r {
                Received::Reply { id, body, refused } => {
                    got.push((Some(id), None, body.to_vec(), refused))
                }
                Received::Message { sub, body, .. } => got.push((None, sub, body.to_vec(), false)),
                _ => unreachable!("no other unit exists"),
            });
        assert!(used <= rx.len());
        self.rx = rx[used..].to_vec();
        self.rx_blocked = !self.rx.is_empty() && !self.s.wants_read();
        for (id, sub, body, refused) in got {
            self.held.0 += 1;
            self.held.1 += body.len();
            match id {
                Some(id) => {
                    assert!(
                        !self.outcomes.contains_key(&id),
                        "a reply for {id:?} after its outcome"
                    );
                    if self.peer.garbled {
                        // Corrupted bytes can merge into another value: nothing to compare.
                        continue;
                    }
                    let want = self
                        .expected
                        .get_mut(&id)
                        .and_then(VecDeque::pop_front)
                        .unwrap_or_else(|| {
                            panic!(
                                "a reply credited to {id:?}, which the peer never answered: {:?}",
                                String::from_utf8_lossy(&body)
                            )
                        });
                    assert_eq!(
                        body,
                        want.0,
                        "a reply credited to the wrong request: {id:?} got {:?}",
                        String::from_utf8_lossy(&body)
                    );
                    assert_eq!(refused, want.1, "{id:?}: refused or not as the peer said");
                }
                None if self.peer.garbled => {}
                None => {
                    if let Some(sub) = sub {
                        let ch = self
                            .subs
                            .get(&sub)
                            .expect("a message for a live subscription");
                        assert_eq!(
                            self.published.get(&body),
                            Some(ch),
                            "a message on the wrong subscription"
                        );
                    }
                }
            }
        }
        if self.consume {
            let (m, b) = std::mem::take(&mut self.held);
            self.s.inbound_taken(self.now, m, b);
        }
        let at = self.now;
        self.drain(at);
    }

    /// After a resume: bytes kept back are decoded first.
    fn refeed(&mut self) {
        if self.rx_blocked && self.s.wants_read() && self.s.reading() == Some(self.rx_epoch) {
            self.rx_blocked = false;
            let epoch = self.rx_epoch;
            self.read(epoch, 0);
        }
    }

    fn respond(&mut self) {
        let Some(a) = self.outstanding.pop_front() else {
            return;
        };
        match a {
            Action::Resolve { epoch } => self.input(Input::Resolved {
                epoch,
                addrs: &ADDRS,
            }),
            Action::Dial { epoch, .. } => self.input(Input::DialOk { epoch }),
            Action::Transmit { epoch } => {
                if let Some(i) = self.in_transit.iter().position(|(e, _)| *e == epoch) {
                    let (_, bytes) = self.in_transit.remove(i).expect("found");
                    self.peer_reads(epoch, bytes);
                }
                self.input(Input::Written { epoch });
            }
            Action::Close { epoch, .. } => self.input(Input::Closed { epoch }),
            _ => {}
        }
    }
}

impl Run {
    fn payload(&mut self, len: u8, marker: u8) -> Vec<u8> {
        self.next_payload += 1;
        let n = self.next_payload;
        match self.kind {
            Kind::Frames | Kind::Acked => {
                let mut p = n.to_be_bytes().to_vec();
                p.resize(8 + usize::from(len), marker);
                p
            }
            Kind::Resp2 | Kind::Resp3 => {
                // Data that looks like the protocol's own keywords.
                let mut arg = format!("+PONG\r\n-ERR x\r\n${n}\r\n").into_bytes();
                arg.resize(arg.len() + usize::from(len), marker);
                let verb = if n % 3 == 0 { "PING" } else { "ECHO" };
                cmd([verb.as_bytes(), &arg])
            }
            Kind::Nats => {
                // A payload that looks like the protocol; every third one a request.
                let mut arg = format!("PING\r\n+OK\r\n-ERR x\r\nMSG a 1 {n}\r\n").into_bytes();
                arg.resize(arg.len() + usize::from(len), marker);
                let subject = format!("svc.{}", n % 3);
                if n % 3 == 0 {
                    Nats::new()
                        .with_inbox(INBOX)
                        .request(n, &subject, &arg)
                        .expect("a valid request")
                } else {
                    nats::publish(&subject, &arg).expect("a valid publish")
                }
            }
        }
    }

    fn after_enqueue(&mut self, accepted: bool) {
        let at = self.now;
        let round = self.drain(at);
        if !accepted {
            let evicted = round
                .iter()
                .any(|a| matches!(a, Action::Notify(Notification::Outcome { .. })));
            assert!(
                !evicted,
                "inv4: messages evicted for one that was then rejected"
            );
        }
    }

    pub fn apply(&mut self, op: &Op) {
        match *op {
            Op::Advance(d) => {
                self.now = self.now + d;
                let at = self.now;
                self.drain(at);
            }
            Op::Jump => {
                if let Some(t) = self.s.next_deadline() {
                    self.now = self.now.max(t);
                }
                let at = self.now;
                self.drain(at);
            }
            Op::Backwards(d) => {
                let at =
                    Instant::from_nanos(self.now.as_nanos().saturating_sub(d.as_nanos() as u64));
                self.drain(at);
            }
            Op::Respond => self.respond(),
            Op::Converse(n) => {
                for round in 0..1 + n % 4 {
                    while !self.outstanding.is_empty() {
                        self.respond();
                    }
                    while let Some((epoch, bytes)) = self.in_transit.pop_front() {
                        self.peer_reads(epoch, bytes);
                    }
                    while !self.peer.fifo.is_empty() || !self.peer.requests.is_empty() {
                        self.peer_reply(n & 1 == 1 && round == 0);
                    }
                    if self.kind != Kind::Resp2 && self.kind != Kind::Resp3 {
                        while self.peer.pings > 0 {
                            self.apply(&Op::PeerPong);
                        }
                    }
                    self.feed(0, EpochSel::Latest);
                }
            }
            Op::Deliver => {
                if let Some((epoch, bytes)) = self.in_transit.pop_front() {
                    self.peer_reads(epoch, bytes);
                }
            }
            Op::PeerReply(n, error) => {
                for _ in 0..n {
                    self.peer_reply(error);
                }
            }
            Op::PeerPong => {
                if self.kind != Kind::Nats && !self.kind.resp() && self.peer.pings > 0 {
                    self.peer.pings -= 1;
                    LengthCodec::new(256)
                        .encode(Frame::Pong, &mut self.peer.to_session)
                        .unwrap();
                }
            }
            Op::PeerPing if self.kind == Kind::Nats => {
                self.peer.peer_pings += 1;
                self.peer.to_session.extend_from_slice(b"PING\r\n");
            }
            Op::PeerPing => {
                if !self.kind.resp() {
                    LengthCodec::new(256)
                        .encode(Frame::Ping, &mut self.peer.to_session)
                        .unwrap();
                }
            }
            Op::PeerMessage(n) => self.peer_message(n),
            Op::PeerExtra => self.peer_extra(),
            Op::Garbage(b) => {
                self.peer.garbled = true;
                self.lied = true;
                self.peer.to_session.push(b);
            }
            Op::Feed(n, sel) => self.feed(usize::from(n), sel),
            Op::Consume(on) => {
                self.consume = on;
                if on {
                    let (m, b) = std::mem::take(&mut self.held);
                    self.s.inbound_taken(self.now, m, b);
                    let at = self.now;
                    self.drain(at);
                }
            }
            Op::Input(ev, sel) => {
                let epoch = self.epoch(sel);
                let n = match ev {
                    Ev::Resolved(n) => usize::from(n),
                    _ => 0,
                };
                let input = match ev {
                    Ev::Resolved(_) => Input::Resolved {
                        epoch,
                        addrs: &ADDRS[..n],
                    },
                    Ev::ResolveFailed(error) => Input::ResolveFailed { epoch, error },
                    Ev::DialOk => Input::DialOk { epoch },
                    Ev::DialFailed(error) => Input::DialFailed { epoch, error },
                    Ev::Written => Input::Written { epoch },
                    Ev::Eof => Input::Eof { epoch },
                    Ev::IoError(error) => Input::IoError { epoch, error },
                    Ev::Closed => Input::Closed { epoch },
                };
                self.input(input);
            }
            Op::Enqueue(len, delivery) => {
                let p = self.payload(len, b'.');
                let accepted = match self.s.enqueue(self.now, p.clone(), delivery) {
                    Ok(id) => {
                        assert!(!self.ended, "enqueue accepted after close");
                        assert!(self.sent.insert(id, (p.clone(), delivery)).is_none());
                        self.by_payload.insert(p, id);
                        true
                    }
                    Err(r) => {
                        assert_eq!(r.payload, p, "rejection hands the payload back");
                        false
                    }
                };
                self.after_enqueue(accepted);
            }
            Op::EnqueueBatch(n, len, delivery) => {
                let count = usize::from(n) % 5;
                let mut batch = Batch::new();
                let mut frames = Vec::new();
                for _ in 0..count {
                    let p = self.payload(len, b',');
                    batch.push(&p);
                    frames.push(p);
                }
                let records = batch.clone().into_vec();
                let accepted = match self.s.enqueue_batch(self.now, batch, delivery) {
                    Ok(id) => {
                        assert!(!self.ended, "enqueue accepted after close");
                        assert!(count > 0, "an empty batch was accepted");
                        assert!(self.sent.insert(id, (records, delivery)).is_none());
                        for p in frames {
                            self.by_payload.insert(p, id);
                        }
                        true
                    }
                    Err(r) => {
                        assert_eq!(r.payload, records, "rejection hands the batch back");
                        if count == 0 && !self.ended {
                            assert!(matches!(
                                r.reason,
                                RejectReason::EmptyBatch | RejectReason::Closed
                            ));
                        }
                        false
                    }
                };
                self.after_enqueue(accepted);
            }
            Op::Subscribe(n) => {
                let ch = channel_name(n);
                let spec = match self.kind {
                    Kind::Nats => nats::subscription(&String::from_utf8_lossy(&ch), None),
                    _ => resp::channel(&ch),
                };
                if let Ok(id) = self.s.subscribe(self.now, spec) {
                    assert!(
                        self.kind.resp() || self.kind == Kind::Nats,
                        "only RESP and NATS have subscriptions here"
                    );
                    self.subs.insert(id, ch);
                }
                let at = self.now;
                self.drain(at);
            }
            Op::Unsubscribe(n) => {
                if let Some(id) = self.subs.keys().nth(usize::from(n)).copied() {
                    assert!(self.s.unsubscribe(self.now, id));
                    // Nothing more is delivered for it, even before the peer is told.
                    self.subs.remove(&id);
                }
                let at = self.now;
                self.drain(at);
            }
            Op::CloseGraceful(drain) => {
                self.s.close(self.now, CloseMode::Graceful { drain });
                let at = self.now;
                self.drain(at);
            }
            Op::CloseImmediate => {
                self.s.close(self.now, CloseMode::Immediate);
                let at = self.now;
                self.drain(at);
            }
            Op::ReconnectNow => {
                self.skip_backoff = true;
                self.s.reconnect_now(self.now);
                let at = self.now;
                self.drain(at);
            }
        }
    }

    /// Closes the session and checks that every accepted message ended exactly once, and
    /// that what the peer executed fits what the session reported.
    pub fn finish(&mut self) {
        self.s.close(self.now, CloseMode::Immediate);
        let at = self.now;
        self.drain(at);
        assert_eq!(self.s.state(), State::Closed);
        assert_eq!(self.s.queue_len(), 0);
        assert_eq!(self.s.queue_bytes(), 0);
        let st = self.s.stats();
        let count =
            |f: fn(&Outcome) -> bool| self.outcomes.values().filter(|o| f(o)).count() as u64;
        assert_eq!(st.delivered, count(|o| *o == Outcome::Delivered));
        assert_eq!(st.in_doubt, count(|o| *o == Outcome::InDoubt));
        assert_eq!(st.abandoned, count(|o| matches!(o, Outcome::Abandoned(_))));
        let (mut delivered, mut doubt, mut executed) = (0, 0, 0);
        for (id, (_, d)) in &self.sent {
            let outcome = self
                .outcomes
                .get(id)
                .unwrap_or_else(|| panic!("inv4: {id:?} never got an outcome"));
            if *d == Delivery::AtMostOnce {
                let e = self.executed.get(id).copied().unwrap_or(0);
                executed += e;
                match outcome {
                    Outcome::Delivered => delivered += 1,
                    Outcome::InDoubt => doubt += 1,
                    _ => assert_eq!(e, 0, "{id:?} ended {outcome:?} but the peer executed it"),
                }
            }
        }
        if self.kind != Kind::Frames {
            assert!(
                (self.lied || delivered <= executed) && executed <= delivered + doubt,
                "executed {executed} not within [delivered {delivered}, + in doubt {doubt}]"
            );
        }
        assert_eq!(self.s.poll(at), Action::Wait { until: None });
    }
}

/// Runs `data` through every check, twice, and compares the traces (determinism).
pub fn run(data: &[u8]) {
    let (setup, ops) = decode(data);
    let trace = run_ops(setup.clone(), &ops);
    let again = run_ops(setup, &ops);
    assert!(trace == again, "inv6: same inputs, different actions");
}

pub fn run_ops(setup: Setup, ops: &[Op]) -> Vec<(Instant, Action)> {
    let mut r = Run::new(setup);
    let at = r.now;
    r.drain(at);
    for op in ops {
        r.apply(op);
    }
    r.finish();
    r.trace
}
