//! An invariant-checking driver shared by the property tests and the `session` fuzz target.
//!
//! Input is plain bytes: the first bytes pick a configuration, the rest decode into a sequence
//! of operations (events with current, old or made-up epochs, user commands, time steps,
//! "answer the adapter's oldest request"). `run` applies them and asserts, after every
//! step, the invariants of DESIGN.md; it panics with a message naming the broken one.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

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

const ADDRS: [SocketAddr; 3] = [
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1),
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2),
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 3),
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

/// A configuration chosen by 12 bytes; always valid.
pub fn config(b: &mut Bytes<'_>) -> Config {
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
    let mut cfg = Config::default()
        .with_backoff(backoff)
        .with_give_up(give_up)
        .with_heartbeat(heartbeat)
        .with_stable_after(ms(u64::from(t % 16) * 250))
        .with_connect_timeout(ms(1 + u64::from(t) * 10))
        .with_close_timeout(ms(1 + u64::from(b.u8()) * 10))
        .with_read_idle_timeout((flags & 4 != 0).then(|| ms(1 + u64::from(b.u8()) * 50)))
        .with_write_timeout((flags & 8 != 0).then(|| ms(1 + u64::from(b.u8()) * 50)))
        .with_acks(if flags & 16 != 0 {
            AckMode::InOrder
        } else {
            AckMode::None
        })
        .with_max_replays(b.u8() % 4)
        .with_queue(QueueLimits {
            max_messages: 1 + usize::from(flags >> 5),
            max_bytes: 64,
            max_message: 32,
            overflow: if flags & 32 != 0 {
                Overflow::EvictOldest
            } else {
                Overflow::Reject
            },
        })
        .with_seed(u64::from(b.u16()));
    cfg.batch_messages = 1 + usize::from(b.u8() % 4);
    cfg.batch_bytes = 1 + usize::from(b.u8() % 64);
    cfg
}

/// One step of input.
#[derive(Clone, Debug)]
pub enum Op {
    Advance(Duration),
    /// Jump to the session's next deadline.
    Jump,
    /// Poll with an instant this far in the past.
    Backwards(Duration),
    Event(Ev, EpochSel),
    /// Answer the oldest outstanding Resolve / Dial / Transmit / Close as a healthy network would.
    Respond,
    Enqueue(u8, Delivery),
    /// A batch of `1 + n % 4` messages (0 makes an empty batch, which is refused).
    EnqueueBatch(u8, u8, Delivery),
    CloseGraceful(Duration),
    CloseImmediate,
    ReconnectNow,
    Timer,
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
    BytesRead(usize),
    Pong,
    PeerPing,
    Written,
    Acked(usize),
    Eof,
    IoError(NetError),
    Protocol,
    Closed,
}

pub fn op(b: &mut Bytes<'_>) -> Op {
    let k = b.u8();
    match k % 32 {
        0..=3 => Op::Advance(ms(u64::from(b.u8()) * 4)),
        4 => Op::Advance(ms(u64::from(b.u16()) * 8)),
        5..=7 => Op::Jump,
        8 if k >= 224 => Op::Advance(Duration::MAX),
        8 => Op::Backwards(ms(u64::from(b.u8()) * 10)),
        9..=14 => Op::Respond,
        15..=16 => Op::Enqueue(b.u8() % 40, Delivery::AtMostOnce),
        17 => Op::Enqueue(b.u8() % 40, Delivery::Idempotent),
        18 => {
            if k & 32 != 0 {
                Op::CloseGraceful(ms(u64::from(b.u8()) * 20))
            } else {
                Op::ReconnectNow
            }
        }
        19 if k >= 224 => Op::CloseImmediate,
        19 => Op::Timer,
        _ => {
            let sel = match b.u8() {
                0..=199 => EpochSel::Latest,
                200..=239 => EpochSel::Previous,
                r => EpochSel::Raw(r % 8),
            };
            let x = b.u8();
            let err = ERRORS[usize::from(x) % ERRORS.len()];
            let ev = match k % 32 - 20 {
                0 => Ev::Resolved(x % 4),
                1 => Ev::ResolveFailed(err),
                2 => Ev::DialOk,
                3 => Ev::DialFailed(err),
                4 => Ev::BytesRead(if x == 255 {
                    usize::MAX
                } else {
                    usize::from(x % 4)
                }),
                5 => Ev::Pong,
                6 => Ev::PeerPing,
                7 => Ev::Written,
                8 => Ev::Acked(usize::from(x % 4)),
                9 => match x % 3 {
                    0 => Ev::Eof,
                    1 => Ev::IoError(err),
                    _ => Ev::Protocol,
                },
                10 => Ev::Closed,
                _ => {
                    let d = if x & 1 == 0 {
                        Delivery::AtMostOnce
                    } else {
                        Delivery::Idempotent
                    };
                    return Op::EnqueueBatch(x >> 1 & 3, b.u8() % 12, d);
                }
            };
            Op::Event(ev, sel)
        }
    }
}

