//! A tiny host for tests: records every action, jumps virtual time to deadlines, and speaks
//! length-delimited frames for the peer (a PONG, a PING, replies: the bytes a peer would send,
//! through the session's real read path).
#![allow(dead_code)]

pub mod check;

use std::net::SocketAddr;

pub use redial_core::Addr;
use std::time::Duration;

use redial_core::*;

pub const ADDRS: [Addr; 2] = [
    Addr::Ip(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        7000,
    )),
    Addr::Ip(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        7001,
    )),
];

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn at(n_ms: u64) -> Instant {
    Instant::from_millis(n_ms)
}

/// What the tests say happened; socket inputs go to `handle_input`, the peer's traffic
/// becomes the bytes a length-framed peer would send.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Resolved {
        epoch: Epoch,
        addrs: &'a [Addr],
    },
    ResolveFailed {
        epoch: Epoch,
        error: NetError,
    },
    DialOk {
        epoch: Epoch,
    },
    DialFailed {
        epoch: Epoch,
        error: NetError,
    },
    /// Bytes that complete nothing yet (they prove the peer alive).
    BytesRead {
        epoch: Epoch,
        len: usize,
    },
    /// The peer answers our PING.
    Pong {
        epoch: Epoch,
    },
    /// The peer sends its PING.
    PeerPing {
        epoch: Epoch,
    },
    Written {
        epoch: Epoch,
    },
    /// The peer replies to the next `count` messages (in-order acks).
    Acked {
        epoch: Epoch,
        count: usize,
    },
    Eof {
        epoch: Epoch,
    },
    IoError {
        epoch: Epoch,
        error: NetError,
    },
    Closed {
        epoch: Epoch,
    },
}

impl Event<'_> {
    pub fn epoch(&self) -> Option<Epoch> {
        match *self {
            Event::Resolved { epoch, .. }
            | Event::ResolveFailed { epoch, .. }
            | Event::DialOk { epoch }
            | Event::DialFailed { epoch, .. }
            | Event::BytesRead { epoch, .. }
            | Event::Pong { epoch }
            | Event::PeerPing { epoch }
            | Event::Written { epoch }
            | Event::Acked { epoch, .. }
            | Event::Eof { epoch }
            | Event::IoError { epoch, .. }
            | Event::Closed { epoch } => Some(epoch),
        }
    }
}

/// A configuration and whether the peer confirms messages (one reply each, in order).
pub struct TestCfg {
    pub cfg: Config,
    pub acks: AckMode,
}

impl From<Config> for TestCfg {
    fn from(cfg: Config) -> Self {
        TestCfg {
            cfg,
            acks: AckMode::None,
        }
    }
}

/// `cfg` with a peer that confirms every message with a reply, in order.
pub fn acked(cfg: Config) -> TestCfg {
    TestCfg {
        cfg,
        acks: AckMode::InOrder,
    }
}

/// The frames a length-framed peer sends.
pub fn frame(f: Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    LengthCodec::default().encode(f, &mut out).unwrap();
    out
}

/// What one transmit carried: (pongs, ping, data payloads).
pub fn parse_transmit(bytes: &[u8]) -> (u8, bool, Vec<Vec<u8>>) {
    let mut c = LengthCodec::default();
    let (mut pongs, mut ping, mut data) = (0, false, Vec::new());
    let mut rest = bytes;
    while let Some((f, n)) = c.decode(rest).unwrap() {
        match f {
            Frame::Pong => pongs += 1,
            Frame::Ping => ping = true,
            Frame::Data(d) => data.push(d.to_vec()),
        }
        rest = &rest[n..];
    }
    assert!(rest.is_empty(), "whole frames");
    (pongs, ping, data)
}

pub struct H {
    pub s: Session<Framed<LengthCodec>>,
    /// The bytes of every transmit, by the index of its action in `log`.
    pub sent: std::collections::BTreeMap<usize, Vec<u8>>,
    /// Replies and messages the session handed out.
    pub received: Vec<(Option<MsgId>, Vec<u8>)>,
    pub now: Instant,
    pub wait: Option<Instant>,
    /// Every action ever emitted, with the time it was emitted.
    pub log: Vec<(Instant, Action)>,
    /// Index into `log` of the first action not yet taken by `take`.
    cursor: usize,
    jumps: u32,
}

impl H {
    pub fn new(cfg: impl Into<TestCfg>) -> H {
        let TestCfg { cfg, acks } = cfg.into();
        let proto = Framed::new(LengthCodec::default()).with_acks(acks);
        H {
            s: Session::new(cfg, proto, Instant::ZERO).unwrap(),
            sent: Default::default(),
            received: Vec::new(),
            now: Instant::ZERO,
            wait: None,
            log: Vec::new(),
            cursor: 0,
            jumps: 0,
        }
    }

