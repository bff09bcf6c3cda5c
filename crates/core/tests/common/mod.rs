//! A tiny driver for tests: records every action, jumps virtual time to deadlines.
#![allow(dead_code)]

pub mod check;

use std::net::SocketAddr;
use std::time::Duration;

use redial_core::*;

pub const ADDRS: [SocketAddr; 2] = [
    SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        7000,
    ),
    SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        7001,
    ),
];

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn at(n_ms: u64) -> Instant {
    Instant::from_millis(n_ms)
}

pub struct H {
    pub s: Session,
    pub now: Instant,
    pub wait: Option<Instant>,
    /// Every action ever emitted, with the time it was emitted.
    pub log: Vec<(Instant, Action)>,
    /// Index into `log` of the first action not yet taken by `take`.
    cursor: usize,
    jumps: u32,
}

impl H {
    pub fn new(cfg: Config) -> H {
        H {
            s: Session::new(cfg, Instant::ZERO).unwrap(),
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
        self.s.handle(self.now, ev);
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
        while let Some((epoch, ping)) = self.pending(|a| match a {
            Action::Transmit { epoch, ping, .. } => Some((*epoch, *ping)),
            _ => None,
        }) {
            out.extend(self.s.transmit_payloads().map(<[u8]>::to_vec));
            pinged |= ping;
            self.handle(Event::Written { epoch });
        }
        (out, pinged)
    }

    pub fn send(&mut self, p: &[u8], d: Delivery) -> MsgId {
        let id = self.s.enqueue(self.now, p.to_vec(), d).unwrap();
        self.poll();
        id
    }
}

/// An AttemptFailed notification: (epoch, attempt, addr, error, next_delay).
pub type Failure = (Epoch, u32, Option<SocketAddr>, NetError, Option<Duration>);

/// Defaults with deterministic (jitter-free) backoff, so delays can be asserted exactly.
pub fn plain() -> Config {
    Config::default().with_backoff(Backoff::new().with_jitter(Jitter::None))
}

impl H {
    /// Runs the next resolve with `addrs`; returns the epoch and the address dialed.
    pub fn resolve(&mut self, addrs: &[std::net::SocketAddr]) -> (Epoch, Option<SocketAddr>) {
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

    /// The next Transmit since the last `take`: (epoch, pongs, ping, messages).
    pub fn transmit(&mut self) -> Option<(Epoch, u8, bool, usize)> {
        self.pending(|a| match a {
            Action::Transmit {
                epoch,
                pongs,
                ping,
                messages,
            } => Some((*epoch, *pongs, *ping, *messages)),
            _ => None,
        })
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