/// Decodes a whole input into a configuration and operations.
pub fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let mut b = Bytes(data);
    let cfg = config(&mut b);
    let mut ops = Vec::new();
    while !b.is_empty() && ops.len() < 2000 {
        ops.push(op(&mut b));
    }
    (cfg, ops)
}

/// The checking driver.
pub struct Run {
    pub s: Session,
    cfg: Config,
    now: Instant,
    /// Every action, with the session's time when it was emitted.
    pub trace: Vec<(Instant, Action)>,
    latest: Epoch,
    outstanding: VecDeque<Action>,
    next_payload: u64,
    /// id -> (payload, delivery); a batch's payload is its records.
    sent: BTreeMap<MsgId, (Vec<u8>, Delivery)>,
    /// A batch's messages, in order.
    batches: BTreeMap<MsgId, Vec<Vec<u8>>>,
    by_payload: BTreeMap<Vec<u8>, MsgId>,
    outcomes: BTreeMap<MsgId, Outcome>,
    writes: BTreeMap<MsgId, u32>,
    last_delivered: Option<MsgId>,
    last_written: Option<(Epoch, MsgId)>,
    earliest_retry: Option<Instant>,
    skip_backoff: bool,
    closing: Option<(Epoch, Instant)>,
    ended: bool,
    conn: Option<(Epoch, Instant)>,
}