    /// Polls until Wait; returns the actions of this round (without the Wait).
    pub fn poll(&mut self) -> Vec<&Action> {
        let start = self.log.len();
        loop {
            match self.s.poll(self.now) {
                Action::Wait { until } => {
                    self.wait = until;
                    break;
                }
                a @ Action::Transmit { .. } => {
                    // The host encodes a transmit as soon as it is asked for.
                    let mut bytes = Vec::new();
                    self.s.encode_transmit(&mut bytes);
                    self.sent.insert(self.log.len(), bytes);
                    self.log.push((self.now, a));
                }
                a => self.log.push((self.now, a)),
            }
        }
        self.log[start..].iter().map(|(_, a)| a).collect()
    }

    /// Actions emitted since the last `take`.
    pub fn take(&mut self) -> Vec<Action> {
        self.poll();
        let out = self.log[self.cursor..]
            .iter()
            .map(|(_, a)| a.clone())
            .collect();
        self.cursor = self.log.len();
        out
    }

    pub fn handle(&mut self, ev: Event<'_>) {
        let now = self.now;
        let input = match ev {
            Event::Resolved { epoch, addrs } => Input::Resolved { epoch, addrs },
            Event::ResolveFailed { epoch, error } => Input::ResolveFailed { epoch, error },
            Event::DialOk { epoch } => Input::DialOk { epoch },
            Event::DialFailed { epoch, error } => Input::DialFailed { epoch, error },
            Event::Written { epoch } => Input::Written { epoch },
            Event::Eof { epoch } => Input::Eof { epoch },
            Event::IoError { epoch, error } => Input::IoError { epoch, error },
            Event::Closed { epoch } => Input::Closed { epoch },
            Event::BytesRead { epoch, len } => {
                // An incomplete frame header: liveness, nothing decoded (not kept: the next
                // read starts afresh, as if the rest never came).
                let head = vec![0u8; len.min(3)];
                self.read(epoch, &head, len);
                return;
            }
            Event::Pong { epoch } => return self.read(epoch, &frame(Frame::Pong), 5),
            Event::PeerPing { epoch } => return self.read(epoch, &frame(Frame::Ping), 5),
            Event::Acked { epoch, count } => {
                let mut bytes = Vec::new();
                for i in 0..count {
                    bytes.extend(frame(Frame::Data(format!("reply {i}").as_bytes())));
                }
                let n = bytes.len();
                return self.read(epoch, &bytes, n);
            }
        };
        let _ = self.s.handle_input(now, input);
        self.poll();
    }

    /// Bytes from the peer on `epoch`, `fresh` of them new.
    pub fn read(&mut self, epoch: Epoch, bytes: &[u8], fresh: usize) {
        let mut got = Vec::new();
        self.s
            .handle_read(self.now, epoch, bytes, fresh, &mut |r| match r {
                Received::Reply { id, body, .. } => got.push((Some(id), body.to_vec())),
                Received::Message { body, .. } => got.push((None, body.to_vec())),
                _ => unreachable!("no other unit exists"),
            });
        let bytes: usize = got.iter().map(|g| g.1.len()).sum();
        self.s.inbound_taken(self.now, got.len(), bytes);
        self.received.extend(got);
        self.poll();
    }

    /// Jumps to the next deadline (panics if none).
    pub fn jump(&mut self) -> Instant {
        self.poll();
        // A runaway loop (a broken session that never moves on) fails instead of eating memory.
        assert!(
            self.log.len() < 1_000_000,
            "runaway test: over a million actions"
        );
        let t = self.wait.expect("a deadline");
        self.now = self.now.max(t);
        self.poll();
        self.now
    }

    /// `jump`, failing the test after 10,000 of them without progress.
    fn jump_bounded(&mut self) {
        self.jumps += 1;
        assert!(
            self.jumps < 10_000,
            "runaway test: no attempt after 10,000 jumps"
        );
        self.jump();
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.poll();
    }

    /// Runs the next resolve (and dial) to completion with the given dial result.
    /// Returns the epoch of the attempt.
    pub fn attempt(&mut self, result: Result<(), NetError>) -> Epoch {
        let epoch = loop {
            if let Some(e) = self.pending(|a| match a {
                Action::Resolve { epoch } => Some(*epoch),
                _ => None,
            }) {
                break e;
            }
            self.jump_bounded();
        };
        self.handle(Event::Resolved {
            epoch,
            addrs: &ADDRS[..1],
        });
        match result {
            Ok(()) => self.handle(Event::DialOk { epoch }),
            Err(error) => self.handle(Event::DialFailed { epoch, error }),
        }
        epoch
    }

    /// Connects (first attempt succeeding). Returns the epoch.
    pub fn connect(&mut self) -> Epoch {
        let e = self.attempt(Ok(()));
        assert_eq!(self.s.state(), State::Connected);
        e
    }

    /// The first action since the last `take` matching `f`, consuming everything up to it.
    pub fn pending<T>(&mut self, mut f: impl FnMut(&Action) -> Option<T>) -> Option<T> {
        self.poll();
        for i in self.cursor..self.log.len() {
            if let Some(t) = f(&self.log[i].1) {
                self.cursor = i + 1;
                return Some(t);
            }
        }
        None
    }

