//! 1. Core step cost: a steady-state mix of events on a connected session.

use std::hint::black_box;
use std::time::{Duration, Instant as StdInstant};

use redial_core::{
    AckMode, Action, Config, Delivery, Epoch, Event, Heartbeat, Instant, Notification, Session,
};

use crate::util::{allocs, Spread};

/// Events fed per cycle (`enqueue` counts as one).
pub const EVENTS_PER_CYCLE: u64 = 9;

/// What one cycle produced, to check the mix is what it claims.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub transmit_msg: u32,
    pub transmit_ping: u32,
    pub transmit_pong: u32,
    pub delivered: u32,
    pub rtt: u32,
}

// Inlined into `cycle`, as a driver's own drain loop would be.
#[inline(always)]
fn drain(s: &mut Session, now: Instant, seen: &mut Seen) {
    loop {
        match s.poll(now) {
            Action::Wait { .. } => break,
            Action::Transmit {
                pongs,
                ping,
                messages,
                ..
            } => {
                seen.transmit_msg += messages as u32;
                seen.transmit_ping += u32::from(ping);
                seen.transmit_pong += u32::from(pongs);
            }
            Action::Notify(Notification::Outcome { .. }) => seen.delivered += 1,
            Action::Notify(Notification::Rtt { .. }) => seen.rtt += 1,
            other => {
                black_box(other);
            }
        }
    }
}

/// A connected session (acks in order, default heartbeat 5 s + 5 s) and its epoch.
pub fn setup() -> (Session, Epoch, Instant) {
    let cfg = Config::default()
        .with_acks(AckMode::InOrder)
        .with_heartbeat(Some(Heartbeat::default()));
    let now = Instant::ZERO;
    let mut s = Session::new(cfg, now).expect("valid config");
    let addr = "127.0.0.1:9".parse().expect("addr");
    let mut epoch = None;
    for _ in 0..8 {
        match s.poll(now) {
            Action::Resolve { epoch: e } => s.handle(
                now,
                Event::Resolved {
                    epoch: e,
                    addrs: &[addr],
                },
            ),
            Action::Dial { epoch: e, .. } => {
                s.handle(now, Event::DialOk { epoch: e });
                epoch = Some(e);
            }
            _ => {}
        }
    }
    let mut seen = Seen::default();
    drain(&mut s, now, &mut seen);
    (s, epoch.expect("connected"), now)
}

/// One cycle of the steady-state mix: enqueue → transmit → written → ack; bytes read;
/// timer (→ PING transmit) → written; PONG (→ RTT); peer PING (→ PONG transmit) → written.
pub fn cycle(s: &mut Session, epoch: Epoch, t: &mut Instant, payload: Vec<u8>, seen: &mut Seen) {
    let _ = s.enqueue(*t, payload, Delivery::AtMostOnce);
    drain(s, *t, seen);
    s.handle(*t, Event::Written { epoch });
    drain(s, *t, seen);
    s.handle(*t, Event::Acked { epoch, count: 1 });
    drain(s, *t, seen);
    s.handle(*t, Event::BytesRead { epoch, len: 64 });
    drain(s, *t, seen);
    *t = *t + Duration::from_secs(5);
    s.handle(*t, Event::Timer);
    drain(s, *t, seen);
    s.handle(*t, Event::Written { epoch });
    drain(s, *t, seen);
    *t = *t + Duration::from_millis(1);
    s.handle(*t, Event::Pong { epoch });
    drain(s, *t, seen);
    s.handle(*t, Event::PeerPing { epoch });
    drain(s, *t, seen);
    s.handle(*t, Event::Written { epoch });
    drain(s, *t, seen);
}

/// `cycles` cycles (the callgrind workload). `alloc_only`: only build and drop the payloads,
/// to subtract the user's own allocation.
pub fn run(cycles: u64, alloc_only: bool) -> Seen {
    let (mut s, epoch, mut t) = setup();
    let mut seen = Seen::default();
    for _ in 0..cycles {
        let p = black_box(vec![7u8; 64]);
        if alloc_only {
            drop(black_box(p));
        } else {
            cycle(&mut s, epoch, &mut t, p, &mut seen);
        }
    }
    black_box(&s);
    seen
}

pub struct Timed {
    pub ns_per_event: Spread,
    pub allocs_per_event: f64,
    pub cycles: u64,
}

/// ns per event over `rounds` rounds of `cycles`, and core allocations per event.
pub fn timed(rounds: usize, cycles: u64) -> Timed {
    let (mut s, epoch, mut t) = setup();
    // Warm up, and check the mix once.
    let mut seen = Seen::default();
    cycle(&mut s, epoch, &mut t, vec![7u8; 64], &mut seen);
    let expect = Seen {
        transmit_msg: 1,
        transmit_ping: 1,
        transmit_pong: 1,
        delivered: 1,
        rtt: 1,
    };
    assert_eq!(seen, expect, "the steady-state mix is not what it claims");
    for _ in 0..1000 {
        cycle(&mut s, epoch, &mut t, vec![7u8; 64], &mut seen);
    }
    let payloads: Vec<Vec<u8>> = (0..cycles).map(|_| vec![7u8; 64]).collect();
    let mut ns = Vec::new();
    let mut core_allocs = 0;
    let mut pool = payloads;
    for _ in 0..rounds {
        // Payloads are built before the clock and the counter start.
        let batch: Vec<Vec<u8>> = std::mem::take(&mut pool);
        let a0 = allocs();
        let t0 = StdInstant::now();
        for p in batch {
            cycle(&mut s, epoch, &mut t, p, &mut seen);
        }
        let el = t0.elapsed();
        core_allocs += allocs() - a0;
        ns.push(el.as_nanos() as f64 / (cycles * EVENTS_PER_CYCLE) as f64);
        pool = (0..cycles).map(|_| vec![7u8; 64]).collect();
    }
    Timed {
        ns_per_event: Spread::of(&ns),
        allocs_per_event: core_allocs as f64 / (rounds as u64 * cycles * EVENTS_PER_CYCLE) as f64,
        cycles,
    }
}