impl Run {
    pub fn new(cfg: Config) -> Run {
        Run {
            s: Session::new(cfg.clone(), Instant::ZERO).expect("generated configs are valid"),
            cfg,
            now: Instant::ZERO,
            trace: Vec::new(),
            latest: Epoch::NONE,
            outstanding: VecDeque::new(),
            next_payload: 0,
            sent: BTreeMap::new(),
            batches: BTreeMap::new(),
            by_payload: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            writes: BTreeMap::new(),
            last_delivered: None,
            last_written: None,
            earliest_retry: None,
            skip_backoff: false,
            closing: None,
            ended: false,
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

    /// Polls until Wait, checking every action.
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
                return round;
            }
            self.check(&a);
            self.trace.push((self.s.now(), a.clone()));
            round.push(a);
        }
        panic!("poll never returned Wait");
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
            Action::Transmit {
                epoch, messages, ..
            } => {
                assert!(!self.ended, "transmit after close");
                assert_eq!(
                    self.conn.map(|c| c.0),
                    Some(*epoch),
                    "inv2: transmit on a connection that is not current"
                );
                let payloads: Vec<Vec<u8>> =
                    self.s.transmit_payloads().map(<[u8]>::to_vec).collect();
                // Group the wire payloads by message: a batch's messages come together.
                let mut groups: Vec<(MsgId, Vec<Vec<u8>>)> = Vec::new();
                for p in payloads {
                    let id = self.by_payload[&p];
                    match groups.last_mut() {
                        Some((last, frames)) if *last == id => frames.push(p),
                        _ => groups.push((id, vec![p])),
                    }
                }
                assert_eq!(groups.len(), *messages);
                for (id, frames) in groups {
                    match self.batches.get(&id) {
                        Some(all) => assert_eq!(&frames, all, "a batch is written whole, in order"),
                        None => assert_eq!(frames.len(), 1, "a message written twice in a row"),
                    }
                    assert!(
                        !self.outcomes.contains_key(&id),
                        "inv4: {id:?} written after its outcome"
                    );
                    if let Some((e, last)) = self.last_written {
                        if e == *epoch {
                            assert!(
                                id > last,
                                "inv4: order broken on {e:?}: {id:?} after {last:?}"
                            );
                        }
                    }
                    self.last_written = Some((*epoch, id));
                    let n = self.writes.entry(id).or_default();
                    *n += 1;
                    let limit = match self.sent[&id].1 {
                        Delivery::AtMostOnce => 1,
                        Delivery::Idempotent => 1 + u32::from(self.cfg.max_replays),
                    };
                    assert!(*n <= limit, "inv4: {id:?} written {n} times");
                }
                self.outstanding.push_back(a.clone());
            }
            Action::Close { .. } => self.outstanding.push_back(a.clone()),
            Action::Notify(n) => match n {
                Notification::AttemptFailed {
                    next_delay: Some(d),
                    ..
                } => {
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
                    self.conn = Some((*epoch, now));
                }
                Notification::GaveUp { .. } => self.ended = true,
                Notification::StateChanged {
                    to: State::Closed, ..
                } => {
                    self.ended = true;
                    self.closing = None;
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
                    match outcome {
                        Outcome::Delivered => {
                            assert!(payload.is_none());
                            assert!(
                                self.writes.contains_key(id),
                                "inv4: {id:?} delivered unwritten"
                            );
                            if let Some(last) = self.last_delivered {
                                assert!(*id > last, "inv4: delivered out of order");
                            }
                            self.last_delivered = Some(*id);
                        }
                        Outcome::InDoubt => {
                            assert!(
                                self.writes.contains_key(id),
                                "inv4: {id:?} in doubt but never written"
                            );
                            assert_eq!(payload.as_ref(), Some(orig), "payload handed back");
                        }
                        Outcome::Abandoned(_) => {
                            assert!(
                                !self.writes.contains_key(id),
                                "inv4: {id:?} abandoned after being written (it is in doubt)"
                            );
                            assert_eq!(payload.as_ref(), Some(orig), "payload handed back");
                        }
                        Outcome::Rejected(_) => {
                            assert_eq!(payload.as_ref(), Some(orig), "payload handed back")
                        }
                    }
                }
                _ => {}
            },
            Action::Wait { .. } => unreachable!(),
            _ => {}
        }
    }

    /// Invariant 5: a peer silent for interval + timeout (or the read-idle time) is dead.
    fn check_liveness(&mut self) {
        let Some((epoch, last_read)) = self.conn else {
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
        st.stale_events = 0;
        (
            self.s.state(),
            self.s.connection(),
            self.s.queue_len(),
            self.s.in_flight(),
            self.s.next_deadline(),
            st,
        )
    }

    pub fn handle(&mut self, ev: Event<'_>) {
        let epoch = ev.epoch();
        let stale = epoch.is_some_and(|e| e != self.latest);
        let before = stale.then(|| (self.snapshot(), self.s.stats().stale_events));
        self.s.handle(self.now, ev);
        if let Some(e) = epoch {
            if let Some((c, last)) = &mut self.conn {
                let live = matches!(ev, Event::Pong { .. } | Event::PeerPing { .. })
                    || matches!(ev, Event::BytesRead { len, .. } if len > 0);
                if *c == e && live && self.s.connection() == Some(e) {
                    *last = self.s.now();
                }
            }
            if let (Some((ce, _)), Event::Closed { .. }) = (self.closing, ev) {
                if ce == e {
                    self.closing = None;
                }
            }
        }
        if let Some((snap, stale0)) = before {
            assert_eq!(
                snap,
                self.snapshot(),
                "inv2: stale event {ev:?} changed the session"
            );
            if !matches!(ev, Event::Closed { .. }) {
                assert!(
                    self.s.stats().stale_events > stale0,
                    "stale {ev:?} not counted"
                );
            }
            let at = self.now;
            for a in self.drain(at) {
                let ok = matches!(a, Action::Close { epoch: e, .. } if Some(e) == epoch)
                    || matches!(a, Action::Notify(_));
                assert!(ok, "inv2: stale event {ev:?} caused {a:?}");
            }
        } else {
            let at = self.now;
            self.drain(at);
        }
    }

    fn respond(&mut self) {
        let Some(a) = self.outstanding.pop_front() else {
            return;
        };
        match a {
            Action::Resolve { epoch } => self.handle(Event::Resolved {
                epoch,
                addrs: &ADDRS,
            }),
            Action::Dial { epoch, .. } => self.handle(Event::DialOk { epoch }),
            Action::Transmit { epoch, .. } => self.handle(Event::Written { epoch }),
            Action::Close { epoch, .. } => self.handle(Event::Closed { epoch }),
            _ => {}
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
            Op::Event(ev, sel) => {
                let epoch = self.epoch(sel);
                let n = match ev {
                    Ev::Resolved(n) => usize::from(n),
                    _ => 0,
                };
                let event = match ev {
                    Ev::Resolved(_) => Event::Resolved {
                        epoch,
                        addrs: &ADDRS[..n],
                    },
                    Ev::ResolveFailed(error) => Event::ResolveFailed { epoch, error },
                    Ev::DialOk => Event::DialOk { epoch },
                    Ev::DialFailed(error) => Event::DialFailed { epoch, error },
                    Ev::BytesRead(len) => Event::BytesRead { epoch, len },
                    Ev::Pong => Event::Pong { epoch },
                    Ev::PeerPing => Event::PeerPing { epoch },
                    Ev::Written => Event::Written { epoch },
                    Ev::Acked(count) => Event::Acked { epoch, count },
                    Ev::Eof => Event::Eof { epoch },
                    Ev::IoError(error) => Event::IoError { epoch, error },
                    Ev::Protocol => Event::ProtocolError {
                        epoch,
                        error: FrameError::Malformed { reason: "fuzz" },
                    },
                    Ev::Closed => Event::Closed { epoch },
                };
                self.handle(event);
            }
            Op::Enqueue(len, delivery) => {
                let mut p = self.next_payload.to_be_bytes().to_vec();
                self.next_payload += 1;
                p.resize(8 + usize::from(len), b'.');
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
            Op::EnqueueBatch(n, len, delivery) => {
                let count = if n == 0 {
                    0
                } else {
                    usize::from(n) % 4 + usize::from(n > 3)
                };
                let mut batch = Batch::new();
                let mut frames = Vec::new();
                for _ in 0..count {
                    let mut p = self.next_payload.to_be_bytes().to_vec();
                    self.next_payload += 1;
                    p.resize(8 + usize::from(len), b',');
                    batch.push(&p);
                    frames.push(p);
                }
                assert_eq!(batch.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(), frames);
                let records = batch.clone().into_vec();
                let accepted = match self.s.enqueue_batch(self.now, batch, delivery) {
                    Ok(id) => {
                        assert!(!self.ended, "enqueue accepted after close");
                        assert!(count > 0, "an empty batch was accepted");
                        assert!(self.sent.insert(id, (records, delivery)).is_none());
                        for p in &frames {
                            self.by_payload.insert(p.clone(), id);
                        }
                        self.batches.insert(id, frames);
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
            Op::Timer => self.handle(Event::Timer),
        }
    }

    /// Closes the session and checks that every accepted message ended exactly once.
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
        for id in self.sent.keys() {
            assert!(
                self.outcomes.contains_key(id),
                "inv4: {id:?} never got an outcome"
            );
        }
        assert_eq!(self.s.poll(at), Action::Wait { until: None });
    }
}

/// Runs `data` through every check, twice, and compares the traces (determinism).
pub fn run(data: &[u8]) {
    let (cfg, ops) = decode(data);
    let trace = run_ops(cfg.clone(), &ops);
    let again = run_ops(cfg, &ops);
    assert!(trace == again, "inv6: same inputs, different actions");
}

pub fn run_ops(cfg: Config, ops: &[Op]) -> Vec<(Instant, Action)> {
    let mut r = Run::new(cfg);
    let at = r.now;
    r.drain(at);
    for op in ops {
        r.apply(op);
    }
    r.finish();
    r.trace
}