    /// Times at which dials were emitted.
    pub fn dial_times(&self) -> Vec<Instant> {
        self.log
            .iter()
            .filter(|(_, a)| matches!(a, Action::Dial { .. }))
            .map(|(t, _)| *t)
            .collect()
    }

    pub fn notifications(&self) -> impl Iterator<Item = &Notification> {
        self.log.iter().filter_map(|(_, a)| match a {
            Action::Notify(n) => Some(n),
            _ => None,
        })
    }

    pub fn outcomes(&self) -> Vec<(MsgId, Outcome, Option<Vec<u8>>)> {
        self.notifications()
            .filter_map(|n| match n {
                Notification::Outcome {
                    id,
                    outcome,
                    payload,
                } => Some((*id, *outcome, payload.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn disconnects(&self) -> Vec<DisconnectReason> {
        self.notifications()
            .filter_map(|n| match n {
                Notification::Disconnected { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    /// Answers every Transmit with Written (a healthy, fast socket); returns the payloads
    /// written and whether a ping was sent.
    pub fn write_all(&mut self) -> (Vec<Vec<u8>>, bool) {
        let mut out = Vec::new();
        let mut pinged = false;
        while let Some((epoch, bytes)) = self.next_transmit() {
            let (_, ping, data) = parse_transmit(&bytes);
            out.extend(data);
            pinged |= ping;
            self.handle(Event::Written { epoch });
        }
        (out, pinged)
    }

    /// The next Transmit since the last `take`, with its bytes.
    pub fn next_transmit(&mut self) -> Option<(Epoch, Vec<u8>)> {
        self.poll();
        for i in self.cursor..self.log.len() {
            if let Action::Transmit { epoch } = self.log[i].1 {
                self.cursor = i + 1;
                return Some((epoch, self.sent.get(&i).cloned().unwrap_or_default()));
            }
        }
        None
    }

    pub fn send(&mut self, p: &[u8], d: Delivery) -> MsgId {
        let id = self.s.enqueue(self.now, p.to_vec(), d).unwrap();
        self.poll();
        id
    }
}

/// An AttemptFailed notification: (epoch, attempt, addr, error, next_delay).
pub type Failure = (Epoch, u32, Option<Addr>, NetError, Option<Duration>);

/// Defaults with deterministic (jitter-free) backoff, so delays can be asserted exactly.
pub fn plain() -> Config {
    Config::default().with_backoff(Backoff::new().with_jitter(Jitter::None))
}

impl H {
    /// Runs the next resolve with `addrs`; returns the epoch and the address dialed.
    pub fn resolve(&mut self, addrs: &[Addr]) -> (Epoch, Option<Addr>) {
        let epoch = loop {
            if let Some(e) = self.pending(|a| match a {
                Action::Resolve { epoch } => Some(*epoch),
                _ => None,
            }) {
                break e;
            }
            self.jump_bounded();
        };
        self.handle(Event::Resolved { epoch, addrs });
        let dialed = self.pending(|a| match a {
            Action::Dial { epoch: e, addr, .. } if *e == epoch => Some(*addr),
            _ => None,
        });
        (epoch, dialed)
    }

    /// The next Transmit since the last `take`: (epoch, pongs, ping, data frames).
    pub fn transmit(&mut self) -> Option<(Epoch, u8, bool, usize)> {
        let (epoch, bytes) = self.next_transmit()?;
        let (pongs, ping, data) = parse_transmit(&bytes);
        Some((epoch, pongs, ping, data.len()))
    }

    /// Every Close ever emitted.
    pub fn closes(&self) -> Vec<(Epoch, DisconnectReason)> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Close { epoch, reason } => Some((*epoch, *reason)),
                _ => None,
            })
            .collect()
    }

    /// Every AttemptFailed.
    pub fn failures(&self) -> Vec<Failure> {
        self.notifications()
            .filter_map(|n| match n {
                Notification::AttemptFailed {
                    epoch,
                    attempt,
                    addr,
                    error,
                    next_delay,
                } => Some((*epoch, *attempt, *addr, *error, *next_delay)),
                _ => None,
            })
            .collect()
    }

    /// The GaveUp notification, if any: (failures, elapsed, last_error).
    pub fn gave_up(&self) -> Option<(u32, Duration, NetError)> {
        self.notifications().find_map(|n| match n {
            Notification::GaveUp {
                failures,
                elapsed,
                last_error,
            } => Some((*failures, *elapsed, *last_error)),
            _ => None,
        })
    }

    /// Gaps between consecutive dials.
    pub fn dial_gaps(&self) -> Vec<Duration> {
        self.dial_times().windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Jumps to `t` (no-op if already past it).
    pub fn advance_to(&mut self, t: Instant) {
        self.now = self.now.max(t);
        self.poll();
    }

    /// Loses the current connection with `ev` and confirms the old socket closed.
    pub fn drop_conn(&mut self, ev: Event<'_>) {
        let epoch = ev.epoch().expect("a socket event");
        self.handle(ev);
        self.handle(Event::Closed { epoch });
    }
}
